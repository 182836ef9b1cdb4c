"""Request bodies read whole: their size limit, their deadline, and the one buffer they are read into.

Every body the server reads whole (JSON calls, webhooks, sign-in) goes through `read_body`:
- a declared `Content-Length` over the limit is refused (413) before a byte is read; a chunked body is cut off
  (413) as soon as it passes it;
- the whole body must arrive within `BODY_TIMEOUT_SECONDS`, or the request is answered 408 (a client that
  trickles a body holds nothing past it);
- a body of declared length is read into one buffer of that length, so its chunks are freed as they arrive
  instead of piling up in the heap until the end (aiohttp's `request.read()` also raises its stream's buffer
  to the whole limit, letting a stalled client park megabytes in it);
- once the request of a large body is done, the caller drops it (`forget`) and asks for the heap's freed
  pages to go back to the system (`give_back_memory_soon`; docs/benchmarks.md has what each step returned).

It is read once per request: later calls give the same bytes. Streamed uploads are read by their handler
under an idle deadline instead (`fiv_console.web.api.media`).
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
from collections.abc import Callable

from aiohttp import StreamReader, web

from fiv_console.errors import DomainError, InvalidInput
from fiv_console.keys import settings_key

_BODY_KEY = web.RequestKey("body", bytes)
# From this size on, a body's request ends with the heap trimmed.
LARGE_BODY = 1024 * 1024
_TRIM_DELAY_SECONDS = 2.0


class BodyTooLarge(DomainError):
    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than the {limit} bytes allowed here")


class BodyTooSlow(DomainError):
    code = "REQUEST_TIMEOUT"


def over_limit(request: web.Request, limit: int) -> bool:
    """Whether the declared length alone already passes `limit` (a chunked body declares none)."""
    declared = request.content_length
    return declared is not None and declared > limit


async def read_body(request: web.Request, *, limit: int | None = None) -> bytes:
    """The whole body, at most `limit` bytes (unset: the application's `client_max_size`), within the deadline."""
    if _BODY_KEY in request:
        return request[_BODY_KEY]
    limit = request.client_max_size if limit is None else limit
    if over_limit(request, limit):
        raise BodyTooLarge(limit)
    seconds = request.app[settings_key].body_timeout_seconds
    declared = request.content_length
    try:
        async with asyncio.timeout(seconds):
            if declared is None:
                body = await _read_chunked(request.content, limit)
            else:
                body = await _read_declared(request.content, declared)
    except TimeoutError:
        raise BodyTooSlow(f"the body did not arrive within {seconds:g} seconds") from None
    request[_BODY_KEY] = body
    return body


# On failure (a deadline, a client gone) the part read is dropped before the exception leaves: its traceback
# keeps the reading frame alive until the next garbage collection, which would keep megabytes with it.


async def _read_declared(stream: StreamReader, size: int) -> bytes:
    buffer = bytearray(size)
    try:
        with memoryview(buffer) as view:
            filled = 0
            while filled < size:
                chunk = await stream.readany()
                if not chunk:
                    # aiohttp's parser ends a body only at its declared length or with an error; a guard.
                    raise InvalidInput("the body ended before its Content-Length")
                view[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
    except BaseException:
        del buffer
        raise
    return bytes(buffer)


async def _read_chunked(stream: StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await stream.readany():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
    except BaseException:
        chunks.clear()
        raise
    return b"".join(chunks)


def forget(request: web.Request) -> None:
    """Drops the request's body once its handler is done, rather than with the request."""
    request.pop(_BODY_KEY, None)


def _find_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # glibc only; musl has none
    except (OSError, AttributeError):
        return None
    return trim


class _HeapTrimmer:
    """After large bodies, glibc keeps the heap pages their chunks were read into; this returns the free ones
    to the system once no large body has ended for a moment (each call to `soon` pushes that moment back)."""

    def __init__(self, malloc_trim: Callable[[int], int] | None) -> None:
        self._malloc_trim = malloc_trim
        self._timer: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        if self._malloc_trim is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(_TRIM_DELAY_SECONDS, self._trim)

    def _trim(self) -> None:
        self._timer = None
        assert self._malloc_trim is not None
        self._malloc_trim(0)


give_back_memory_soon = _HeapTrimmer(_find_malloc_trim()).soon
