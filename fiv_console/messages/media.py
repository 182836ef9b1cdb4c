"""Media files of messages: which file a person may fetch, how it is served, and what an agent may upload.

Fetching: `media_source` finds a message's media (Meta's media id, type, file name) and the access token of
the number that received it, for a viewer who may see the conversation (anything else is "not found",
like another tenant's id). The bytes come from the Graph API at each request and are never stored here;
the browser keeps them instead (`file_headers`): `Cache-Control: private` for as long as Meta keeps the
media id (7 days after the message came in), and an ETag from the file's sha256, so a repeated request is a
304 that costs Meta nothing.

Serving a customer's file is serving untrusted content from our origin, so (`file_headers`): its type is
reduced to a bare `type/subtype` (else `application/octet-stream`), `nosniff` keeps the browser from
guessing another, the file runs in a CSP sandbox, and only images, audio and video are shown inline.
Everything else is a download (`attachment`), SVG and other XML-based "images" included, since they can
carry script.

Uploading: an agent uploads a file to the conversation's number (`upload_target`: the same rule as
replying, without the 24-hour window, which applies to the send) and sends it later by the media id Meta
gives. Only JPEG and PNG images and PDF, plain text and Office documents are taken, within Meta's size
limits, and a declared type is believed only when the file begins as that type does (`checked_upload`).

Graph API failures become the API's errors (`download_failure`, `upload_failure`): media Meta no longer
has is NOT_FOUND, a file over the size limit PAYLOAD_TOO_LARGE (413), a failure a retry may cure
UNAVAILABLE (503), and any other refusal by Meta (an expired token, say) CONFLICT (409) with Meta's reason.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import quote
from uuid import UUID

from pydantic import BaseModel

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Viewer
from fiv_console.db.pool import Connection
from fiv_console.errors import Conflict, DomainError, InvalidInput, NotFound, Unavailable
from fiv_console.messages.outbound import check_may_reply
from fiv_console.whatsapp.client import GraphClient, GraphError, MediaTooLarge

# How long Meta keeps an inbound media id; our own uploads live longer, and the shorter time is kept for all.
MEDIA_LIFETIME = timedelta(days=7)
MiB = 1024 * 1024
FALLBACK_TYPE = "application/octet-stream"
MAX_FILENAME = 240  # what a send request takes as a document's file name

_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"  # RFC 6838's restricted-name
_MEDIA_TYPE = re.compile(rf"{_NAME}/{_NAME}")
_INLINE_MAJOR_TYPES = frozenset({"image", "audio", "video"})
# Anything but these becomes "_" in the plain `filename=` fallback, so it can never close the quotes.
_NOT_PLAIN = re.compile(r"[^A-Za-z0-9._ -]")
# RFC 5987 attr-char beyond what `quote` always keeps.
_ATTR_CHAR_EXTRA = "!#$&+^`|"
# Meta's sha256 is hex or base64; anything else is not made into an ETag.
_ETAG_VALUE = re.compile(r"[A-Za-z0-9+/=_-]{16,128}")


class MediaTooBig(DomainError):
    """A file over the size this console accepts, from WhatsApp or from an agent."""

    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the file is larger than the {max_bytes / MiB:g} MB allowed")
        self.max_bytes = max_bytes


@dataclass(frozen=True, slots=True)
class MediaSource:
    """A message's media file at Meta, and the number whose token fetches it."""

    message_id: UUID
    kind: str
    media_id: str
    mime_type: str | None
    sha256: str | None
    filename: str | None
    received_at: datetime
    phone_number_id: str
    access_token: str

    @property
    def etag(self) -> str | None:
        """The file's sha256 as Meta gave it, when it is one."""
        if self.sha256 is not None and _ETAG_VALUE.fullmatch(self.sha256):
            return self.sha256
        return None

    def cache_headers(self, now: datetime) -> dict[str, str]:
        """Kept by the browser alone (`private`: it is a customer's file) until Meta forgets the media id."""
        seconds = max(0, int((self.received_at + MEDIA_LIFETIME - now).total_seconds()))
        headers = {"Cache-Control": f"private, max-age={seconds}"}
        if self.etag is not None:
            headers["ETag"] = f'"{self.etag}"'
        return headers

    def file_headers(self, meta_type: str | None, now: datetime) -> dict[str, str]:
        """The headers the file is served with; `meta_type` is the type Meta gives now (else the stored one)."""
        content_type = served_type(meta_type, self.mime_type)
        filename = clean_filename(self.filename, fallback=default_filename(self.kind, content_type))
        return {
            "Content-Type": content_type,
            "Content-Disposition": content_disposition(content_type, filename),
            "X-Content-Type-Options": "nosniff",
            # Even a file opened on its own, from our origin, runs no script and reaches nothing.
            "Content-Security-Policy": "sandbox",
            **self.cache_headers(now),
        }


