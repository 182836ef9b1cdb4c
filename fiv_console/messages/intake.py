"""Webhook intake: parsed webhooks made durable, one transaction per tenant, before Meta gets its 200.

Each business number (`phone_number_id`) leads, through the reviewed lookup (cached: a number's route
never changes), to its channel and tenant; that tenant's transaction is the only one its records touch.
In it: contacts are upserted with their profile name; each message is inserted once per (channel, wamid);
a message from a contact without an open conversation opens one in the channel's queue, otherwise it
joins the open one and moves its last-inbound time (the 24-hour window); receipts are recorded and
applied forwards (`fiv_console.messages.statuses`); a WhatsApp group's subject and description from the
group webhooks are kept on its contact (`messages.group_names`); the events of it all are appended last.
Once committed, the groups that messages came from are handed to `GroupNames`, which fetches the name of
one not known yet in the background.

Batching (`Intake`, `_Lane`): the POSTs for one tenant that arrive while its transaction runs wait and
are then stored together in the next one, each answered when that commits; the messages of a batch go
through a few set-based statements (`inbound.store_messages`) rather than five statements each.

Concurrency: contacts' rows are locked first (the upsert takes them) in the order of their keys, so two
deliveries of one message, or two messages of one customer, are handled one after the other, the second
finding what the first did, and two batches never wait on each other's contacts in a cycle. The groups a
batch's group webhooks rename are among them (locked with the messages' groups, though applied last):
locked after a conversation, two batches crossing two groups would each hold what the other waits for.
A deadlock with other work, or a serialization failure, is retried a few times.

Poison: a character no database could store was replaced where it is (`payloads`), so the item holding
it is stored like any other; an item without the ids needed to store it goes to the dead-letter box; if the
database refuses a batch for its data (a value a check rejects), the batch is done again item by item, each
in a savepoint (`inbound.store_messages` with one message), and only the refused items go to the
dead-letter box. A number no tenant has is a dead letter too. None of these is an error for Meta: the
POST is answered 200 once everything else is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from fiv_console import events
from fiv_console.db.pool import Connection, Database, tenant_tx
from fiv_console.errors import Unavailable
from fiv_console.events import Announcer, EventBatch
from fiv_console.messages import channel_errors, dead_letters, group_names
from fiv_console.messages import statuses as message_statuses
from fiv_console.messages.inbound import (
    NUMBER_MAX,
    IntakeResult,
    Route,
    contact_key_of,
    item_bytes,
    keep_unstorable,
    store_messages,
)
from fiv_console.whatsapp.payloads import (
    INVALID,
    GroupChange,
    InboundMessage,
    StatusUpdate,
    WebhookBatch,
    WebhookError,
)

log = logging.getLogger(__name__)

_ROUTES_SQL = """
select p.phone_number_id, r.tenant_id, r.channel_id
from unnest($1::text[]) as p(phone_number_id)
cross join lateral channel_for_phone_number(p.phone_number_id) as r
"""


class Intake:
    """The intake of one process: routes cached, and one tenant's concurrent POSTs stored together.

    While a transaction of a tenant's runs, the POSTs for that tenant that arrive queue up; the next one to
    go takes all that queued (up to `batch_limit` messages and statuses) into one transaction, and answers
    each POST once it commits. Under load this turns many small commits into few larger ones, and the
    tenant's event counter is taken once per batch instead of being fought over by every POST; alone, a
    POST waits for nobody. Nothing is acknowledged before its own rows are committed.
    """

    def __init__(
        self,
        db: Database,
        announcer: Announcer,
        *,
        batch_limit: int = 500,
        routes_kept: int = 10_000,
        names: group_names.GroupNames | None = None,
    ) -> None:
        self._db = db
        self._announcer = announcer
        self._names = names
        self._batch_limit = batch_limit
        self._routes_kept = routes_kept
        # A number's channel and tenant never change (numbers are unique, never moved or deleted by the API).
        self._routes: OrderedDict[str, Route] = OrderedDict()
        self._lanes: dict[UUID, _Lane] = {}

    async def ingest(self, batch: WebhookBatch, *, body: bytes) -> IntakeResult:
        """Stores the batch; raises `Unavailable` when the database cannot be reached (Meta must retry)."""
        result = IntakeResult()
        numbers = sorted(
            {m.phone_number_id for m in batch.messages}
            | {s.phone_number_id for s in batch.statuses}
            | {e.phone_number_id for e in batch.errors}
            | {g.phone_number_id for g in batch.groups}
        )
        for error in batch.errors:
            log.warning(
                "WhatsApp reported an error for a business number",
                extra={"phone_number_id": error.phone_number_id, "code": error.error.code if error.error else None},
            )
        unreadable = [other for other in batch.other_changes if other.problem is not None]
        for other in batch.other_changes:
            if other.problem is None:
                log.info("webhook change not about messages ignored", extra={"field": other.field})

        routes = await self._routes_of(numbers)
        work: dict[UUID, _TenantWork] = {}
        for message in batch.messages:
            if (route := routes.get(message.phone_number_id)) is not None:
                work.setdefault(route.tenant_id, _TenantWork(route.tenant_id, body)).messages.append((route, message))
        for status in batch.statuses:
            if (route := routes.get(status.phone_number_id)) is not None:
                work.setdefault(route.tenant_id, _TenantWork(route.tenant_id, body)).statuses.append((route, status))
        for position, error in enumerate(batch.errors):
            if (route := routes.get(error.phone_number_id)) is not None:
                work.setdefault(route.tenant_id, _TenantWork(route.tenant_id, body)).errors.append(
                    (route, error, position)
                )
        for group in batch.groups:
            if (route := routes.get(group.phone_number_id)) is not None:
                work.setdefault(route.tenant_id, _TenantWork(route.tenant_id, body)).groups.append((route, group))
        for tenant_work in work.values():
            result.add(
                await self._lane(tenant_work.tenant_id).store(self._db, self._announcer, tenant_work, self._batch_limit)
            )
            if self._names is not None:
                for route, message in tenant_work.messages:
                    if message.group_id is not None:
                        self._names.want(route.tenant_id, route.channel_id, message.group_id)

        # Last, so that a POST Meta must deliver again (a tenant's transaction failed) leaves no dead letter twice.
        unknown = [number for number in numbers if number not in routes]
        if unknown or unreadable:
            async with self._db.connection() as conn, conn.transaction():
                if unknown:
                    await dead_letters.keep(
                        conn,
                        reason="unroutable",
                        body=body,
                        phone_number_id=unknown[0][:NUMBER_MAX] if len(unknown) == 1 else None,
                        detail="no channel has these numbers: " + ", ".join(n[:NUMBER_MAX] for n in unknown),
                    )
                    log.warning(
                        "webhook for a number no tenant has kept as a dead letter", extra={"numbers": len(unknown)}
                    )
                for other in unreadable:
                    await dead_letters.keep(
                        conn,
                        reason="unstorable",
                        body=item_bytes(other.raw, body),
                        phone_number_id=None,
                        detail=f"a {other.field or 'webhook'} change that cannot be read: {other.problem}",
                    )
                    log.warning(
                        "webhook change that cannot be read kept as a dead letter", extra={"field": other.field}
                    )
            result.dead_letters += (1 if unknown else 0) + len(unreadable)
        return result

    async def _routes_of(self, numbers: list[str]) -> dict[str, Route]:
        routes = {number: route for number in numbers if (route := self._routes.get(number)) is not None}
        missing = [number for number in numbers if number not in routes]
        if missing:
            async with self._db.connection() as conn:
                rows = await conn.fetch(_ROUTES_SQL, missing)
            for row in rows:
                route = Route(row["tenant_id"], row["channel_id"])
                routes[row["phone_number_id"]] = self._routes[row["phone_number_id"]] = route
            while len(self._routes) > self._routes_kept:
                self._routes.popitem(last=False)
        return routes

    def _lane(self, tenant_id: UUID) -> _Lane:
        lane = self._lanes.get(tenant_id)
        if lane is None:
            lane = self._lanes[tenant_id] = _Lane()
        return lane


@dataclass(slots=True)
class _Waiting:
    work: _TenantWork
    done: asyncio.Future[IntakeResult]


class _Lane:
    """One tenant's POSTs, stored one transaction at a time, each transaction taking all that waited."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._waiting: list[_Waiting] = []

    async def store(self, db: Database, announcer: Announcer, work: _TenantWork, batch_limit: int) -> IntakeResult:
        mine = _Waiting(work, asyncio.get_running_loop().create_future())
        self._waiting.append(mine)
        async with self._lock:  # first come, first served
            # Done already if an earlier holder took it along; else the oldest go first, this one among them.
            while not mine.done.done():
                taken = self._take(batch_limit)
                try:
                    outcomes = await _store_together(db, announcer, [waiting.work for waiting in taken])
                except BaseException as exc:
                    # Every POST taken here hears of it (a cancelled one as an outage: Meta delivers it again).
                    failure = exc if isinstance(exc, Exception) else Unavailable("the intake was stopped")
                    for waiting in taken:
                        if waiting is not mine:
                            waiting.done.set_exception(failure)
                            # Its POST may be gone too (shutdown): asyncio must not log this as lost.
                            waiting.done.exception()
                    raise
                for waiting, outcome in zip(taken, outcomes, strict=True):
                    waiting.done.set_result(outcome)
        return mine.done.result()

    def _take(self, batch_limit: int) -> list[_Waiting]:
        """The oldest waiting POSTs, as many as fit in `batch_limit` items (at least one)."""
        taken: list[_Waiting] = []
        size = 0
        while self._waiting and (not taken or size + self._waiting[0].work.size <= batch_limit):
            waiting = self._waiting.pop(0)
            taken.append(waiting)
            size += waiting.work.size
        return taken


