"""The requests this server is answering, counted so that a stopping server can wait for them to finish.

Stopping must not go through aiohttp's own shutdown while requests are in flight: it first marks every
connection closing, and from then on drops whatever the client still sends, so a webhook whose body is
still arriving could never complete. The server waits here first, with every connection still reading.
Once it is stopping, each response closes its connection, so keep-alive clients cannot keep it waiting by
sending more requests.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._none = asyncio.Event()
        self._none.set()
        self.stopping = False

    @property
    def count(self) -> int:
        return self._count

    async def finished(self) -> None:
        """Returns once no request is in flight."""
        await self._none.wait()

    def middleware(self) -> Middleware:
        """The outermost middleware: every request, console sockets included, counts until its handler ends."""

        @web.middleware
        async def count_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
            self._count += 1
            self._none.clear()
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if self.stopping:
                    exc.force_close()
                raise
            finally:
                self._count -= 1
                if self._count == 0:
                    self._none.set()
            if self.stopping:
                response.force_close()
            return response

        return count_in_flight
