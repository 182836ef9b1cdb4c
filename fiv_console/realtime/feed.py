"""One tenant's feed on this instance: its events in seq order, no gaps, no repeats, to its sockets here.

The bus is only a doorbell and may deliver out of order (two instances publish at once) or not at all
(Redis was down). The feed keeps the seq it expects next: an event past it waits a moment for the ones
before it, then the feed reads what is missing from the log. Since seqs are handed out in commit order,
everything before a published event is already committed and readable. After the bus reports a gap,
and every few seconds as a safety net, the feed also reads whatever was committed after its position.

Sockets are indexed by what they may see (staff see all; agents by user id and by queue), so an event
costs its audience, not the tenant's headcount.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from uuid import UUID

from fiv_console import events
from fiv_console.access import Audience
from fiv_console.db.pool import DATABASE_TROUBLE, Database, tenant_tx
from fiv_console.events import Event
from fiv_console.realtime.protocol import event_frame
from fiv_console.realtime.socket import AgentSocket

log = logging.getLogger(__name__)

# How long an event past a gap waits for the events before it to arrive by bus before they are read.
GAP_WAIT = 0.05
_READ_PAGE = 1000
_RETRY_MAX = 5.0


class TenantFeed:
    def __init__(self, tenant_id: UUID, db: Database) -> None:
        self.tenant_id = tenant_id
        self._db = db
        self.sockets: set[AgentSocket] = set()
        self._staff: set[AgentSocket] = set()
        self._by_user: defaultdict[UUID, set[AgentSocket]] = defaultdict(set)
        self._by_queue: defaultdict[UUID, set[AgentSocket]] = defaultdict(set)
        self._next: int | None = None
        self._early: list[Event] = []
        self._pending: dict[int, Event] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._reading: asyncio.Task[None] | None = None
        self._read_again = False
        self._failures = 0
        self.ready = asyncio.Event()
        self.broken: BaseException | None = None
        # Hears every event dispatched here, whoever may see it (the tenant's wallboard, while watched).
        self.on_dispatch: Callable[[Event], None] | None = None

    @property
    def position(self) -> int:
        """The last seq dispatched here (a socket joining now receives everything after it)."""
        assert self._next is not None, "the feed has started"
        return self._next - 1

    async def start(self) -> None:
        """Called once subscribed to the bus: from now on nothing published is missed."""
        async with tenant_tx(self._db, self.tenant_id) as conn:
            last = await events.last_seq(conn)
        self._next = last + 1
        early, self._early = self._early, []
        self.receive(early)
        self.ready.set()

    def add(self, socket: AgentSocket) -> None:
        self.sockets.add(socket)
        self._index(socket)

    def remove(self, socket: AgentSocket) -> None:
        self.sockets.discard(socket)
        self._unindex(socket)

    def reindex(self, socket: AgentSocket, queue_ids: frozenset[UUID]) -> None:
        self._unindex(socket)
        socket.queue_ids = queue_ids
        self._index(socket)

    def _index(self, socket: AgentSocket) -> None:
        if socket.sees_all:
            self._staff.add(socket)
            return
        self._by_user[socket.user_id].add(socket)
        for queue_id in socket.queue_ids:
            self._by_queue[queue_id].add(socket)

    def _unindex(self, socket: AgentSocket) -> None:
        self._staff.discard(socket)
        for index, key in [(self._by_user, socket.user_id), *((self._by_queue, q) for q in socket.queue_ids)]:
            members = index.get(key)
            if members is not None:
                members.discard(socket)
                if not members:
                    del index[key]

    def targets(self, audience: Audience) -> Iterable[AgentSocket]:
        """The sockets here whose person is in the audience (a socket may come twice; `offer` sends once)."""
        if audience.kind == "tenant":
            yield from list(self.sockets)
            return
        yield from list(self._staff)
        if audience.kind == "supervisors":
            return
        for user_id in audience.user_ids:
            yield from list(self._by_user.get(user_id, ()))
        for queue_id in audience.queue_ids:
            yield from list(self._by_queue.get(queue_id, ()))

    def receive(self, received: Iterable[Event]) -> None:
        if self._next is None:
            self._early.extend(received)
            return
        for event in received:
            if event.seq >= self._next:
                self._pending[event.seq] = event
        self._advance()

    def _advance(self) -> None:
        assert self._next is not None
        while self._next in self._pending:
            self._dispatch(self._pending.pop(self._next))
            self._next += 1
        if self._pending:
            # Anything below the position came twice (the bus and the log both delivered it).
            self._pending = {seq: e for seq, e in self._pending.items() if seq > self._next}
        if self._pending and self._timer is None and self._reading is None:
            self._timer = asyncio.get_running_loop().call_later(GAP_WAIT, self.catch_up)
        elif not self._pending and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _dispatch(self, event: Event) -> None:
        if self.on_dispatch is not None:
            self.on_dispatch(event)
        frame: str | None = None
        for socket in self.targets(event.audience):
            frame = frame or event_frame(event)
            socket.offer(event, frame)

    def catch_up(self) -> None:
        """Reads from the log whatever was committed after this feed's position (a gap, or a lost doorbell)."""
        self._timer = None
        if self._next is None:
            return
        if self._reading is not None:
            self._read_again = True
            return
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        retry_in = GAP_WAIT
        try:
            while True:
                self._read_again = False
                assert self._next is not None
                start = self._next
                try:
                    async with tenant_tx(self._db, self.tenant_id) as conn:
                        found = await events.read(
                            conn, tenant_id=self.tenant_id, after=start - 1, upto=2**62, limit=_READ_PAGE
                        )
                except Exception as exc:  # the database is away or failing: try again, less and less often
                    if self._failures == 0 and isinstance(exc, DATABASE_TROUBLE):
                        log.warning("feed could not read the event log", extra={"error": type(exc).__name__})
                    elif self._failures == 0:
                        log.exception("feed could not read the event log")
                    self._failures += 1
                    retry_in = min(_RETRY_MAX, GAP_WAIT * 2**self._failures)
                    return
                self._failures = 0
                if found and found[0].seq > start and self._next == start:
                    # Retention removed what was missed; a socket that needs it resumes into a resync.
                    self._next = found[0].seq
                for event in found:
                    if event.seq >= self._next:
                        self._pending.setdefault(event.seq, event)
                self._advance()
                if len(found) < _READ_PAGE and not self._read_again:
                    return
        finally:
            self._reading = None
            if self._pending and self._timer is None:
                # What is still missing committed after this read's snapshot: read again shortly.
                self._timer = asyncio.get_running_loop().call_later(retry_in, self.catch_up)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
