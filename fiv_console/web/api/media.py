"""Media files: `GET /api/messages/{id}/media` streams a message's file from WhatsApp, and
`POST /api/conversations/{id}/media` uploads one to send by its media id.

Neither holds a database connection across the network (`transaction=False`): the rules are checked in a
short transaction of their own, and only then is Meta called or the upload read.

A file is relayed from the Graph API chunk by chunk, never kept whole in memory, with the headers
`fiv_console.messages.media` decides (type, disposition, caching). Failures before the first byte goes out are
envelopes (404 gone, 413 too large, 503 WhatsApp unreachable, 409 refused); once the headers are sent only
the connection can be cut, so the client sees a truncated file rather than a whole-looking one, and the
failure is logged.

An upload is one multipart `file` field, read as a stream (not bound by the app's client_max_size, which
is sized for JSON and webhooks) and refused as soon as it passes its limit; its declared type is checked
against its bytes before it goes to Meta. The answer (201) names the media id to send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from fiv_console.errors import InvalidInput
from fiv_console.keys import graph_client_key, settings_key
from fiv_console.messages import media
from fiv_console.messages.media import CheckedUpload, MediaSource, UploadedMedia
from fiv_console.web.api.conversations import viewer_of
from fiv_console.web.api.routing import ANYONE_SIGNED_IN, ApiCall, Created, NoInput, RouteTable
from fiv_console.web.bodies import BodyTooSlow
from fiv_console.whatsapp.client import GraphError, MediaTooLarge

log = logging.getLogger(__name__)

routes = RouteTable()

_TAG = "media"
_READ_SIZE = 64 * 1024


@routes.route(
    "GET", "/api/messages/{message_id}/media", roles=ANYONE_SIGNED_IN,
    summary="A message's media file, from WhatsApp, in its own content type (cached until WhatsApp drops it)",
    tag=_TAG, transaction=False, file_answer=True,
)  # fmt: skip
async def get_message_media(call: ApiCall[NoInput, NoInput]) -> web.StreamResponse:
    request = call.request
    async with call.transaction() as conn:
        source = await media.media_source(conn, viewer=viewer_of(call), message_id=call.ids["message_id"])
    now = datetime.now(UTC)
    if source.etag is not None and _holds(request, source.etag):
        return web.Response(status=304, headers=source.cache_headers(now))
    client = request.app[graph_client_key]
    max_bytes = request.app[settings_key].media_max_bytes
    try:
        info = await client.media_info(source.media_id, source.access_token)
        if info.file_size is not None and info.file_size > max_bytes:
            raise MediaTooLarge(max_bytes=max_bytes)
        async with client.download_media(info.url, source.access_token, max_bytes) as download:
            chunks = aiter(download)
            # The first read can still fail as an envelope: nothing has been sent yet.
            first = await anext(chunks, b"")
            response = web.StreamResponse(headers=source.file_headers(info.mime_type, now))
            await response.prepare(request)
            await _relay(request, response, source, first, chunks)
    except GraphError as exc:
        raise media.download_failure(exc) from None
    return response


def _holds(request: web.Request, etag: str) -> bool:
    """Whether If-None-Match names this file (weak comparison, as RFC 9110 asks for it)."""
    return any(held.value in ("*", etag) for held in request.if_none_match or ())


async def _relay(
    request: web.Request, response: web.StreamResponse, source: MediaSource, first: bytes, rest: AsyncIterator[bytes]
) -> None:
    try:
        if first:
            await response.write(first)
        async for chunk in rest:
            await response.write(chunk)
    except (GraphError, ConnectionError) as exc:
        log.warning(
            "a media file broke off while it was being sent",
            extra={"message_id": str(source.message_id), "error": type(exc).__name__, "reason": str(exc)},
        )
        # Cut before the response is finished: an ended chunked body would look like a whole file.
        if request.transport is not None:
            request.transport.abort()
        return
    await response.write_eof()


@routes.route(
    "POST", "/api/conversations/{conversation_id}/media", roles=ANYONE_SIGNED_IN,
    summary="Upload an image (JPEG, PNG; 5 MB) or a document (PDF, text, Office; 100 MB) to send by its media id",
    tag=_TAG, response=UploadedMedia, status=201, transaction=False, upload=True,
)  # fmt: skip
async def upload_media(call: ApiCall[NoInput, NoInput]) -> Created[UploadedMedia]:
    app = call.request.app
    async with call.transaction() as conn:
        target = await media.upload_target(conn, viewer=viewer_of(call), conversation_id=call.ids["conversation_id"])
    file = await _read_upload(call.request, app[settings_key].media_max_bytes)
    return Created(await media.upload(app[graph_client_key], target, file))


async def _read_upload(request: web.Request, max_bytes: int) -> CheckedUpload:
    """The one `file` part of a multipart form, refused once it passes its limit.

    A large file may take minutes on a slow link, so there is no deadline for the whole upload; instead each
    read must bring something within UPLOAD_IDLE_TIMEOUT_SECONDS, or the upload is cut off (408).
    """
    if request.content_type != "multipart/form-data":
        raise InvalidInput("the body must be multipart/form-data with one `file` field")
    idle = request.app[settings_key].upload_idle_timeout_seconds
    try:
        reader = await request.multipart()
        async with asyncio.timeout(idle) as deadline:
            part = await reader.next()
            if not isinstance(part, BodyPartReader) or part.name != "file":
                raise InvalidInput("the form must have one field, `file`")
            mime_type, rule = media.upload_rule(part.headers.get(hdrs.CONTENT_TYPE))
            limit = rule.limit(max_bytes)
            data = bytearray()
            while chunk := await part.read_chunk(_READ_SIZE):
                deadline.reschedule(asyncio.get_running_loop().time() + idle)
                data += chunk
                if len(data) > limit:
                    raise media.MediaTooBig(limit)
            filename = part.filename
            if await reader.next() is not None:
                raise InvalidInput("the form must have one field, `file`")
    except TimeoutError:
        raise BodyTooSlow(f"the upload sent nothing for {idle:g} seconds") from None
    except (ValueError, RuntimeError, HttpProcessingError):
        # aiohttp's words for a malformed multipart body (boundaries, headers, charset).
        raise InvalidInput("the body is not a readable multipart form") from None
    return media.checked_upload(mime_type, rule, bytes(data), filename)