# The viewer's sight ($1, $2) and the message ($3). The media goes with the channel that received it.
_SOURCE_SQL = f"""
select m.kind, m.media->>'id' as media_id, m.media->>'mime_type' as mime_type, m.media->>'sha256' as sha256,
       m.media->>'filename' as filename, least(m.sent_at, m.created_at) as received_at,
       ch.phone_number_id, ch.access_token
from messages m
join conversations c on c.tenant_id = m.tenant_id and c.id = m.conversation_id
join channels ch on ch.tenant_id = m.tenant_id and ch.id = m.channel_id
where m.id = $3 and {VISIBLE_CONVERSATION_SQL}
"""


async def media_source(conn: Connection, *, viewer: Viewer, message_id: UUID) -> MediaSource:
    """The media of a message the viewer may see; NotFound for any other message, or one without media."""
    row = await conn.fetchrow(_SOURCE_SQL, *viewer.sight.params(), message_id)
    if row is None:
        raise NotFound("no such message")
    if row["media_id"] is None:
        raise NotFound("this message has no media")
    if not row["access_token"]:
        raise Conflict("this conversation's WhatsApp number has no access token: an admin must set one")
    return MediaSource(
        message_id=message_id,
        kind=row["kind"],
        media_id=row["media_id"],
        mime_type=row["mime_type"],
        sha256=row["sha256"],
        filename=row["filename"],
        received_at=row["received_at"],
        phone_number_id=row["phone_number_id"],
        access_token=row["access_token"],
    )


def served_type(*candidates: str | None) -> str:
    """The first candidate that is a plain `type/subtype` (parameters dropped), else octet-stream."""
    for candidate in candidates:
        if candidate is None:
            continue
        bare = candidate.split(";", 1)[0].strip().lower()
        if _MEDIA_TYPE.fullmatch(bare):
            return bare
    return FALLBACK_TYPE


def shows_inline(content_type: str) -> bool:
    """Images, audio and video, except XML-based ones (SVG): a browser runs the script those can hold."""
    major, _, minor = content_type.partition("/")
    return major in _INLINE_MAJOR_TYPES and "xml" not in minor and "svg" not in minor


def clean_filename(name: str | None, *, fallback: str) -> str:
    """A file name without folders, control or format characters (a right-to-left override can disguise
    `exe.pdf`), and not too long; `fallback` when nothing is left."""
    if name is not None:
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
        name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C")).strip()
    return name[:MAX_FILENAME] if name else fallback


def default_filename(kind: str, content_type: str) -> str:
    """`image.jpg` and the like, for a file that came without a name."""
    return f"{kind}{mimetypes.guess_extension(content_type, strict=False) or ''}"


def content_disposition(content_type: str, filename: str) -> str:
    """`inline` or `attachment`, with the name both plain (old browsers) and exact (RFC 6266 `filename*`)."""
    disposition = "inline" if shows_inline(content_type) else "attachment"
    exact = quote(filename, safe=_ATTR_CHAR_EXTRA)
    return f"{disposition}; filename=\"{_NOT_PLAIN.sub('_', filename)}\"; filename*=UTF-8''{exact}"


def download_failure(exc: GraphError) -> DomainError:
    """The API's error for a failed fetch of a media file, before any of it was sent."""
    if isinstance(exc, MediaTooLarge):
        return MediaTooBig(exc.max_bytes)
    # Meta answers an unknown or expired media id with error 100 ("does not exist"), an expired download
    # URL with a bare 404.
    if exc.code in (100, 131052) or (exc.code is None and exc.http_status in (404, 410)):
        return NotFound("WhatsApp no longer has this media file (it keeps a customer's media for 7 days)")
    if exc.code is not None and not exc.retryable:
        return Conflict(exc.reason, details={"whatsapp_code": exc.code})
    return Unavailable(exc.reason)


# --- uploads ---

UploadKind = Literal["image", "audio", "document"]


@dataclass(frozen=True, slots=True)
class UploadRule:
    """What an uploaded file of one type is sent as, its size limit (Meta's), and how it must begin."""

    kind: UploadKind
    max_bytes: int
    signatures: tuple[bytes, ...]

    def limit(self, max_bytes: int) -> int:
        """Meta's limit for the type, or the console's (`max_bytes`) if that is lower."""
        return min(self.max_bytes, max_bytes)


