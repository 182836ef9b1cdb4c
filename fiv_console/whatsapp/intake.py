"""Webhook intake: a parsed batch made durable, one transaction per tenant, before Meta gets its 200.

Each business number (`phone_number_id`) leads, through the reviewed lookup, to its channel and tenant;
that tenant's transaction is the only one its records touch. In it: contacts are upserted with their
profile name; each message is inserted once per (channel, wamid); a message from a contact without an
open conversation opens one in the channel's queue, otherwise it joins the open one and moves its
last-inbound time (the 24-hour window); receipts are recorded and applied forwards
(`fiv_console.message_statuses`); the events of it all are appended last.

Concurrency: the contact's row is locked first (the upsert takes it), so two deliveries of one message,
or two messages of one customer, are handled one after the other, and the second finds what the first
did. Messages are handled in the order of their contacts' keys, so two batches can never wait on each
other's contacts. A deadlock with other work, or a serialization failure, is retried a few times.

Poison: an item without the ids needed to store it goes to the dead-letter box; if the database refuses
a batch for its data (a value a check rejects), the batch is done again item by item, each in a savepoint,
and only the refused items go to the dead-letter box. A number no tenant has is a dead letter too. None of
these is an error for Meta: the POST is answered 200 once everything else is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from fiv_console import dead_letters, events, message_statuses
from fiv_console.db.pool import Connection, Database, tenant_tx
from fiv_console.events import Event, EventBatch, conversation_audience
from fiv_console.messages import COLUMNS as MESSAGE_COLUMNS
from fiv_console.messages import Message
from fiv_console.whatsapp.payloads import INVALID, InboundMessage, StatusUpdate, WebhookBatch

log = logging.getLogger(__name__)

_CONTACT_KEY_MAX = 32  # contacts.wa_id
_NUMBER_MAX = 32  # a phone_number_id is digits; longer is not Meta's
_PROFILE_NAME_MAX = 500  # contacts.profile_name
_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Route:
    tenant_id: UUID
    channel_id: UUID


@dataclass(slots=True)
class IntakeResult:
    """What one POST did; `events` are committed, in seq order, for the bus to announce."""

    messages_stored: int = 0
    duplicates: int = 0
    statuses_recorded: int = 0
    dead_letters: int = 0
    events: list[Event] = field(default_factory=list)


_ROUTES_SQL = """
select p.phone_number_id, r.tenant_id, r.channel_id
from unnest($1::text[]) as p(phone_number_id)
cross join lateral channel_for_phone_number(p.phone_number_id) as r
"""


async def ingest(db: Database, batch: WebhookBatch, *, body: bytes) -> IntakeResult:
    """Stores the batch; raises `Unavailable` when the database cannot be reached (Meta must retry)."""
    result = IntakeResult()
    numbers = sorted(
        {m.phone_number_id for m in batch.messages}
        | {s.phone_number_id for s in batch.statuses}
        | {e.phone_number_id for e in batch.errors}
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

    routes: dict[str, Route] = {}
    if numbers:
        async with db.connection() as conn:
            rows = await conn.fetch(_ROUTES_SQL, numbers)
        routes = {r["phone_number_id"]: Route(r["tenant_id"], r["channel_id"]) for r in rows}

    work: dict[UUID, _TenantWork] = {}
    for message in batch.messages:
        if (route := routes.get(message.phone_number_id)) is not None:
            work.setdefault(route.tenant_id, _TenantWork(route.tenant_id, body)).messages.append((route, message))
    for status in batch.statuses:
        if (route := routes.get(status.phone_number_id)) is not None:
            work.setdefault(route.tenant_id, _TenantWork(route.tenant_id, body)).statuses.append((route, status))
    for tenant_work in work.values():
        await _ingest_for_tenant(db, tenant_work, result)

    # Last, so that a POST Meta must deliver again (a tenant's transaction failed) leaves no dead letter twice.
    unknown = [number for number in numbers if number not in routes]
    if unknown or unreadable:
        async with db.connection() as conn, conn.transaction():
            if unknown:
                await dead_letters.keep(
                    conn,
                    reason="unroutable",
                    body=body,
                    phone_number_id=unknown[0][:_NUMBER_MAX] if len(unknown) == 1 else None,
                    detail="no channel has these numbers: " + ", ".join(number[:_NUMBER_MAX] for number in unknown),
                )
                log.warning("webhook for a number no tenant has kept as a dead letter", extra={"numbers": len(unknown)})
            for other in unreadable:
                await dead_letters.keep(
                    conn,
                    reason="unstorable",
                    body=_item_bytes(other.raw, body),
                    phone_number_id=None,
                    detail=f"a {other.field or 'webhook'} change that cannot be read: {other.problem}",
                )
                log.warning("webhook change that cannot be read kept as a dead letter", extra={"field": other.field})
        result.dead_letters += (1 if unknown else 0) + len(unreadable)
    return result


@dataclass(slots=True)
class _TenantWork:
    tenant_id: UUID
    body: bytes
    messages: list[tuple[Route, InboundMessage]] = field(default_factory=list)
    statuses: list[tuple[Route, StatusUpdate]] = field(default_factory=list)


_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# The database refused a value: the data's fault, so retrying the same batch would fail the same way.
_REFUSED_DATA = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


async def _ingest_for_tenant(db: Database, work: _TenantWork, result: IntakeResult) -> None:
    careful = False
    for attempt in range(1, _ATTEMPTS + 1):
        outcome = IntakeResult()
        try:
            async with tenant_tx(db, work.tenant_id) as conn:
                batch = EventBatch(work.tenant_id)
                await _store(conn, work, batch, outcome, careful=careful)
                outcome.events = await events.append(conn, batch)
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
        result.messages_stored += outcome.messages_stored
        result.duplicates += outcome.duplicates
        result.statuses_recorded += outcome.statuses_recorded
        result.dead_letters += outcome.dead_letters
        result.events.extend(outcome.events)
        return


async def _store(
    conn: Connection, work: _TenantWork, batch: EventBatch, outcome: IntakeResult, *, careful: bool
) -> None:
    # A stable sort: one customer's messages keep their order, and contacts are locked in one global order.
    messages = sorted(work.messages, key=lambda item: _contact_key(item[1]) or "")
    for route, message in messages:
        await _item(
            conn,
            batch,
            outcome,
            careful,
            message.raw,
            work.body,
            route,
            _store_message(conn, batch, outcome, route, message, work.body),
        )
    # Receipts take a lock per wamid: in one global order too.
    for route, status in sorted(work.statuses, key=lambda item: (str(item[0].channel_id), item[1].wa_message_id or "")):
        await _item(
            conn,
            batch,
            outcome,
            careful,
            status.raw,
            work.body,
            route,
            _store_status(conn, batch, outcome, route, status, work.body),
        )


async def _item(
    conn: Connection,
    batch: EventBatch,
    outcome: IntakeResult,
    careful: bool,
    raw: Any,
    body: bytes,
    route: Route,
    store: Awaitable[None],
) -> None:
    """Runs one item's coroutine; in careful mode inside a savepoint, dead-lettering it if refused."""
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
            conn, reason="unstorable", body=_item_bytes(raw, body), phone_number_id=None, detail=f"refused: {exc}"
        )
        outcome.dead_letters += 1
        log.warning(
            "webhook item refused by the database kept as a dead letter", extra={"channel_id": route.channel_id}
        )