@dataclass(slots=True)
class _TenantWork:
    tenant_id: UUID
    body: bytes
    messages: list[tuple[Route, InboundMessage]] = field(default_factory=list)
    statuses: list[tuple[Route, StatusUpdate]] = field(default_factory=list)
    errors: list[tuple[Route, WebhookError, int]] = field(default_factory=list)  # with their place in the body
    groups: list[tuple[Route, GroupChange]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.messages) + len(self.statuses) + len(self.errors) + len(self.groups)


_ATTEMPTS = 3  # of a batch's transaction, after a deadlock or serialization failure
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# The database refused a value: the data's fault, so retrying the same batch would fail the same way.
_REFUSED_DATA = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


async def _store_together(db: Database, announcer: Announcer, works: list[_TenantWork]) -> list[IntakeResult]:
    """Stores several POSTs' work for one tenant in one transaction, announces its events once committed;
    what each of the POSTs did, in order."""
    careful = False
    for attempt in range(1, _ATTEMPTS + 1):
        outcomes = [IntakeResult() for _ in works]
        try:
            async with tenant_tx(db, works[0].tenant_id) as conn:
                batch = EventBatch(works[0].tenant_id)
                await _store(conn, works, batch, outcomes, careful=careful)
                appended = await events.append(conn, batch)
            announcer.announce(works[0].tenant_id, appended)
        except _RETRYABLE:
            if attempt == _ATTEMPTS:
                raise
            log.info("webhook transaction retried after a lock conflict", extra={"attempt": attempt})
            continue
        except _REFUSED_DATA:
            if careful:
                raise
            careful = True
            log.warning("webhook batch refused by the database; storing it item by item")
            continue
        return outcomes
    raise AssertionError("every attempt returns or raises")


