"""Conversations waiting per queue across the deployment, for /metrics.

Read through the reviewed lookup `queues_with_waiting()` (0022), which lists only the queues where someone
waits now (10,000 idle tenants are no series at all), and kept a few seconds per instance so that scrapes,
from however many Prometheus servers, ask PostgreSQL once per interval. The read is made before the
exposition by the scrape's handler (the collector itself is synchronous); when it fails (the database down
or slow) the families are left out of that scrape and a warning is logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from prometheus_client.core import GaugeMetricFamily, Metric

from fiv_console.db.pool import Database
from fiv_console.errors import Unavailable

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 5.0
# A scrape waits this long at most for the read; Prometheus's own timeout is 10 s by default.
READ_TIMEOUT_SECONDS = 2.0
WARN_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class WaitingLine:
    """One queue where conversations wait: its tenant's slug, its name, how many, since when the oldest."""

    tenant: str
    queue: str
    waiting: int
    oldest_enqueued_at: datetime | None


_WAITING_LINES_SQL = "select tenant, queue, waiting, oldest_enqueued_at from queues_with_waiting()"


async def waiting_lines(db: Database) -> list[WaitingLine]:
    """Every queue of the deployment with a conversation waiting now (no tenant set: the reviewed lookup)."""
    async with db.connection() as conn:
        return [
            WaitingLine(r["tenant"], r["queue"], int(r["waiting"]), r["oldest_enqueued_at"])
            for r in await conn.fetch(_WAITING_LINES_SQL)
        ]


class WaitingLines:
    """The last read of the deployment's waiting lines, at most `max_age` seconds old."""

    def __init__(
        self,
        *,
        max_age: float = MAX_AGE_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age
        self._read_timeout = read_timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._lines: list[WaitingLine] | None = None
        self._read_at: float | None = None
        self._warned_at: float | None = None

    async def refresh(self, db: Database) -> None:
        """Reads again when the last read is older than `max_age`; concurrent scrapes share one read, and a
        failed read is not retried before `max_age` either (a database that is down is not asked more)."""
        async with self._lock:
            now = self._clock()
            if self._read_at is not None and now - self._read_at < self._max_age:
                return
            self._read_at = now
            try:
                async with asyncio.timeout(self._read_timeout):
                    self._lines = await waiting_lines(db)
            except (Unavailable, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                self._lines = None
                if self._warned_at is None or now - self._warned_at >= WARN_EVERY_SECONDS:
                    self._warned_at = now
                    log.warning(
                        "waiting per queue left out of /metrics: the database did not answer",
                        extra={"error": type(exc).__name__},
                    )

    def collect(self) -> Iterator[Metric]:
        """The families, from the last read; none when it failed or nothing was read yet."""
        lines = self._lines
        if lines is None:
            return
        now = datetime.now(UTC)
        waits = {
            (line.tenant, line.queue): max(0.0, (now - line.oldest_enqueued_at).total_seconds())
            for line in lines
            if line.oldest_enqueued_at is not None
        }
        yield GaugeMetricFamily(
            "fiv_waiting_conversations",
            "Conversations waiting in every queue of the deployment (the same on every instance).",
            sum(line.waiting for line in lines),
        )
        yield GaugeMetricFamily(
            "fiv_oldest_wait_seconds",
            "How long the deployment's longest-waiting conversation has waited; 0 when none waits.",
            max(waits.values(), default=0.0),
        )
        per_queue = GaugeMetricFamily(
            "fiv_queue_waiting_conversations",
            "Conversations waiting, by tenant slug and queue name; only queues where someone waits.",
            labels=["tenant", "queue"],
        )
        oldest = GaugeMetricFamily(
            "fiv_queue_oldest_wait_seconds",
            "How long the queue's longest-waiting conversation has waited; only queues where someone waits.",
            labels=["tenant", "queue"],
        )
        for line in lines:
            per_queue.add_metric([line.tenant, line.queue], line.waiting)
            if (line.tenant, line.queue) in waits:
                oldest.add_metric([line.tenant, line.queue], waits[(line.tenant, line.queue)])
        yield per_queue
        yield oldest
