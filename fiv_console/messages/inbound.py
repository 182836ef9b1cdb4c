"""Inbound messages into the database: contacts, conversations opened or joined, messages stored once.

A batch's messages go through a handful of set-based statements (`store_messages`); when the database
refused a batch, the intake calls it again with one message at a time, each in a savepoint. Contacts are
locked first, in the order of their keys (groups, those the batch renames among them, then people): the
locks that make two deliveries of one message, or two messages of one customer, run one after the other.
What cannot be stored is kept as a dead letter (`keep_unstorable`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from fiv_console.conversations import reading
from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch
from fiv_console.messages import amendments, coexistence, dead_letters, identities
from fiv_console.messages import history as messages
from fiv_console.messages.history import COLUMNS as MESSAGE_COLUMNS
from fiv_console.messages.history import Message
from fiv_console.messages.identities import Identity
from fiv_console.whatsapp.payloads import InboundMessage

NUMBER_MAX = 32  # a phone_number_id is digits; longer is not Meta's
# Looks for the open conversation that keeps changing under a message: the first, then three more (as many
# as the batch path gave it before it was set-based throughout).
_OPEN_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class Route:
    tenant_id: UUID
    channel_id: UUID


@dataclass(slots=True)
class IntakeResult:
    """What one POST did."""

    messages_stored: int = 0
    duplicates: int = 0
    statuses_recorded: int = 0
    dead_letters: int = 0

    def add(self, other: IntakeResult) -> None:
        self.messages_stored += other.messages_stored
        self.duplicates += other.duplicates
        self.statuses_recorded += other.statuses_recorded
        self.dead_letters += other.dead_letters


async def keep_unstorable(
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
        body=item_bytes(raw, body),
        phone_number_id=phone_number_id[:NUMBER_MAX],
        detail=detail,
    )
    outcome.dead_letters += 1


def item_bytes(raw: Any, body: bytes) -> bytes:
    """An item's JSON for a dead letter; the whole body when the item has none that can be written."""
    if raw is None:
        return body
    try:
        return orjson.dumps(raw)
    except TypeError:
        return body


def contact_key_of(message: InboundMessage) -> str | None:
    """The key the sender's contact is locked by: their number, else their business-scoped id; None when
    Meta gives neither in a form that can be stored."""
    identity = identities.identity_of(message)
    return identity.sort_key if identity is not None else None


