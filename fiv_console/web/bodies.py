"""Request bodies read whole: their size limit, their deadline, and the one buffer they are read into.

Every body the server reads whole (JSON calls, webhooks, sign-in) goes through `read_body`:
- a declared `Content-Length` over the limit is refused (413) before a byte is read; a chunked body is cut off
  (413) as soon as it passes it;
- the whole body must arrive within `BODY_TIMEOUT_SECONDS`, or the request is answered 408 (a client that
  trickles a body holds nothing past it); a caller may also ask for a `Pace` (bodies from callers that
  have proven nothing: a first byte soon, then a least average rate);
- a body is kept as the chunks that arrived until it is whole, so what a body holds is what its client
  really sent, whatever it declared (aiohttp's `request.read()` also raises its stream's buffer to the whole
  limit, letting a stalled client park megabytes in it);
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
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Pace:
    """The least a body must keep up besides its total deadline: some of it within `grace_seconds` of its
    headers, then on average `min_bytes_per_second` (each byte received moves its deadline that much later)."""

    grace_seconds: float
    min_bytes_per_second: int

    def deadline(self, started: float, received: int) -> float:
        return started + self.grace_seconds + received / self.min_bytes_per_second


def over_limit(request: web.Request, limit: int) -> bool:
    """Whether the declared length alone already passes `limit` (a chunked body declares none)."""
    declared = request.content_length
    return declared is not None and declared > limit


async def read_body(
    request: web.Request,
    *,
    limit: int | None = None,
    pace: Pace | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> bytes:
    """The whole body, at most `limit` bytes (unset: the application's `client_max_size`), within the deadline
    and at `pace` if given. `on_chunk` is told each chunk's size before the chunk is kept, and may refuse it
    by raising a DomainError."""
    if _BODY_KEY in request:
        return request[_BODY_KEY]
    if not request.body_exists:  # most calls (GET): nothing to wait for, so no deadline to arm
        request[_BODY_KEY] = b""
        return b""
    limit = request.client_max_size if limit is None else limit
    if over_limit(request, limit):
        raise BodyTooLarge(limit)
    seconds = request.app[settings_key].body_timeout_seconds
    loop = asyncio.get_running_loop()
    started = loop.time()
    total_deadline = started + seconds
    received = 0
    try:
        deadline = total_deadline if pace is None else min(total_deadline, pace.deadline(started, 0))
        async with asyncio.timeout_at(deadline) as timer:

            def arrived(size: int) -> None:
                nonlocal received
                if on_chunk is not None:
                    on_chunk(size)
                received += size
                if pace is not None:
                    timer.reschedule(min(total_deadline, pace.deadline(started, received)))

            body = await _read(request.content, request.content_length, limit, arrived)
    except TimeoutError:
        raise BodyTooSlow(_too_slow(seconds, pace)) from None
    request[_BODY_KEY] = body
    return body


def _too_slow(seconds: float, pace: Pace | None) -> str:
    if pace is None:
        return f"the body did not arrive within {seconds:g} seconds"
    return (
        f"the body did not arrive in time: within {seconds:g} seconds, starting within {pace.grace_seconds:g} "
        f"and at {pace.min_bytes_per_second} bytes a second or more"
    )


# What is kept grows with what arrives, never with what is declared: a client that declares megabytes and
# sends nothing must not make the server allocate them. On failure (a deadline, a refusal, a client gone)
# the part read is dropped before the exception leaves: its traceback keeps the reading frame alive until
# the next garbage collection, which would keep megabytes with it.


async def _read(stream: StreamReader, declared: int | None, limit: int, arrived: Callable[[int], None]) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await stream.readany():
            if size + len(chunk) > limit:
                raise BodyTooLarge(limit)
            arrived(len(chunk))
            chunks.append(chunk)
            size += len(chunk)
        if declared is not None and size != declared:
            # aiohttp's parser ends a body only at its declared length or with an error; a guard.
            raise InvalidInput("the body ended before its Content-Length")
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