async def _store(
    conn: Connection, works: list[_TenantWork], batch: EventBatch, outcomes: list[IntakeResult], *, careful: bool
) -> None:
    """Every item of every work: all messages together, or, `careful`, each in a savepoint of its own."""
    # A stable sort: one customer's messages keep their order, and contacts are locked in one global order.
    messages = sorted(
        ((index, route, message) for index, work in enumerate(works) for route, message in work.messages),
        key=lambda item: contact_key_of(item[2]) or "",
    )
    bodies = [work.body for work in works]
    changes = sorted(
        ((index, route, change) for index, work in enumerate(works) for route, change in work.groups),
        key=lambda item: (item[2].group_id, item[2].timestamp),
    )
    if not careful:
        changed_groups = [change.group_id for _, _, change in changes]
        await store_messages(conn, batch, outcomes, messages, bodies, changed_groups=changed_groups)
    for index, route, message in messages if careful else ():
        stored = store_messages(conn, batch, [outcomes[index]], [(0, route, message)], [bodies[index]])
        await _item(conn, batch, outcomes[index], careful, message.raw, bodies[index], route, stored)
    # Receipts take a lock per wamid: in one global order too.
    statuses = sorted(
        ((index, route, status) for index, work in enumerate(works) for route, status in work.statuses),
        key=lambda item: (str(item[1].channel_id), item[2].wa_message_id or ""),
    )
    for index, route, status in statuses:
        body, outcome = works[index].body, outcomes[index]
        recorded = _store_status(conn, batch, outcome, route, status, body)
        await _item(conn, batch, outcome, careful, status.raw, body, route, recorded)
    for work, outcome in zip(works, outcomes, strict=True):
        digest = channel_errors.body_digest(work.body) if work.errors else b""
        for route, error, position in work.errors:
            kept = channel_errors.record(
                conn,
                tenant_id=work.tenant_id,
                channel_id=route.channel_id,
                digest=digest,
                position=position,
                error=error,
            )
            await _item(conn, batch, outcome, careful, error.raw, work.body, route, kept)
    # Their contacts were locked with the messages' (careful: each as its change is applied, in group order).
    for index, route, change in changes:
        named = group_names.record(
            conn,
            batch,
            tenant_id=works[index].tenant_id,
            group_id=change.group_id,
            subject=change.subject,
            description=change.description,
            named_at=change.timestamp,
        )
        await _item(conn, batch, outcomes[index], careful, change.raw, works[index].body, route, named)


