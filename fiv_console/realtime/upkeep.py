"""The hub's periodic upkeep, and the event log's retention.

Every tick (a third of the presence grace period, at most 10 s), for each tenant this instance has
sockets of, or had within the grace period, one short transaction: refresh this instance's connection
leases, report the agents whose grace period ran out (anywhere: a crashed instance's agents too), and
close the sockets whose session ended or expired (a fallback for when the bus could not say so), and
re-read the queues each socket's person belongs to (likewise). The feeds also read
whatever the bus may have lost.

Once a minute, it also sweeps every tenant where someone is or was just connected (`tenants_with_presence()`),
so that the agents of a tenant whose only instance died are reported gone even while nobody of that tenant
is connected anywhere; idle tenants are not visited.

Retention: once an hour, the events older than the retention period are deleted in each tenant that has
some, and closed conversations past their tenant's own `retention_days` (`conversations/retention.py`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from uuid import UUID

from fiv_console import events
from fiv_console.accounts import tenants
from fiv_console.assignment import presence
from fiv_console.conversations import retention
from fiv_console.db.pool import DATABASE_TROUBLE, Database, tenant_tx
from fiv_console.realtime.hub import SESSION_ENDED, Hub
from fiv_console.routing import queues

log = logging.getLogger(__name__)

_SESSIONS_SQL = "select id, session_version, disabled from users where id = any($1::uuid[])"
PRUNE_INTERVAL = 3600.0
# How often each instance also sweeps the tenants it serves no socket of.
FULL_SWEEP_INTERVAL = 60.0


class Upkeep:
    def __init__(self, db: Database, hub: Hub, *, instance_id: UUID, grace: float) -> None:
        self._db = db
        self._hub = hub
        self._instance_id = instance_id
        self._grace = timedelta(seconds=grace)
        self.interval = min(10.0, grace / 3)
        # Tenants whose last socket here closed lately: watched until their agents' grace has run out.
        self._recent: dict[UUID, float] = {}

    def left(self, tenant_id: UUID) -> None:
        # Two ticks past the grace: the last sweep that can find the departure surely falls inside.
        self._recent[tenant_id] = time.monotonic() + self._grace.total_seconds() + 2 * self.interval

    async def run(self) -> None:
        # Spread over the first interval, so instances started together do not sweep together.
        next_full_sweep = time.monotonic() + FULL_SWEEP_INTERVAL * random.uniform(0.5, 1)  # noqa: S311 - not a secret
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
                if time.monotonic() >= next_full_sweep:
                    next_full_sweep = time.monotonic() + FULL_SWEEP_INTERVAL
                    await self.sweep_everywhere()
            except Exception:  # never expected (each tenant's errors are caught): logged, and the loop lives
                log.exception("presence upkeep round failed")

    async def sweep_everywhere(self) -> None:
        """Reports lapsed agents of every tenant, also those no live instance serves (their only instance
        died, or everyone left), which the ticks do not visit."""
        # Only tenants where someone is, or was just, connected can have an agent to report gone (sql/0020).
        tenant_ids = await tenants.tenants_with_presence(self._db)
        for tenant_id in tenant_ids:
            if tenant_id in self._hub.feeds:
                continue  # the ticks see to it
            try:
                async with events.changing(self._db, self._hub, tenant_id) as (conn, batch):
                    await presence.sweep(conn, batch, grace=self._grace)
            except Exception as exc:  # the next round tries again
                log.warning("presence sweep failed", extra={"tenant_id": str(tenant_id), "error": type(exc).__name__})

    async def tick(self) -> None:
        now = time.monotonic()
        self._recent = {t: until for t, until in self._recent.items() if until > now}
        for tenant_id in set(self._hub.feeds) | set(self._recent):
            try:
                await self._tend(tenant_id)
            except DATABASE_TROUBLE as exc:  # the next tick tries again
                log.warning("presence upkeep failed", extra={"tenant_id": str(tenant_id), "error": type(exc).__name__})
            except Exception:
                log.exception("presence upkeep failed", extra={"tenant_id": str(tenant_id)})

    async def _tend(self, tenant_id: UUID) -> None:
        feed = self._hub.feeds.get(tenant_id)
        sockets = list(feed.sockets) if feed is not None else []
        counts = Counter(s.user_id for s in sockets)
        async with events.changing(self._db, self._hub, tenant_id) as (conn, batch):
            if counts:
                await presence.refresh(conn, batch, instance_id=self._instance_id, sockets=dict(counts))
            live = {r["id"]: r for r in await conn.fetch(_SESSIONS_SQL, list(counts))} if counts else {}
            memberships = await queues.member_queue_ids_of(conn, user_ids=list(counts)) if counts else {}
            await presence.sweep(conn, batch, grace=self._grace)
            committed = await events.last_seq(conn)
        # A doorbell lost with Redis, and no event since to reveal the gap: the feed reads what it missed.
        if feed is not None and feed.ready.is_set() and feed.broken is None and committed > feed.position:
            feed.catch_up()
        now = time.time()
        for socket in sockets:
            row = live.get(socket.user_id)
            ended = row is None or row["disabled"] or row["session_version"] != socket.session_version
            if ended or socket.expires_at <= now:
                socket.close(*SESSION_ENDED)
            else:
                # Catches a membership change whose notice was lost with the bus.
                self._hub.reindex(socket, memberships.get(socket.user_id, frozenset()))


async def prune_events(db: Database, *, keep: timedelta) -> int:
    """Deletes the events older than `keep` of every tenant that has some, and applies the retention of
    closed conversations of every tenant that chose one; how many events went. Other tenants are not
    visited (sql/0020)."""
    pruned = 0
    for tenant_id in await tenants.tenants_with_events_before(db, datetime.now(UTC) - keep):
        async with tenant_tx(db, tenant_id) as conn:
            pruned += await events.prune(conn, keep=keep)
    for tenant_id in await tenants.tenants_with_retention(db):
        await retention.apply_retention(db, tenant_id)
    return pruned


async def run_retention(db: Database, *, keep: timedelta, interval: float = PRUNE_INTERVAL) -> None:
    while True:
        try:
            pruned = await prune_events(db, keep=keep)
            if pruned:
                log.info("old events pruned", extra={"events": pruned})
        except Exception as exc:  # the database is away: the next round tries again
            log.warning("event pruning failed", extra={"error": type(exc).__name__})
        await asyncio.sleep(interval)
