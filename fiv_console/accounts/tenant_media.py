"""A tenant export's media files (`tenant export --media fetch`): each message's file fetched from the Graph
API into the export's `media/` folder, and `media.jsonl` saying for each one its file or why there is none.

The references are read in the export's snapshot and spooled to a temporary file, so the snapshot's
transaction ends before any download and a million references never sit in memory. The files are then
fetched as the console fetches one for display (`media_info`, then the download URL with the number's
token), a few at a time, each streamed to disk chunk by chunk under the console's `MEDIA_MAX_BYTES`. A file
is named `<message id><extension of its type>`: nothing a customer chose reaches the file system. Meta
keeps a customer's media for a limited time: a file it no longer has, one too large, or a number without
a token is a line of `media.jsonl` with the reason, and the export goes on.

The export's folder refusing a write (a full disk, no permission) is another matter: it is no file's
fault, and every later file would fail alike, so the fetching stops at once (`FetchSummary.stopped`)
rather than going on to record each file as failed: that would download everything for nothing, and
bury the one thing the operator must fix under a count that looks like Meta's doing. No `.part` is left
half written, whoever stops the download, and the summary still counts what was done, for the manifest
to say the media are incomplete and why.
"""

from __future__ import annotations

import asyncio
import mimetypes
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import orjson

from fiv_console.accounts.tenant_data import ExportFolderUnwritable, writing_into
from fiv_console.db.pool import Connection
from fiv_console.messages.media import download_failure, served_type
from fiv_console.whatsapp.client import GraphClient, GraphError, MediaTooLarge

MEDIA_FOLDER = "media"
MEDIA_INDEX = "media.jsonl"
# Downloads at once: a few keep the export moving without looking like a flood to Meta.
CONCURRENCY = 4

_REFERENCES_SQL = """
select m.id, m.channel_id, m.media->>'id' as media_id, m.media->>'mime_type' as mime_type
from messages m
where m.tenant_id = $1 and m.media ? 'id'
order by m.id
"""
_TOKENS_SQL = "select id, access_token from channels where tenant_id = $1"


@dataclass(frozen=True, slots=True)
class MediaReference:
    """A message's media at Meta, and the number that received it."""

    message_id: UUID
    channel_id: UUID
    media_id: str
    mime_type: str | None


@dataclass(slots=True)
class MediaReferences:
    """The tenant's media references spooled to a temporary file, and its numbers' access tokens."""

    spool: IO[bytes]
    tokens: dict[UUID, str | None]
    count: int = 0

    def __iter__(self) -> Iterator[MediaReference]:
        self.spool.seek(0)
        for line in self.spool:
            item = orjson.loads(line)
            yield MediaReference(UUID(item[0]), UUID(item[1]), item[2], item[3])


@contextmanager
def spooled_references() -> Iterator[MediaReferences]:
    """An empty spool, deleted on leaving."""
    with tempfile.TemporaryFile() as spool:
        yield MediaReferences(spool=spool, tokens={})


async def read_references(conn: Connection, *, tenant_id: UUID, into: MediaReferences) -> None:
    """In the export's snapshot: every message's media reference, spooled, and the numbers' tokens."""
    into.tokens = {r["id"]: r["access_token"] for r in await conn.fetch(_TOKENS_SQL, tenant_id)}
    async for r in conn.cursor(_REFERENCES_SQL, tenant_id, prefetch=1000):
        into.spool.write(orjson.dumps([str(r["id"]), str(r["channel_id"]), r["media_id"], r["mime_type"]]) + b"\n")
        into.count += 1


@dataclass(slots=True)
class FetchSummary:
    """How many files were written, and how many could not be, by the reason's code; `stopped` when the
    export's folder refused a write and the references after it were not tried."""

    references: int
    fetched: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    stopped: ExportFolderUnwritable | None = None

    def manifest(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "mode": "fetch",
            "complete": self.stopped is None,
            "folder": f"{MEDIA_FOLDER}/",
            "index": MEDIA_INDEX,
            "references": self.references,
            "fetched": self.fetched,
            "not_fetched": dict(sorted(self.failed.items())),
        }
        if self.stopped is not None:
            document["stopped"] = str(self.stopped)
        return document


