"""One tenant's wallboard on this instance: the board its viewers here hold, and `queue.stats` pushed to
them at most once a second.

Every event the tenant's feed dispatches here marks the board dirty (`touch`); one task per tenant then
reads the whole board from the counters (`wallboard/board.py`, a few milliseconds whatever the traffic)
no sooner than a second after its previous read, and sends each viewer the rows that changed. A burst of a
thousand events is one read and one push; the last change always arrives, since a change marked during a
read is read again a second later. Figures that move by the clock alone (midnight, a queue opening or
closing) are read at the moment the board says they will.

A viewer who starts watching gets the board as last pushed, whole, at once: the pushes after it are
changes to exactly that board, so what a viewer holds is always a board the server read, never a mix.
Each instance reads for its own viewers (no coordination between instances, nothing on the bus): with
several instances a tenant's board is read at most once a second by each instance that has viewers of
it, and every viewer still receives at most one push a second. The board is derived state, not a change,
so it is not written to the event log: a reconnecting viewer takes the whole board again instead of a
replay of stale ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from uuid import UUID

import orjson

from fiv_console.db.pool import DATABASE_TROUBLE, Database, json_default, tenant_tx
from fiv_console.realtime.socket import AgentSocket
from fiv_console.wallboard import board as wallboard
from fiv_console.wallboard.board import Wallboard, WallboardChange

log = logging.getLogger(__name__)

# At most one push a second per tenant to each viewer (docs/wallboard.md).
PUSH_INTERVAL = 1.0
# A read at a clock boundary waits this much past it, so the database's clock has crossed it too.
_CLOCK_SLACK = 0.5


def stats_frame(change: WallboardChange) -> str:
    return orjson.dumps({"type": "queue.stats", "data": change.model_dump(mode="json")}, default=json_default).decode()


class TenantBoard:
    def __init__(self, tenant_id: UUID, db: Database, *, interval: float = PUSH_INTERVAL) -> None:
        self.tenant_id = tenant_id
        self._db = db
        self._interval = interval
        self.watchers: set[AgentSocket] = set()
        self.board: Wallboard | None = None
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._last_read = float("-inf")
        self._clock: asyncio.TimerHandle | None = None
        self._failures = 0

    def watch(self, socket: AgentSocket) -> None:
        """The socket's person watches the board: they get it whole now (or after the first read)."""
        self.watchers.add(socket)
        if self.board is not None:
            socket.send(stats_frame(wallboard.whole(self.board)))
        else:
            self.touch()

    def unwatch(self, socket: AgentSocket) -> None:
        self.watchers.discard(socket)

    def touch(self) -> None:
        """Something changed: the board is read again within a second of the last read."""
        self._dirty = True
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._dirty and self.watchers:
                wait = self._last_read + self._interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._dirty = False
                self._last_read = loop.time()
                try:
                    async with tenant_tx(self._db, self.tenant_id) as conn:
                        board = await wallboard.read(conn)
                except Exception as exc:  # the database is away: try again a second later
                    if self._failures == 0 and isinstance(exc, DATABASE_TROUBLE):
                        log.warning("wallboard could not be read", extra={"error": type(exc).__name__})
                    elif self._failures == 0:
                        log.exception("wallboard could not be read")
                    self._failures += 1
                    self._dirty = True
                    continue
                self._failures = 0
                self._publish(board)
        finally:
            self._task = None

    def _publish(self, board: Wallboard) -> None:
        change = wallboard.whole(board) if self.board is None else wallboard.changes(self.board, board)
        self.board = board
        if self._clock is not None:
            self._clock.cancel()
        delay = (board.refresh_at - datetime.now(UTC)).total_seconds() + _CLOCK_SLACK
        self._clock = asyncio.get_running_loop().call_later(max(delay, 0.0), self.touch)
        if change is not None:
            frame = stats_frame(change)
            for socket in list(self.watchers):
                socket.send(frame)

    async def close(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
