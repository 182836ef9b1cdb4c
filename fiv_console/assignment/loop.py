"""The assignment loop of one instance: claims wherever something may be assignable, at once and as a sweep.

It wakes for a tenant when this instance commits something that may make a conversation assignable (a new
or returned conversation, freed capacity, an agent online, connected or gone), and every few seconds sweeps
every tenant (the safety net: another instance's commits, a lost wake-up, an absence that has just lasted
long enough). Each round first returns what absent agents hold to their queues (`assignment.absence`).
Every instance runs one; claims are safe to run concurrently (`assignment.claim`). `run_once` is what
tests call directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from fiv_console import events, tenants
from fiv_console.assignment.absence import requeue_from_absent
from fiv_console.assignment.claim import claim
from fiv_console.db.pool import DATABASE_TROUBLE, Database
from fiv_console.events import Announcer, Event

log = logging.getLogger(__name__)

# Events after which a conversation may be assignable: one to assign, or an agent able to take one.
WAKING_EVENTS = frozenset(
    {
        "conversation.created",
        "conversation.unassigned",
        "conversation.transferred",
        "conversation.closed",
        "conversation.reopened",
        "agent.presence",
    }
)
SWEEP_INTERVAL = 5.0


class AssignmentLoop:
    def __init__(self, db: Database, announcer: Announcer, *, grace: float, batch: int = 100) -> None:
        self._db = db
        self._announcer = announcer
        self._grace = timedelta(seconds=grace)
        self._batch = batch
        self._woken: set[UUID] = set()
        self._wake = asyncio.Event()

    def heard(self, tenant_id: UUID, announced: Sequence[Event]) -> None:
        """Committed events of this instance's: wake up for the tenant if they may make something assignable."""
        if any(event.type in WAKING_EVENTS for event in announced):
            self._woken.add(tenant_id)
            self._wake.set()

    async def run_once(self, tenant_id: UUID | None = None) -> int:
        """Claims in the tenant (or every tenant) until nothing more can be assigned; how many were."""
        if tenant_id is not None:
            return await self._drain(tenant_id)
        tenant_ids = await tenants.all_tenant_ids(self._db)
        return sum([await self._drain(t) for t in tenant_ids])

    async def _drain(self, tenant_id: UUID) -> int:
        async with events.changing(self._db, self._announcer, tenant_id) as (conn, batch):
            await requeue_from_absent(conn, batch, limit=self._batch)
        assigned = 0
        while True:
            async with events.changing(self._db, self._announcer, tenant_id) as (conn, batch):
                claimed = await claim(conn, batch, grace=self._grace, limit=self._batch)
            assigned += claimed.assigned
            # A full batch with assignments may leave more behind it; anything less is all there was for now.
            if claimed.assigned == 0 or claimed.waiting_seen < self._batch:
                return assigned

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(SWEEP_INTERVAL):
                    await self._wake.wait()
            except TimeoutError:
                sweep = True
            else:
                sweep = False
            self._wake.clear()
            woken, self._woken = self._woken, set()
            try:
                if sweep:
                    await self.run_once()  # every tenant, the woken ones among them
                else:
                    for tenant_id in woken:
                        await self._drain(tenant_id)
            except DATABASE_TROUBLE as exc:
                log.warning("assignment round failed", extra={"error": type(exc).__name__})
            except Exception:
                log.exception("assignment round failed")
