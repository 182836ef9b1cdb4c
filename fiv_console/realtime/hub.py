"""This instance's hub: its sockets, one feed per tenant they belong to, and the bus between instances.

Committed events are announced on the tenant's bus channel (`announce`); every instance with sockets of
that tenant is subscribed and hands them to its feed, which orders them and gives each to the sockets
here whose person may see it. Nothing goes to another instance's sockets, or another tenant's.

A reconnecting client resumes from its last seq: the socket is already joined (subscribed), so live
events are held for it while the log is read up to the feed's position; then the held ones follow.
Nothing falls between the two, and nothing comes twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from uuid import UUID

from aiohttp import WSCloseCode

from fiv_console import events
from fiv_console.bus.base import Bus, Handler
from fiv_console.bus.channels import tenant_channel
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.errors import Unavailable
from fiv_console.events import Event
from fiv_console.observability.metrics import BUS_PUBLISHED, EVENTS_ANNOUNCED
from fiv_console.realtime import wire
from fiv_console.realtime.board_push import TenantBoard
from fiv_console.realtime.feed import TenantFeed
from fiv_console.realtime.protocol import SESSION_ENDED_CODE, event_frame, resync_frame, typing_frame
from fiv_console.realtime.socket import AgentSocket
from fiv_console.routing import queues

log = logging.getLogger(__name__)

# Past this many events to replay, a client is better served reloading its state (`resync`).
MAX_REPLAY = 10_000
_REPLAY_PAGE = 500
# A replay waits this long for a page to be written before it gives up on the client (1013: resume).
DRAIN_WAIT = 15.0
# Session ends and access changes reach sockets through the bus; the upkeep tick checks them too.
SESSION_ENDED = (SESSION_ENDED_CODE, "session ended: sign in again")


class Hub:
    def __init__(self, db: Database, bus: Bus[wire.Message]) -> None:
        self._db = db
        self._bus = bus
        self.feeds: dict[UUID, TenantFeed] = {}
        # The wallboards watched by sockets here, per tenant.
        self.boards: dict[UUID, TenantBoard] = {}
        self._handlers: dict[UUID, Handler[wire.Message]] = {}
        self._by_user: defaultdict[UUID, set[AgentSocket]] = defaultdict(set)
        self._tasks: set[asyncio.Task[None]] = set()
        # Sockets per user, counted from before the upgrade to the handler's end (the per-user limit).
        self._reserved: defaultdict[UUID, int] = defaultdict(int)
        # The newest access refresh per user: only its reading is applied.
        self._access_reads: dict[UUID, int] = {}
        self._reading_ids = itertools.count()
        self.stopping = False
        self._listeners: list[Callable[[UUID, Sequence[Event]], None]] = []
        bus.on_gap(self.catch_up)

    # Announcing (events.Announcer) and telling the other instances.

    def announce(self, tenant_id: UUID, announced: Sequence[Event]) -> None:
        if announced:
            EVENTS_ANNOUNCED.inc(len(announced))
            BUS_PUBLISHED.inc()
            self._bus.publish(tenant_channel(tenant_id), list(announced))
            for listener in self._listeners:
                listener(tenant_id, announced)

    def listen(self, listener: Callable[[UUID, Sequence[Event]], None]) -> None:
        """`listener` hears every event this instance announces, as it is announced (the assignment loop)."""
        self._listeners.append(listener)

    def notify(self, tenant_id: UUID, notice: wire.Notice) -> None:
        BUS_PUBLISHED.inc()
        self._bus.publish(tenant_channel(tenant_id), notice)

    # Sockets.

    def sockets_of(self, user_id: UUID) -> set[AgentSocket]:
        return self._by_user.get(user_id, set())

    def load(self) -> tuple[int, int]:
        """Sockets open on this instance, and frames queued for them (read by /metrics)."""
        sockets = [socket for held in self._by_user.values() for socket in held]
        return len(sockets), sum(socket.queued for socket in sockets)

    def reserve(self, user_id: UUID, limit: int) -> bool:
        """Counts one more socket of the user's, unless they hold `limit` already."""
        if self._reserved[user_id] >= limit:
            return False
        self._reserved[user_id] += 1
        return True

    def release(self, user_id: UUID) -> None:
        self._reserved[user_id] -= 1
        if self._reserved[user_id] <= 0:
            del self._reserved[user_id]

    def reindex(self, socket: AgentSocket, queue_ids: frozenset[UUID]) -> None:
        """The queues whose events the socket receives, as its person's memberships now are."""
        feed = self.feeds.get(socket.tenant_id)
        if feed is not None and socket in feed.sockets and socket.queue_ids != queue_ids:
            feed.reindex(socket, queue_ids)

    async def join(self, socket: AgentSocket) -> int:
        """Adds the socket to its tenant's feed (subscribing first if it is the tenant's first socket here);
        returns the seq it starts after."""
        feed = self.feeds.get(socket.tenant_id)
        if feed is None:
            feed = self.feeds[socket.tenant_id] = TenantFeed(socket.tenant_id, self._db)
            handler = self._handlers[socket.tenant_id] = self._handler_for(socket.tenant_id)
            try:
                await self._bus.subscribe(tenant_channel(socket.tenant_id), handler)
                await feed.start()
            except BaseException as exc:
                feed.broken = exc
                feed.ready.set()  # sockets joining meanwhile hear of it too
                await self._drop_feed(socket.tenant_id)
                raise
        else:
            await feed.ready.wait()
            if feed.broken is not None:
                raise Unavailable("the tenant's event feed could not start") from feed.broken
        socket.joined_at = socket.sent_upto = socket.last_offered = feed.position
        feed.add(socket)
        self._by_user[socket.user_id].add(socket)
        return feed.position

    def watch_board(self, socket: AgentSocket) -> None:
        """The socket (a joined staff socket) receives its tenant's wallboard: whole, then `queue.stats`."""
        board = self.boards.get(socket.tenant_id)
        if board is None:
            board = self.boards[socket.tenant_id] = TenantBoard(socket.tenant_id, self._db)
            self.feeds[socket.tenant_id].on_dispatch = lambda _event: board.touch()
        board.watch(socket)

    async def _unwatch_board(self, socket: AgentSocket) -> None:
        board = self.boards.get(socket.tenant_id)
        if board is None:
            return
        board.unwatch(socket)
        if not board.watchers:
            del self.boards[socket.tenant_id]
            feed = self.feeds.get(socket.tenant_id)
            if feed is not None:
                feed.on_dispatch = None
            await board.close()

    async def leave(self, socket: AgentSocket) -> None:
        await self._unwatch_board(socket)
        users = self._by_user.get(socket.user_id)
        if users is not None:
            users.discard(socket)
            if not users:
                del self._by_user[socket.user_id]
        feed = self.feeds.get(socket.tenant_id)
        if feed is not None:
            feed.remove(socket)
            if not feed.sockets and feed.ready.is_set():
                await self._drop_feed(socket.tenant_id)

    async def _drop_feed(self, tenant_id: UUID) -> None:
        feed = self.feeds.pop(tenant_id, None)
        handler = self._handlers.pop(tenant_id, None)
        if handler is not None:
            await self._bus.unsubscribe(tenant_channel(tenant_id), handler)
        if feed is not None:
            await feed.close()

    def catch_up(self) -> None:
        """Messages may have been lost: every feed reads what was committed after its position."""
        for feed in self.feeds.values():
            feed.catch_up()

    async def resume(self, socket: AgentSocket, last_seq: int, *, late: bool = False) -> None:
        """Replays the events after `last_seq` that the socket's person may see, then goes live (the held
        live events follow). `resync` when they are no longer all in the log, or too many to be worth it.

        A client may have seen more than this instance has yet dispatched (it was on another instance a
        moment ago): those events are left out when they arrive here. A `late` resume (the socket went live
        without one) asking for what came before the socket joined would get it after newer events: the
        client is told to resync instead.
        """
        socket.replaying = True
        skip_upto = 0
        try:
            upto = socket.sent_upto
            if last_seq == upto:
                return
            if late and last_seq < socket.joined_at:
                socket.send(resync_frame(upto))
                return
            async with tenant_tx(self._db, socket.tenant_id) as conn:
                oldest = await events.oldest_kept(conn)
                committed = await events.last_seq(conn)
            if last_seq > upto:
                if last_seq > committed:
                    socket.send(resync_frame(upto))
                else:
                    skip_upto = last_seq
                return
            if last_seq + 1 < oldest or upto - last_seq > MAX_REPLAY:
                socket.send(resync_frame(upto))
                return
            after = last_seq
            while after < upto and not socket.closed:
                async with tenant_tx(self._db, socket.tenant_id) as conn:
                    page = await events.read(
                        conn, tenant_id=socket.tenant_id, after=after, upto=upto, limit=_REPLAY_PAGE
                    )
                if not page:
                    break
                for event in page:
                    if socket.sees(event.audience):
                        socket.send(event_frame(event))
                after = page[-1].seq
                if not await socket.drained(within=DRAIN_WAIT):
                    return
        finally:
            socket.go_live(skip_upto=skip_upto)

    # The bus.

    def _handler_for(self, tenant_id: UUID) -> Handler[wire.Message]:
        def handle(message: wire.Message) -> None:
            self._on_message(tenant_id, message)

        return handle

    def _on_message(self, tenant_id: UUID, message: wire.Message) -> None:
        feed = self.feeds.get(tenant_id)
        if feed is None:
            return
        if isinstance(message, list):
            feed.receive(message)
        elif isinstance(message, wire.Typing):
            frame = typing_frame(message.conversation_id, message.user_id, message.name)
            for socket in set(feed.targets(message.audience)):
                if socket.user_id != message.user_id and socket.sees(message.audience):
                    socket.send(frame)
        elif isinstance(message, wire.SessionsEnded):
            for socket in list(self.sockets_of(message.user_id)):
                socket.close(*SESSION_ENDED)
        elif isinstance(message, wire.AccessChanged):
            self._spawn(self.refresh_access(message.user_id))

    async def refresh_access(self, user_id: UUID) -> None:
        """Reads again which queues the user's sockets here may follow (membership changed)."""
        sockets = list(self.sockets_of(user_id))
        if not sockets:
            return
        self._access_reads[user_id] = reading = next(self._reading_ids)
        try:
            async with tenant_tx(self._db, sockets[0].tenant_id) as conn:
                queue_ids = await queues.member_queue_ids(conn, user_id=user_id)
        finally:
            newest = self._access_reads.get(user_id) == reading
            if newest:
                del self._access_reads[user_id]
        if newest:
            for socket in self.sockets_of(user_id):
                self.reindex(socket, queue_ids)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("hub task failed", exc_info=task.exception())

    def close_sockets(self) -> None:
        """Closes every socket here (1012: the client reconnects, to another instance if there is one), and
        any still being opened as soon as it is."""
        self.stopping = True
        for sockets in list(self._by_user.values()):
            for socket in list(sockets):
                socket.close(WSCloseCode.SERVICE_RESTART, "server restarting")

    async def close(self) -> None:
        self.close_sockets()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for board in list(self.boards.values()):
            await board.close()
        self.boards.clear()
        for tenant_id in list(self.feeds):
            await self._drop_feed(tenant_id)
