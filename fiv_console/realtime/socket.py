"""One console tab's socket: who is behind it, what it may see, and its bounded outbox.

Frames for a socket are queued, never awaited by whoever produces them: the hub hands an event to
hundreds of sockets without waiting on any. One short-lived pump task per socket writes the queue out
and ends when it is empty, so an idle socket costs no task. A client that stops reading fills its queue;
at the limit the socket is closed (1013, "try again later") and the client resumes from its last seq,
while everyone else's frames go on at once.

During a replay (`resume`) the live events for this socket are held back and sent after the replayed
ones, so the client sees every event once, in seq order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from uuid import UUID

from aiohttp import WSCloseCode, web

from fiv_console.access import Audience, sees_all
from fiv_console.accounts.users import Role
from fiv_console.events import Event
from fiv_console.observability.metrics import FRAMES_SENT, SOCKETS_CLOSED_SLOW

log = logging.getLogger(__name__)

_CLOSE_WAIT = 1.0


class AgentSocket:
    __slots__ = (
        "_closing",
        "_drained",
        "_limit",
        "_outbox",
        "_pump",
        "_transport",
        "closed",
        "expires_at",
        "held",
        "joined_at",
        "last_offered",
        "name",
        "queue_ids",
        "replaying",
        "role",
        "sent_upto",
        "session_version",
        "started",
        "tenant_id",
        "user_id",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        *,
        tenant_id: UUID,
        user_id: UUID,
        role: Role,
        name: str,
        session_version: int,
        queue_ids: frozenset[UUID],
        queue_limit: int,
        expires_at: float,
    ) -> None:
        self.ws = ws
        self._transport = transport
        self.tenant_id = tenant_id
        self.user_id = user_id
        self.role: Role = role
        self.name = name
        self.session_version = session_version
        self.queue_ids = queue_ids
        # The last event seq handed to this socket (sent, or held during a replay): the same event reaching
        # it through two indexes (its queue and its user) is sent once.
        self.last_offered = 0
        # The tenant's seq when the socket joined: what came before, the client can only have by resuming.
        self.joined_at = 0
        # When the session behind it ends however active it is (Unix time): the socket ends with it.
        self.expires_at = expires_at
        # The seq up to which this socket's stream is complete: every event up to it that its person may see
        # has been sent. Held events (during a replay) count once they are let go.
        self.sent_upto = 0
        # A socket starts held: its client's first frame may be a resume, which must come before live events.
        self.replaying = True
        # Whether the client's first frame (or the wait for it) has decided where its stream starts.
        self.started = False
        self.held: list[tuple[Event, str]] = []
        self._outbox: deque[str] = deque()
        self._limit = queue_limit
        self._pump: asyncio.Task[None] | None = None
        self._drained: asyncio.Event | None = None
        self.closed = False
        self._closing: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Frames waiting to be written."""
        return len(self._outbox)

    @property
    def sees_all(self) -> bool:
        return sees_all(self.role)

    def sees(self, audience: Audience) -> bool:
        return audience.reaches(role=self.role, user_id=self.user_id, queue_ids=self.queue_ids)

    def offer(self, event: Event, frame: str) -> None:
        """A live event of the tenant's, in seq order; sent if this socket's person may see it now."""
        if self.closed or event.seq <= self.last_offered:
            return
        self.last_offered = event.seq
        if self.replaying:
            self.held.append((event, frame))
            if len(self.held) > self._limit:
                self.close(WSCloseCode.TRY_AGAIN_LATER, "too far behind: resume")
            return
        self.sent_upto = event.seq
        if self.sees(event.audience):
            self.send(frame)

    def go_live(self, *, skip_upto: int = 0) -> None:
        """Sends the held events (after any replay), leaving out those up to `skip_upto`, and goes live."""
        held, self.held = self.held, []
        self.replaying = False
        for event, frame in held:
            if event.seq > skip_upto and self.sees(event.audience):
                self.send(frame)
        self.sent_upto = max(self.sent_upto, self.last_offered, skip_upto)
        self.last_offered = max(self.last_offered, skip_upto)

    def send(self, text: str) -> None:
        if self.closed:
            return
        if len(self._outbox) >= self._limit:
            log.info("socket closed: its client does not read", extra={"queued": len(self._outbox)})
            SOCKETS_CLOSED_SLOW.inc()
            self.close(WSCloseCode.TRY_AGAIN_LATER, "too far behind: resume")
            return
        self._outbox.append(text)
        if self._pump is None:
            self._pump = asyncio.create_task(self._write())

    async def drained(self, within: float) -> bool:
        """Whether everything queued was written within `within` seconds (a replay sends page by page, never
        overflowing); a client too slow for that is closed, as for a full outbox."""
        try:
            async with asyncio.timeout(within):
                while self._outbox and not self.closed:
                    self._drained = self._drained or asyncio.Event()
                    await self._drained.wait()
        except TimeoutError:
            self.close(WSCloseCode.TRY_AGAIN_LATER, "too far behind: resume")
        return not self.closed

    async def _write(self) -> None:
        try:
            while self._outbox and not self.closed:
                await self.ws.send_str(self._outbox.popleft())
                FRAMES_SENT.inc()
        except (ConnectionError, RuntimeError):
            # The peer went away mid-write; the reader loop sees the close and cleans up.
            self.closed = True
            self._outbox.clear()
        finally:
            self._pump = None
            if self._drained is not None:
                self._drained.set()
                self._drained = None

    def close(self, code: int, reason: str) -> None:
        """Closes without waiting (the caller may be the hub, mid-dispatch); the reader loop then ends."""
        if self._closing is not None:
            return
        self.closed = True
        self._outbox.clear()
        self.held.clear()
        self._closing = asyncio.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        pump = self._pump
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        closing = asyncio.ensure_future(self.ws.close(code=code, message=reason.encode()))
        await asyncio.wait({closing}, timeout=_CLOSE_WAIT)
        closed_cleanly = closing.done() and not closing.cancelled() and closing.exception() is None
        transport = self._transport if isinstance(self._transport, asyncio.WriteTransport) else None
        if closed_cleanly and (transport is None or transport.get_write_buffer_size() == 0):
            return
        # A client that reads nothing will not read our close frame either (nor, after a failed heartbeat, what
        # is still buffered for it, which a graceful close would wait on forever): drop the connection.
        closing.cancel()
        if transport is not None:
            transport.abort()

    async def wait_closed(self) -> None:
        """Lets the closing task finish (the handler awaits it before returning)."""
        if self._closing is not None:
            with contextlib.suppress(Exception):
                await self._closing