def file_name(reference: MediaReference, meta_type: str | None) -> str:
    """`<message id><extension>`: the extension of the type Meta gives (else the stored one), `.bin` when
    the type has none."""
    content_type = served_type(meta_type, reference.mime_type)
    return f"{reference.message_id}{mimetypes.guess_extension(content_type, strict=False) or '.bin'}"


async def fetch_all(
    client: GraphClient,
    references: MediaReferences,
    out: Path,
    *,
    max_bytes: int,
    concurrency: int = CONCURRENCY,
) -> FetchSummary:
    """Every referenced file into `out/media/`, and `out/media.jsonl` with a line for each reference; or,
    when the folder refuses a write, what was done until then and why it stopped."""
    summary = FetchSummary(references=references.count)
    try:
        await _fetch_into(client, references, out, summary, max_bytes=max_bytes, concurrency=concurrency)
    except* ExportFolderUnwritable as refused:
        # Several downloads may hit the full disk at once: the first says it for all.
        first: BaseException = refused
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        assert isinstance(first, ExportFolderUnwritable)
        summary.stopped = first
    return summary


async def _fetch_into(
    client: GraphClient,
    references: MediaReferences,
    out: Path,
    summary: FetchSummary,
    *,
    max_bytes: int,
    concurrency: int,
) -> None:
    folder = out / MEDIA_FOLDER
    pending: asyncio.Queue[MediaReference | None] = asyncio.Queue(maxsize=2 * concurrency)
    # Also covers the index's last flush as it closes.
    with writing_into(out):
        await asyncio.to_thread(folder.mkdir, exist_ok=True)
        with (out / MEDIA_INDEX).open("wb") as index:

            async def worker() -> None:
                while (reference := await pending.get()) is not None:
                    line: dict[str, Any] = {
                        "message_id": str(reference.message_id),
                        "media_id": reference.media_id,
                        "mime_type": reference.mime_type,
                    }
                    token = references.tokens.get(reference.channel_id)
                    if not token:
                        line |= {"file": None, "error": {"code": "NO_ACCESS_TOKEN", "message": _WITHOUT_CREDENTIAL}}
                    else:
                        line |= await _fetch_one(client, reference, token, folder, max_bytes)
                    if line["file"] is None:
                        code = line["error"]["code"]
                        summary.failed[code] = summary.failed.get(code, 0) + 1
                    else:
                        summary.fetched += 1
                    with writing_into(out):
                        index.write(orjson.dumps(line) + b"\n")

            # A worker's ExportFolderUnwritable cancels the others and the feeding: the export stops.
            async with asyncio.TaskGroup() as workers:
                for _ in range(concurrency):
                    workers.create_task(worker())
                for reference in references:
                    await pending.put(reference)
                for _ in range(concurrency):
                    await pending.put(None)


_WITHOUT_CREDENTIAL = "the number that received it has no access token"


async def _fetch_one(
    client: GraphClient, reference: MediaReference, token: str, folder: Path, max_bytes: int
) -> dict[str, Any]:
    """The file written (`file`, `bytes`), or why not (`error`); `ExportFolderUnwritable` when the folder
    refuses the file. A partial file is removed however the download ends, cancelled too."""
    partial: Path | None = None
    try:
        info = await client.media_info(reference.media_id, token)
        if info.file_size is not None and info.file_size > max_bytes:
            raise MediaTooLarge(max_bytes=max_bytes)
        name = file_name(reference, info.mime_type)
        written = 0
        async with client.download_media(info.url, token, max_bytes) as download:
            # The client turns every network failure into GraphError: an OSError here is the folder's.
            with writing_into(folder):
                partial = folder / f"{name}.part"
                with partial.open("wb") as file:
                    async for chunk in download:
                        file.write(chunk)
                        written += len(chunk)
                partial.rename(folder / name)
                partial = None
    except GraphError as exc:
        failure = download_failure(exc)
        return {"file": None, "error": {"code": failure.code, "message": failure.message}}
    finally:
        if partial is not None:
            # A folder refusing the removal refused the file's writing already; its error is the one to tell.
            with suppress(OSError):
                partial.unlink(missing_ok=True)
    return {"file": f"{MEDIA_FOLDER}/{name}", "bytes": written, "sha256": info.sha256}