async def _keep_unstorable(
    conn: Connection,
    outcome: IntakeResult,
    raw: Any,
    body: bytes,
    phone_number_id: str,
    what: str,
    problem: str | None,
) -> None:
    detail = f"{what}: {problem}" if problem else what
    await dead_letters.keep(
        conn,
        reason="unstorable",
        body=_item_bytes(raw, body),
        phone_number_id=phone_number_id[:_NUMBER_MAX],
        detail=detail,
    )
    outcome.dead_letters += 1


def _item_bytes(raw: Any, body: bytes) -> bytes:
    """An item's JSON for a dead letter; the whole body when the item has none that can be written."""
    if raw is None:
        return body
    try:
        return orjson.dumps(raw)
    except TypeError:
        return body


def _contact_key(message: InboundMessage) -> str | None:
    """The customer's number, or their business-scoped id when Meta gives no number (or none that fits)."""
    return next((key for key in (message.wa_id, message.user_id) if key and len(key) <= _CONTACT_KEY_MAX), None)


_UPSERT_CONTACT_SQL = """
insert into contacts as c (tenant_id, wa_id, profile_name) values ($1, $2, $3)
on conflict (tenant_id, wa_id) do update
set profile_name = coalesce(excluded.profile_name, c.profile_name),
    updated_at = case when excluded.profile_name is distinct from c.profile_name and excluded.profile_name is not null
                      then now() else c.updated_at end
returning id
"""
_MESSAGE_EXISTS_SQL = "select 1 from messages where channel_id = $1 and wa_message_id = $2"
_OPEN_CONVERSATION_SQL = """
select id, queue_id, agent_id from conversations
where channel_id = $1 and contact_id = $2 and status <> 'closed'
for no key update
"""
_START_CONVERSATION_SQL = """
insert into conversations (tenant_id, channel_id, contact_id, queue_id)
select $1, ch.id, $3, ch.default_queue_id from channels ch where ch.id = $2
on conflict (tenant_id, channel_id, contact_id) where status <> 'closed' do nothing
returning id, queue_id, agent_id, status, created_at
"""
_INSERT_MESSAGE_SQL = f"""
insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, media, details, raw,
                      wa_message_id, reply_to_wa_message_id, status, sent_at, created_at, updated_at)
values ($1, $2, $3, 'inbound', $4, $5, $6, $7, $8, $9, $10, 'received', $11, clock_timestamp(), clock_timestamp())
on conflict (channel_id, wa_message_id) do nothing
returning {MESSAGE_COLUMNS}
"""
# WhatsApp's notices (a customer changed number) are not the customer writing: they open no window.
_NOT_FROM_CUSTOMER = frozenset({"system"})
# Meta's time, but never later than now: a customer's clock must not stretch the 24-hour window.
_TOUCH_CONVERSATION_SQL = """
update conversations
set last_inbound_at = case when $3 then greatest(last_inbound_at, least($2::timestamptz, now()))
                           else last_inbound_at end,
    last_message_at = greatest(last_message_at, least($2::timestamptz, now())),
    updated_at = now()
where id = $1
"""


