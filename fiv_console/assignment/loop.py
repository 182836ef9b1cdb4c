"""The assignment loop of one instance: claims wherever something may be assignable, at once and as a sweep.

It wakes for a tenant when this instance commits something that may make a conversation assignable (a new
or returned conversation, freed capacity, an agent online, connected or gone), and every few seconds sweeps
every tenant with an open conversation (the safety net: another instance's commits, a lost wake-up, and
whatever depends on time; a tenant with none has nothing due, so idle tenants cost nothing).

A round in a tenant, each step its own short transaction:
1. the wallboard's counters take in their latest changes (`assignment.counters`); what absent agents hold
   goes back to the queues (`assignment.absence`), and in a sweep so does what was left unanswered too long
   (`assignment.unanswered`);
2. claims until nothing more can be assigned (`assignment.claim`);
3. in a sweep, waiting conversations past their target are marked (`assignment.sla`) and inactive ones
   closed; then what to tell customers left waiting (`assignment.customer_replies`) is stored, and sent
   after commit by the dispatcher (an instance without one stores no replies); in a sweep, replies a
   stopped instance left unsent are sent again.
Every instance runs one; every step is safe to run concurrently. `run_once` is what tests call directly:
a sweep round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from fiv_console import events
from fiv_console.accounts import tenants
from fiv_console.assignment import counters, customer_replies, daily_counters
from fiv_console.assignment.absence import requeue_from_absent
from fiv_console.assignment.claim import claim
from fiv_console.assignment.sla import mark_breaches
from fiv_console.assignment.unanswered import reroute_unanswered
from fiv_console.db.pool import DATABASE_TROUBLE, Database
from fiv_console.events import Announcer, Event
from fiv_console.messages.sending import Dispatcher
from fiv_console.observability.context import tenant_id_var
from fiv_console.observability.metrics import ASSIGNED, WAKE_TO_ASSIGNED

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
        "queue.updated",
        "queue.members_changed",
    }
)
SWEEP_INTERVAL = 5.0


class AssignmentLoop:
    def __init__(
        self,
        db: Database,
        announcer: Announcer,
        *,
        grace: float,
        batch: int = 100,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self._db = db
        self._announcer = announcer
        self._grace = timedelta(seconds=grace)
        self._batch = batch
        self._dispatcher = dispatcher
        self._woken: set[UUID] = set()
        # When each woken tenant was first woken since its last round (for the wake-to-assigned histogram).
        self._woken_at: dict[UUID, float] = {}
        self._wake = asyncio.Event()
        # For /health: when this loop began, and last finished a tenant's round and a sweep of every tenant.
        self.started_at = datetime.now(UTC)
        self.last_round_at: datetime | None = None
        self.last_sweep_at: datetime | None = None

    def heard(self, tenant_id: UUID, announced: Sequence[Event]) -> None:
        """Committed events of this instance's: wake up for the tenant if they may make something assignable."""
        if any(event.type in WAKING_EVENTS for event in announced):
            self._woken.add(tenant_id)
            self._woken_at.setdefault(tenant_id, time.monotonic())
            self._wake.set()

    async def run_once(self, tenant_id: UUID | None = None) -> int:
        """A sweep round in the tenant (or every tenant with an open conversation); how many were assigned.

        Sweeping every tenant, it serves the tenants woken meanwhile between two of them (a long sweep must
        not hold up an agent freed elsewhere), and a tenant whose round fails does not stop the others."""
        if tenant_id is not None:
            return await self._round(tenant_id, sweep=True)
        assigned = 0
        # Only tenants with an open conversation have anything due: idle tenants cost nothing (sql/0020).
        for each in await tenants.tenants_with_open_conversations(self._db):
            assigned += await self._guarded_round(each, sweep=True)
            await self._woken_rounds()
        self.last_sweep_at = datetime.now(UTC)
        return assigned

    async def _woken_rounds(self) -> None:
        woken, self._woken = self._woken, set()
        for tenant_id in woken:
            assigned = await self._guarded_round(tenant_id, sweep=False)
            woken_at = self._woken_at.pop(tenant_id, None)
            if assigned and woken_at is not None:
                WAKE_TO_ASSIGNED.observe(time.monotonic() - woken_at)

    async def _guarded_round(self, tenant_id: UUID, *, sweep: bool) -> int:
        tenant_id_var.set(str(tenant_id))
        try:
            assigned = await self._round(tenant_id, sweep=sweep)
        except DATABASE_TROUBLE as exc:
            log.warning("assignment round failed", extra={"error": type(exc).__name__})
            return 0
        except Exception:
            log.exception("assignment round failed")
            return 0
        finally:
            tenant_id_var.set(None)
        self.last_round_at = datetime.now(UTC)
        ASSIGNED.inc(assigned)
        return assigned

    async def _round(self, tenant_id: UUID, *, sweep: bool) -> int:
        async with events.changing(self._db, self._announcer, tenant_id) as (conn, batch):
            tenant = await tenants.get_tenant(conn, tenant_id=tenant_id)
            if tenant is None:
                return 0
            can_send = self._dispatcher is not None
            tell_waiting = can_send and await customer_replies.configured(conn, tenant)
            await counters.fold(conn, tenant_id)
            await daily_counters.fold(conn, tenant_id)
            await requeue_from_absent(conn, batch, tenant.settings, limit=self._batch)
            if sweep:
                await reroute_unanswered(conn, batch, tenant.settings, limit=self._batch)
        assigned = 0
        while True:
            async with events.changing(self._db, self._announcer, tenant_id) as (conn, batch):
                claimed = await claim(conn, batch, grace=self._grace, limit=self._batch, settings=tenant.settings)
            assigned += claimed.assigned
            # A full batch with assignments may leave more behind it, if anyone still has room; anything less
            # is all there was for now.
            if claimed.assigned == 0 or claimed.waiting_seen < self._batch or not claimed.room_left:
                break
        if sweep or tell_waiting:
            async with events.changing(self._db, self._announcer, tenant_id) as (conn, batch):
                if sweep:
                    await mark_breaches(conn, batch, limit=self._batch)
                written = await customer_replies.write(
                    conn, batch, tenant, limit=self._batch, sweep=sweep, can_send=can_send, tell_waiting=tell_waiting
                )
            if self._dispatcher is not None:
                self._dispatcher.send(tenant_id, written.replies)
        if sweep and self._dispatcher is not None:
            async with events.changing(self._db, self._announcer, tenant_id) as (conn, batch):
                stranded = await customer_replies.resend_stranded(conn, batch, tenant_id, limit=self._batch)
            self._dispatcher.send(tenant_id, stranded)
        return assigned

    async def run(self) -> None:
        clock = asyncio.get_running_loop().time
        # A deadline, not a timeout per wait: wake-ups every few seconds must not put the sweep off forever.
        next_sweep = clock() + SWEEP_INTERVAL
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_sweep - clock())):
                    await self._wake.wait()
            except TimeoutError:
                pass
            sweep = clock() >= next_sweep
            if sweep:
                next_sweep = clock() + SWEEP_INTERVAL
            self._wake.clear()
            await self._woken_rounds()
            if sweep:
                try:
                    await self.run_once()  # every tenant
                except DATABASE_TROUBLE as exc:  # listing the tenants failed: the next sweep tries again
                    log.warning("assignment sweep failed", extra={"error": type(exc).__name__})