# WhatsApp's notices (a customer changed number) are not the customer writing: they open no window, await
# no answer and open no conversation (no one could answer it); they change the contact, and join the
# conversation the customer has open, if any, for the agent to see.
_NOT_FROM_CUSTOMER = frozenset({"system"})
# These statements take lists, and the planner knows nothing of a list's contents: joined to a table, it
# may hash a scan of all the tenant's rows (a new database's unanalyzed tables made every batch read every
# message, slower with each one). A lateral lookup per item, or `= any` on the key, keeps them index probes.
_EXISTING_MESSAGES_SQL = """
select k.channel_id, k.wa_message_id
from unnest($1::uuid[], $2::text[]) as k(channel_id, wa_message_id)
cross join lateral (
    select 1 from messages m where m.channel_id = k.channel_id and m.wa_message_id = k.wa_message_id limit 1
) m
"""
_OPEN_CONVERSATIONS_SQL = """
select c.id, c.channel_id, c.contact_id, c.queue_id, c.agent_id, c.status
from unnest($1::uuid[], $2::uuid[]) with ordinality as k(channel_id, contact_id, ord)
cross join lateral (
    select id, channel_id, contact_id, queue_id, agent_id, status from conversations
    where channel_id = k.channel_id and contact_id = k.contact_id and status <> 'closed'
    for no key update
) c
order by k.ord
"""
_START_CONVERSATIONS_SQL = """
insert into conversations (tenant_id, channel_id, contact_id, queue_id)
select $1, ch.id, k.contact_id, ch.default_queue_id
from unnest($2::uuid[], $3::uuid[]) with ordinality as k(channel_id, contact_id, ord)
join channels ch on ch.id = k.channel_id
order by k.ord
on conflict (tenant_id, channel_id, contact_id) where status <> 'closed' do nothing
returning id, channel_id, contact_id, queue_id, agent_id, status, created_at
"""
# Direction and status per message: a customer's is inbound and received; one the business sent from the
# WhatsApp Business app (an echo, its history) is outbound, delivered as the app says. The app's past
# chats are read already: they are never marked read towards WhatsApp, nor counted unread.
_INSERT_MESSAGES_SQL = f"""
insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, media, details, raw,
                      wa_message_id, reply_to_wa_message_id, status, sent_at, read_at, created_at, updated_at)
select $1, m.conversation_id, m.channel_id, m.direction, m.kind, m.text, m.media, m.details, m.raw, m.wa_message_id,
       m.reply_to, m.status, m.sent_at, case when m.settled then clock_timestamp() end, clock_timestamp(),
       clock_timestamp()
from unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::jsonb[], $9::text[],
            $10::text[], $11::timestamptz[], $12::text[], $13::text[], $14::boolean[])
     with ordinality as m(conversation_id, channel_id, kind, text, media, details, raw, wa_message_id, reply_to,
                          sent_at, direction, status, settled, ord)
order by m.ord
on conflict (channel_id, wa_message_id) do nothing
returning {MESSAGE_COLUMNS}, channel_id
"""
# Meta's times, but never later than now; only a customer's own message moves the 24-hour window, and
# starts the wait for an answer if none was running. A message the business sent from the WhatsApp Business
# app (an echo) answers the customer as a reply from the console does: what they wrote before it (by Meta's
# times, in whole seconds: the same second is not answered) is answered, and the wait moves to their first
# message after it, or ends. Only the messages of the wait now running are read (nothing before it awaits
# anything), so a late echo never brings back a wait already answered, and the range is short. Every message stored
# counts as unread until its agent reads it (`read_marks`), and the newest becomes the list's preview (by
# when it was stored: under the conversation's lock, in the order of the conversation's messages). The
# `= any` finds the rows by their key; joined to the list alone, the planner would scan the tenant's.
_TOUCH_CONVERSATIONS_SQL = """
update conversations c
set last_inbound_at = case when t.inbound_at is null then c.last_inbound_at
                           else greatest(c.last_inbound_at, least(t.inbound_at, now())) end,
    last_message_at = case when c.last_message_id is null then least(t.message_at, now())
                           else greatest(c.last_message_at, least(t.message_at, now())) end,
    awaiting_reply_since = case
        when t.answered_at is null then coalesce(c.awaiting_reply_since, t.awaiting_from)
        else (
            select min(m.created_at) from messages m
            where m.tenant_id = c.tenant_id and m.conversation_id = c.id
              and m.created_at >= least(c.awaiting_reply_since, t.awaiting_from)
              and m.direction = 'inbound' and m.kind <> 'system' and (m.details @> '{"history": true}') is not true
              and coalesce(m.sent_at, m.created_at) >= t.answered_at
        ) end,
    unread_count = c.unread_count + t.unread,
    last_message_id = case when t.newest_at >= c.last_message_created_at is not false then t.newest_id
                           else c.last_message_id end,
    last_message_direction = case when t.newest_at >= c.last_message_created_at is not false then t.newest_direction
                                  else c.last_message_direction end,
    last_message_kind = case when t.newest_at >= c.last_message_created_at is not false then t.newest_kind
                             else c.last_message_kind end,
    last_message_text = case when t.newest_at >= c.last_message_created_at is not false then left(t.newest_text, 140)
                             else c.last_message_text end,
    last_message_created_at = greatest(c.last_message_created_at, t.newest_at),
    updated_at = now()
from (
    select ($2::timestamptz[])[i] as inbound_at, ($3::timestamptz[])[i] as message_at,
           ($4::timestamptz[])[i] as awaiting_from, ($1::uuid[])[i] as id, ($5::integer[])[i] as unread,
           ($6::uuid[])[i] as newest_id, ($7::text[])[i] as newest_kind, ($8::text[])[i] as newest_text,
           ($9::timestamptz[])[i] as newest_at, ($10::text[])[i] as newest_direction,
           ($11::timestamptz[])[i] as answered_at
    from generate_subscripts($1::uuid[], 1) as i
) t
where c.id = any($1::uuid[]) and c.id = t.id
"""