async def _open_conversation(conn: Connection, batch: EventBatch, route: Route, contact_id: UUID) -> asyncpg.Record:
    """The contact's open conversation on this number, or a new one waiting in the channel's queue."""
    for _ in range(_ATTEMPTS):
        conversation = await conn.fetchrow(_OPEN_CONVERSATION_SQL, route.channel_id, contact_id)
        if conversation is not None:
            return conversation
        started = await conn.fetchrow(_START_CONVERSATION_SQL, batch.tenant_id, route.channel_id, contact_id)
        if started is not None:
            batch.add(
                "conversation.created",
                events.Audience.queue(started["queue_id"]),
                conversation_id=started["id"],
                payload={
                    "conversation_id": started["id"],
                    "queue_id": started["queue_id"],
                    "contact_id": contact_id,
                    "status": started["status"],
                    "created_at": started["created_at"],
                },
            )
            return started
        # Another one opened since the read above (and maybe closed again since): look once more.
    raise asyncpg.SerializationError("the contact's conversation kept changing while a message joined it")


async def _store_message(
    conn: Connection, batch: EventBatch, outcome: IntakeResult, route: Route, message: InboundMessage, body: bytes
) -> None:
    contact_key = _contact_key(message)
    if message.wa_message_id is None or contact_key is None:
        await _keep_unstorable(
            conn,
            outcome,
            message.raw,
            body,
            message.phone_number_id,
            "a message without a usable id or sender",
            message.problem,
        )
        return
    profile_name = message.profile_name[:_PROFILE_NAME_MAX] if message.profile_name else None
    contact_id = await conn.fetchval(_UPSERT_CONTACT_SQL, batch.tenant_id, contact_key, profile_name)
    if await conn.fetchval(_MESSAGE_EXISTS_SQL, route.channel_id, message.wa_message_id):
        outcome.duplicates += 1
        return

    conversation = await _open_conversation(conn, batch, route, contact_id)
    when = message.timestamp or datetime.now(UTC)
    row = await conn.fetchrow(
        _INSERT_MESSAGE_SQL,
        batch.tenant_id,
        conversation["id"],
        route.channel_id,
        message.kind,
        message.text,
        message.media.model_dump(exclude_none=True) if message.media else None,
        message_details(message),
        message.raw,
        message.wa_message_id,
        message.reply_to,
        message.timestamp,
    )
    if row is None:  # the same wamid from another sender: the first one stays
        outcome.duplicates += 1
        return
    await conn.execute(_TOUCH_CONVERSATION_SQL, conversation["id"], when, message.kind not in _NOT_FROM_CUSTOMER)
    stored = Message.model_validate(dict(row))
    batch.add(
        "message.created",
        conversation_audience(queue_id=conversation["queue_id"], agent_id=conversation["agent_id"]),
        conversation_id=conversation["id"],
        payload={"conversation_id": conversation["id"], "message": stored.model_dump(mode="json")},
    )
    outcome.messages_stored += 1


def message_details(message: InboundMessage) -> dict[str, Any] | None:
    """What a message carries beyond its text and media, by field, leaving out what it does not have."""
    details: dict[str, Any] = {}
    for name in ("location", "interactive", "button", "reaction", "order", "system"):
        value = getattr(message, name)
        if value is not None:
            details[name] = value.model_dump(exclude_none=True)
    optional: Iterable[tuple[str, Any]] = (
        ("contacts", list(message.contacts)),
        ("unsupported_type", message.unsupported_type),
        ("errors", [error.model_dump(exclude_none=True) for error in message.errors]),
        ("reply_to_from", message.reply_to_from),
        ("forwarded", message.forwarded),
        ("frequently_forwarded", message.frequently_forwarded),
        ("referred_product", message.referred_product),
        ("referral", message.referral),
        ("problem", message.problem),
    )
    details.update((name, value) for name, value in optional if value)
    return details or None


async def _store_status(
    conn: Connection, batch: EventBatch, outcome: IntakeResult, route: Route, status: StatusUpdate, body: bytes
) -> None:
    if status.wa_message_id is None or status.timestamp is None or status.status == INVALID:
        await _keep_unstorable(
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