_OLE2 = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)  # .doc, .xls, .ppt
_ZIP = (b"PK\x03\x04",)  # .docx, .xlsx, .pptx
_DOCUMENT_LIMIT = 100 * MiB
_AUDIO_LIMIT = 16 * MiB
UPLOAD_RULES: dict[str, UploadRule] = {
    "image/jpeg": UploadRule("image", 5 * MiB, (b"\xff\xd8\xff",)),
    "image/png": UploadRule("image", 5 * MiB, (b"\x89PNG\r\n\x1a\n",)),
    # WhatsApp's audio types: a voice note is OGG/Opus; MP3 starts with its ID3 tag or a frame sync.
    "audio/ogg": UploadRule("audio", _AUDIO_LIMIT, (b"OggS",)),
    "audio/mpeg": UploadRule("audio", _AUDIO_LIMIT, (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")),
    "audio/aac": UploadRule("audio", _AUDIO_LIMIT, (b"\xff\xf1", b"\xff\xf9")),
    "audio/amr": UploadRule("audio", _AUDIO_LIMIT, (b"#!AMR",)),
    "application/pdf": UploadRule("document", _DOCUMENT_LIMIT, (b"%PDF-",)),
    # Plain text has no signature: it is checked for NUL bytes instead, which binary files are full of.
    "text/plain": UploadRule("document", _DOCUMENT_LIMIT, ()),
    "application/msword": UploadRule("document", _DOCUMENT_LIMIT, _OLE2),
    "application/vnd.ms-excel": UploadRule("document", _DOCUMENT_LIMIT, _OLE2),
    "application/vnd.ms-powerpoint": UploadRule("document", _DOCUMENT_LIMIT, _OLE2),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": UploadRule(
        "document", _DOCUMENT_LIMIT, _ZIP
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": UploadRule("document", _DOCUMENT_LIMIT, _ZIP),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": UploadRule(
        "document", _DOCUMENT_LIMIT, _ZIP
    ),
}
_FILE_FIELD = "body.file"


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """The number a conversation's media is uploaded to."""

    phone_number_id: str
    access_token: str


@dataclass(frozen=True, slots=True)
class CheckedUpload:
    """An uploaded file whose type, size and first bytes agree."""

    data: bytes
    mime_type: str
    kind: UploadKind
    filename: str


class UploadedMedia(BaseModel):
    """Send it with `{"media": {"id": media_id, "kind": kind}}` (a document may add its `filename`)."""

    media_id: str
    kind: UploadKind
    mime_type: str
    filename: str
    size: int


_TARGET_SQL = f"""
select c.status, c.agent_id, ch.phone_number_id, ch.access_token, ch.active as channel_active
from conversations c
join channels ch on ch.tenant_id = c.tenant_id and ch.id = c.channel_id
where c.id = $3 and {VISIBLE_CONVERSATION_SQL}
"""


async def upload_target(conn: Connection, *, viewer: Viewer, conversation_id: UUID) -> UploadTarget:
    """Where the viewer may upload a file to send in this conversation: who may reply may upload.

    The 24-hour window is not checked: it is the send that must fall inside it.
    """
    row = check_may_reply(viewer, await conn.fetchrow(_TARGET_SQL, *viewer.sight.params(), conversation_id))
    return UploadTarget(row["phone_number_id"], row["access_token"])


def upload_rule(declared_type: str | None) -> tuple[str, UploadRule]:
    """The bare type of an upload and its rule; InvalidInput for a type that cannot be sent."""
    mime_type = served_type(declared_type)
    rule = UPLOAD_RULES.get(mime_type)
    if rule is None:
        allowed = ", ".join(UPLOAD_RULES)
        raise InvalidInput(
            f"this type of file cannot be sent: give one of {allowed}",
            details=[{"field": _FILE_FIELD, "message": f"unsupported content type {mime_type}"}],
        )
    return mime_type, rule


def checked_upload(mime_type: str, rule: UploadRule, data: bytes, filename: str | None) -> CheckedUpload:
    """The file, if its bytes are what its declared type says; InvalidInput if not."""
    if not data:
        raise InvalidInput("the file is empty", details=[{"field": _FILE_FIELD, "message": "empty"}])
    plain_text = not rule.signatures
    if (plain_text and b"\0" in data) or (not plain_text and not data.startswith(rule.signatures)):
        raise InvalidInput(
            f"the file is not the {mime_type} it is declared as",
            details=[{"field": _FILE_FIELD, "message": "content does not match the content type"}],
        )
    name = clean_filename(filename, fallback=default_filename(rule.kind, mime_type))
    return CheckedUpload(data, mime_type, rule.kind, name)


async def upload(client: GraphClient, target: UploadTarget, file: CheckedUpload) -> UploadedMedia:
    """The file uploaded to the number's media, to be sent by the id Meta gives."""
    try:
        media_id = await client.upload_media(
            target.phone_number_id, target.access_token, file.data, file.mime_type, file.filename
        )
    except GraphError as exc:
        raise upload_failure(exc) from None
    return UploadedMedia(
        media_id=media_id, kind=file.kind, mime_type=file.mime_type, filename=file.filename, size=len(file.data)
    )


def upload_failure(exc: GraphError) -> DomainError:
    """The API's error for an upload Meta did not take."""
    # Meta's "invalid parameter" and "media upload error": the file itself was refused.
    if exc.code in (100, 131053):
        return InvalidInput(exc.reason, details=[{"field": _FILE_FIELD, "message": exc.details or exc.message}])
    if exc.code is not None and not exc.retryable:
        return Conflict(exc.reason, details={"whatsapp_code": exc.code})
    return Unavailable(exc.reason)