@dataclass(slots=True)
class _Touch:
    """What a batch's messages change in one conversation."""

    message_at: datetime
    inbound_at: datetime | None = None  # the customer's latest message, by Meta's time
    awaiting_from: datetime | None = None  # the customer's first message, by when it was stored
    answered_at: datetime | None = None  # the latest echo of the business's app, by Meta's time
    unread: int = 0
    newest: asyncpg.Record | None = None  # the message stored last


@dataclass(frozen=True, slots=True)
class _Incoming:
    owner: int
    route: Route
    message: InboundMessage
    identity: Identity


async def store_messages(
    conn: Connection,
    batch: EventBatch,
    outcomes: list[IntakeResult],
    items: list[tuple[int, Route, InboundMessage]],
    bodies: list[bytes],
    *,
    changed_groups: Iterable[str] = (),
) -> None:
    """Stores messages, sorted by contact: `items` are (the index of the POST it came in, in `outcomes` and
    `bodies`; its route; the message). The contacts of `changed_groups` (the groups a batch's group
    webhooks rename, applied after) are locked with the messages' groups, in the same sorted pass."""
    incoming: list[_Incoming] = []
    seen: set[tuple[UUID, str]] = set()
    for owner, route, message in items:
        identity = identities.identity_of(message)
        if message.wa_message_id is None or identity is None:
            await keep_unstorable(
                conn,
                outcomes[owner],
                message.raw,
                bodies[owner],
                message.phone_number_id,
                "a message without a usable id or sender",
                message.problem,
            )
            continue
        if (route.channel_id, message.wa_message_id) in seen:  # twice in this batch
            outcomes[owner].duplicates += 1
            continue
        seen.add((route.channel_id, message.wa_message_id))
        incoming.append(_Incoming(owner, route, message, identity))

    # Contacts first, in the order of their keys: the locks that serialize one customer's messages. Groups
    # before people, one sorted pass each; a group renamed in this batch too, so that no group's contact is
    # locked after a conversation (two batches crossing two groups would wait on each other).
    notices = [item for item in incoming if item.message.kind in _NOT_FROM_CUSTOMER]
    writers = [item for item in incoming if item.message.kind not in _NOT_FROM_CUSTOMER]
    # A group's messages belong to the group's conversation; each names its participant in its details.
    in_groups = [item for item in writers if item.message.group_id is not None]
    group_of = await identities.groups(
        conn, batch.tenant_id, [item.message.group_id or "" for item in in_groups] + list(changed_groups)
    )
    if not incoming:
        return
    writers = [item for item in writers if item.message.group_id is None or item.message.group_id in group_of]
    contact_of = await identities.resolve(
        conn, batch, [item.identity for item in writers if item.message.group_id is None]
    )
    contact_id = {
        id(item): group_of[item.message.group_id] if item.message.group_id else contact_of[item.identity.keys]
        for item in writers
    }
    if notices:
        changes = [change for item in notices if (change := identities.key_change_of(item.message)) is not None]
        await identities.apply_changes(conn, batch, changes)
        for item in notices:
            change = identities.key_change_of(item.message)
            names = [item.identity] if change is None else [Identity(change.wa_id, change.user_id), item.identity]
            found = await identities.known(conn, batch.tenant_id, names)
            notice_contact = next((found[name.keys] for name in names if name.keys in found), None)
            if notice_contact is not None:
                contact_id[id(item)] = notice_contact

    # Edits, revokes and reactions change the message they name instead of joining the history.
    amending = [item for item in writers if amendments.is_amendment(item.message)]
    if amending:
        applied = await amendments.apply(
            conn,
            batch,
            [
                amendments.Amendment(item.route.channel_id, item.message, _reactor(item, contact_id))
                for item in amending
            ],
        )
        for item, new in zip(amending, applied, strict=True):
            if new:
                outcomes[item.owner].messages_stored += 1
            else:
                outcomes[item.owner].duplicates += 1
        done = {id(item) for item in amending}
        incoming = [item for item in incoming if id(item) not in done]
        if not incoming:
            return

    existing = await conn.fetch(
        _EXISTING_MESSAGES_SQL,
        [item.route.channel_id for item in incoming],
        [item.message.wa_message_id for item in incoming],
    )
    stored_before = {(row["channel_id"], row["wa_message_id"]) for row in existing}
    fresh = []
    for item in incoming:
        if (item.route.channel_id, item.message.wa_message_id) in stored_before:
            outcomes[item.owner].duplicates += 1
        elif id(item) in contact_id:  # a notice about nobody known has changed all it could
            fresh.append(item)

    def pairs_of(place: str) -> list[tuple[UUID, UUID]]:
        return list(
            dict.fromkeys(
                (item.route.channel_id, contact_id[id(item)]) for item in fresh if _place(item.message) == place
            )
        )

    # Each message's conversation: a customer's (and an echo of the business's) opens one or joins it; a
    # notice joins an open one only; the app's past chats join the newest, or a closed one made for them.
    conversations, started = await _open_conversations(conn, batch, pairs_of("open"))
    if notice_pairs := pairs_of("join"):
        conversations.update(await _open_ones(conn, notice_pairs))
    if history_pairs := pairs_of("history"):
        conversations.update(await coexistence.history_conversations(conn, batch, history_pairs))
    fresh = [item for item in fresh if (item.route.channel_id, contact_id[id(item)]) in conversations]
    if not fresh:
        return
    conversation_of = [conversations[(item.route.channel_id, contact_id[id(item)])] for item in fresh]
    rows = await conn.fetch(
        _INSERT_MESSAGES_SQL,
        batch.tenant_id,
        [conversation["id"] for conversation in conversation_of],
        [item.route.channel_id for item in fresh],
        [item.message.kind for item in fresh],
        [item.message.text for item in fresh],
        [item.message.media.model_dump(exclude_none=True) if item.message.media else None for item in fresh],
        [message_details(item.message) for item in fresh],
        [item.message.raw for item in fresh],
        [item.message.wa_message_id for item in fresh],
        [item.message.reply_to for item in fresh],
        [item.message.timestamp for item in fresh],
        [item.message.direction for item in fresh],
        [coexistence.status_of(item.message) for item in fresh],
        [item.message.from_history for item in fresh],
    )
    inserted = {(row["channel_id"], row["wa_message_id"]): row for row in rows}

    touched: dict[UUID, _Touch] = {}
    stored: list[tuple[asyncpg.Record, asyncpg.Record]] = []
    for item, conversation in zip(fresh, conversation_of, strict=True):
        stored_row = inserted.get((item.route.channel_id, item.message.wa_message_id))
        if stored_row is None:  # the same wamid from another sender, committed meanwhile: the first one stays
            outcomes[item.owner].duplicates += 1
            continue
        when = item.message.timestamp or datetime.now(UTC)
        touch = touched.setdefault(conversation["id"], _Touch(message_at=when))
        touch.message_at = max(touch.message_at, when)
        live = item.message.direction == "inbound" and not item.message.from_history
        if live and item.message.kind not in _NOT_FROM_CUSTOMER:
            touch.inbound_at = max(touch.inbound_at, when) if touch.inbound_at else when
            stored_at = stored_row["created_at"]
            touch.awaiting_from = min(touch.awaiting_from, stored_at) if touch.awaiting_from else stored_at
        if live:
            touch.unread += 1
        elif item.message.direction == "outbound" and not item.message.from_history:
            sent_at = min(when, datetime.now(UTC))
            touch.answered_at = max(touch.answered_at, sent_at) if touch.answered_at else sent_at
        if touch.newest is None or (stored_row["created_at"], stored_row["id"]) > (
            touch.newest["created_at"],
            touch.newest["id"],
        ):
            touch.newest = stored_row
        stored.append((conversation, stored_row))
        outcomes[item.owner].messages_stored += 1
    if touched:
        ids = list(touched)
        newest = [touched[i].newest for i in ids]
        await conn.execute(
            _TOUCH_CONVERSATIONS_SQL,
            ids,
            [touched[i].inbound_at for i in ids],
            [touched[i].message_at for i in ids],
            [touched[i].awaiting_from for i in ids],
            [touched[i].unread for i in ids],
            [row["id"] if row else None for row in newest],
            [row["kind"] if row else None for row in newest],
            [row["text"] if row else None for row in newest],
            [row["created_at"] if row else None for row in newest],
            [row["direction"] if row else None for row in newest],
            [touched[i].answered_at for i in ids],
        )
    # Announced once touched, so that each new conversation's event shows it as the REST API now does (its
    # last message, its window), and before the messages a view puts in it.
    await _announce_started(conn, batch, started)
    for conversation, row in stored:
        _announce(batch, conversation, row)