async def _item(
    conn: Connection,
    batch: EventBatch,
    outcome: IntakeResult,
    careful: bool,
    raw: Any,
    body: bytes,
    route: Route,
    store: Awaitable[object],
) -> None:
    """Runs one item's coroutine (what it returns is not needed); in careful mode inside a savepoint,
    dead-lettering it if refused."""
    if not careful:
        await store
        return
    pending = len(batch.pending)
    try:
        async with conn.transaction():
            await store
    except _REFUSED_DATA as exc:
        del batch.pending[pending:]
        await dead_letters.keep(
            conn, reason="unstorable", body=item_bytes(raw, body), phone_number_id=None, detail=f"refused: {exc}"
        )
        outcome.dead_letters += 1
        log.warning(
            "webhook item refused by the database kept as a dead letter", extra={"channel_id": route.channel_id}
        )


async def _store_status(
    conn: Connection, batch: EventBatch, outcome: IntakeResult, route: Route, status: StatusUpdate, body: bytes
) -> None:
    if status.wa_message_id is None or status.timestamp is None or status.status == INVALID:
        await keep_unstorable(
            conn, outcome, status.raw, body, status.phone_number_id, "a status that cannot be read", status.problem
        )
        return
    recorded = await message_statuses.record(
        conn,
        batch,
        channel_id=route.channel_id,
        wa_message_id=status.wa_message_id,
        status=status.status[:64],
        occurred_at=status.timestamp,
        errors=[error.model_dump(exclude_none=True) for error in status.errors] or None,
        raw=status.raw,
    )
    if recorded:
        outcome.statuses_recorded += 1
    else:
        outcome.duplicates += 1
