"""What one connection may hold: the header deadline (a connection that has not sent a request's complete
headers within `HEADER_TIMEOUT_SECONDS` of connecting, or of its previous answer, is closed), and how much of
a body it buffers before anything reads it.

aiohttp has no deadline of its own for receiving headers. Its keep-alive timer is meant for idle
connections between requests (an hour by default, armed at the first answer in older releases), so a client
that trickles a header line every few seconds, or connects and sends nothing, holds a connection, its task
and its buffers for as long as it likes: hundreds of them are a slowloris attack. This module's
`RequestHandler` arms a timer when the connection is made and again once each answer is written, disarms it
as soon as aiohttp has parsed a complete request head, and closes the connection if it fires first. Bodies
have deadlines of their own (`fiv_console.web.bodies`, and uploads in `fiv_console.web.api.media`); once a
body has missed its deadline (answered 408), the handler closes the connection at once instead of reading on.

aiohttp builds its handlers inside its `Server`, which `AppRunner` makes; `AppRunner` here makes a `Server`
that builds these handlers instead, reading the deadline from the application's settings. `fiv-console serve`
runs the application with it (`fiv_console.serving`), and so does the tests' server (`tests/conftest.py`),
so the tests prove the deadline on the aiohttp release they run with: this leans on two of aiohttp's
internals (the `Server`'s handler arguments and the handler's count of parsed requests).
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from aiohttp.web_server import Server

from fiv_console.keys import settings_key

log = logging.getLogger(__name__)


class HeaderDeadlineHandler(RequestHandler):
    """aiohttp's connection handler, closing connections that do not send complete request headers in time."""

    __slots__ = ("_header_timeout", "_header_timer")

    def __init__(self, manager: Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            self._disarm()

    async def finish_response(
        self, request: BaseRequest, resp: StreamResponse, start_time: float | None
    ) -> tuple[StreamResponse, bool]:
        finished = await super().finish_response(request, resp, start_time)
        if resp.status == HTTPStatus.REQUEST_TIMEOUT:
            # The body missed its deadline: aiohttp would go on reading it for up to `lingering_time` (10 s)
            # so the client can read the answer, which a client this slow has not earned.
            self.force_close()
        elif not self._messages:
            # Requests already parsed behind this one (pipelined) need no deadline: their heads are here.
            self._arm()
        return finished

    def _arm(self) -> None:
        self._disarm()
        if self.transport is not None:
            self._header_timer = self._loop.call_later(self._header_timeout, self._headers_overdue)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if self.transport is not None:
            log.debug("connection closed: no complete request headers in time", extra={"peer": str(self.peername)})
            self.force_close()


class _HeaderDeadlineServer(Server):
    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return HeaderDeadlineHandler(self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs)


# What one connection may buffer of a body nobody is reading yet (aiohttp pauses reading at twice this): a
# body refused unread is still read and dropped for a while, so the client can read the answer, and at
# aiohttp's 256 KiB a hundred such connections held 50 MiB between them.
READ_BUFFER_BYTES = 64 * 1024


class AppRunner(web.AppRunner):
    """`aiohttp.web.AppRunner` whose connections keep the header deadline of the application's settings, and
    buffer at most READ_BUFFER_BYTES (twice that before reading pauses) of a body not yet read."""

    async def _make_server(self) -> Server:
        made = await super()._make_server()
        return _HeaderDeadlineServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=asyncio.get_running_loop(),
            header_timeout=self.app[settings_key].header_timeout_seconds,
            **{"read_bufsize": READ_BUFFER_BYTES, **made._kwargs},
        )