def _reactor(item: _Incoming, contact_id: dict[int, UUID]) -> str:
    """Who reacts, one reaction each: the business, a group's participant, or the customer's contact."""
    if item.message.direction == "outbound":
        return amendments.BUSINESS
    if item.message.group_id is not None:
        return "participant:" + item.identity.sort_key
    return str(contact_id[id(item)])


def _place(message: InboundMessage) -> str:
    """Where a message goes: "open" (opens or joins the open conversation), "join" (joins an open one only),
    "history" (the newest conversation, or a closed one)."""
    if message.from_history:
        return "history"
    return "join" if message.kind in _NOT_FROM_CUSTOMER else "open"


async def _open_ones(conn: Connection, pairs: list[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], asyncpg.Record]:
    """The open conversation of each (channel, contact) that has one."""
    found = await conn.fetch(_OPEN_CONVERSATIONS_SQL, [p[0] for p in pairs], [p[1] for p in pairs])
    return {(row["channel_id"], row["contact_id"]): row for row in found}


async def _open_conversations(
    conn: Connection, batch: EventBatch, pairs: list[tuple[UUID, UUID]]
) -> tuple[dict[tuple[UUID, UUID], asyncpg.Record], list[UUID]]:
    """Each (channel, contact)'s open conversation, or a new one waiting in the channel's queue; and the ids
    of the new ones, in the order they were opened."""
    conversations: dict[tuple[UUID, UUID], asyncpg.Record] = {}
    opened: list[UUID] = []
    wanted = pairs
    if not wanted:
        return conversations, opened
    for _ in range(_OPEN_ATTEMPTS):
        found = await conn.fetch(_OPEN_CONVERSATIONS_SQL, [p[0] for p in wanted], [p[1] for p in wanted])
        conversations.update(((row["channel_id"], row["contact_id"]), row) for row in found)
        missing = [pair for pair in wanted if pair not in conversations]
        if not missing:
            return conversations, opened
        started = await conn.fetch(
            _START_CONVERSATIONS_SQL, batch.tenant_id, [p[0] for p in missing], [p[1] for p in missing]
        )
        for row in started:
            pair = (row["channel_id"], row["contact_id"])
            conversations[pair] = row
            opened.append(row["id"])
        wanted = [pair for pair in missing if pair not in conversations]
        if not wanted:
            return conversations, opened
        # Another one opened since the read above (and maybe closed again since): look once more.
    raise asyncpg.SerializationError("a contact's conversation kept changing while a message joined it")


def _announce(batch: EventBatch, conversation: asyncpg.Record, row: asyncpg.Record) -> None:
    messages.announce_created(
        batch,
        Message.model_validate(dict(row)),
        queue_id=conversation["queue_id"],
        agent_id=conversation["agent_id"],
        conversation_status=conversation["status"],
    )


async def _announce_started(conn: Connection, batch: EventBatch, opened: list[UUID]) -> None:
    """`conversation.created` for each conversation a message opened, with the conversation as the REST API
    shows it, to the agents of its queue."""
    if not opened:
        return
    read = {conversation.id: conversation for conversation in await reading.read_many(conn, opened)}
    for conversation_id in opened:
        conversation = read[conversation_id]
        batch.add(
            "conversation.created",
            reading.followers_now(conversation),
            conversation_id=conversation.id,
            payload={"conversation": conversation.model_dump(mode="json")},
        )


def _participant(message: InboundMessage) -> dict[str, str] | None:
    """Who wrote a group's message, by the names WhatsApp gives."""
    if message.group_id is None:
        return None
    named = {
        "wa_id": message.wa_id,
        "user_id": message.user_id,
        "name": message.profile_name,
        "username": message.username,
    }
    return {key: value for key, value in named.items() if value}


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
        # Sent by the business from the WhatsApp Business app, not from the console; or an app chat's past.
        ("from_app", message.direction == "outbound"),
        ("history", message.from_history),
        ("participant", _participant(message)),
    )
    details.update((name, value) for name, value in optional if value)
    return details or None
