"""One row in every tenant table for a tenant, by raw SQL: the raw material of the isolation tests.

Kept in the order of the foreign keys, so each insert can point at the rows made before it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

from fiv_console.db.pool import Connection

Ids = dict[str, Any]

# Which tenant table an id parameter names: `<key>_id` (path or body) takes that table's row.
TABLE_OF_ID = {
    "user": "users",
    "agent": "users",
    "queue": "queues",
    "default_queue": "queues",
    "token": "api_tokens",
    "channel": "channels",
    "contact": "contacts",
    "conversation": "conversations",
    "message": "messages",
    "note": "notes",
    "label": "labels",
    "canned_response": "canned_responses",
}


def _digits() -> str:
    return str(random.randrange(10**14, 10**15))


# table -> (insert returning id, parameters from (tenant id, ids made so far))
INSERTS: dict[str, tuple[str, Callable[[uuid.UUID, Ids], list[Any]]]] = {
    "users": (
        "insert into users (tenant_id, email, name, role, password_hash) values ($1, $2, 'U', 'agent', 'x') "
        "returning id",
        lambda t, ids: [t, f"u-{uuid.uuid4().hex}@example.test"],
    ),
    "api_tokens": (
        "insert into api_tokens (tenant_id, name, role, token_hash, created_by) values ($1, 'ci', 'agent', $2, $3) "
        "returning id",
        lambda t, ids: [t, uuid.uuid4().bytes * 2, ids["users"]],
    ),
    "queues": (
        "insert into queues (tenant_id, name) values ($1, $2) returning id",
        lambda t, ids: [t, f"q-{uuid.uuid4().hex}"],
    ),
    "queue_members": (
        "insert into queue_members (tenant_id, queue_id, user_id) values ($1, $2, $3) returning queue_id as id",
        lambda t, ids: [t, ids["queues"], ids["users"]],
    ),
    "channels": (
        "insert into channels (tenant_id, phone_number_id, display_number, default_queue_id) "
        "values ($1, $2, '+1 555', $3) returning id",
        lambda t, ids: [t, _digits(), ids["queues"]],
    ),
    "contacts": (
        "insert into contacts (tenant_id, wa_id) values ($1, $2) returning id",
        lambda t, ids: [t, _digits()],
    ),
    "conversations": (
        "insert into conversations (tenant_id, channel_id, contact_id, queue_id) values ($1, $2, $3, $4) returning id",
        lambda t, ids: [t, ids["channels"], ids["contacts"], ids["queues"]],
    ),
    "conversation_segments": (
        "insert into conversation_segments (tenant_id, conversation_id, queue_id, opened_at, start_kind, started_at,"
        " queued, ended_at, end_kind) values ($1, $2, $3, now(), 'new', now(), true, now(), 'close') returning id",
        lambda t, ids: [t, ids["conversations"], ids["queues"]],
    ),
    "messages": (
        "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, wa_message_id, status) "
        "values ($1, $2, $3, 'inbound', 'text', 'hello', $4, 'received') returning id",
        lambda t, ids: [t, ids["conversations"], ids["channels"], f"wamid.{uuid.uuid4().hex}"],
    ),
    "notes": (
        "insert into notes (tenant_id, conversation_id, author_id, body) values ($1, $2, $3, 'note') returning id",
        lambda t, ids: [t, ids["conversations"], ids["users"]],
    ),
    "events": (
        "insert into events (tenant_id, seq, type, conversation_id, audience) "
        "values ($1, $2, 'conversation.created', $3, 'tenant') returning seq as id",
        lambda t, ids: [t, random.randrange(1, 2**62), ids["conversations"]],
    ),
    "canned_responses": (
        "insert into canned_responses (tenant_id, shortcut, title, body) values ($1, $2, 'Hi', 'Hello!') returning id",
        lambda t, ids: [t, f"hi-{uuid.uuid4().hex[:8]}"],
    ),
    "labels": (
        "insert into labels (tenant_id, name) values ($1, $2) returning id",
        lambda t, ids: [t, f"label-{uuid.uuid4().hex[:8]}"],
    ),
    "conversation_labels": (
        "insert into conversation_labels (tenant_id, conversation_id, label_id) values ($1, $2, $3) "
        "returning label_id as id",
        lambda t, ids: [t, ids["conversations"], ids["labels"]],
    ),
    # The search words (0011), besides those the triggers wrote for the rows above.
    "conversation_terms": (
        "insert into conversation_terms (tenant_id, term, conversation_id, message_id, message_at) "
        "values ($1, 'walk', $2, $3, now()) returning conversation_id as id",
        lambda t, ids: [t, ids["conversations"], ids["messages"]],
    ),
    "contact_terms": (
        "insert into contact_terms (tenant_id, term, contact_id) values ($1, 'walk', $2) returning contact_id as id",
        lambda t, ids: [t, ids["contacts"]],
    ),
    "message_statuses": (
        "insert into message_statuses (tenant_id, channel_id, wa_message_id, status, occurred_at) "
        "values ($1, $2, $3, 'delivered', now()) returning wa_message_id as id",
        lambda t, ids: [t, ids["channels"], f"wamid.{uuid.uuid4().hex}"],
    ),
    # WhatsApp as Meta sends it (0018): edits and revokes, reactions, errors on a whole change.
    "message_revisions": (
        "insert into message_revisions (tenant_id, channel_id, wa_message_id, target_wa_message_id, message_id, "
        "kind, text, occurred_at) values ($1, $2, $3, 'wamid.walk', $4, 'edit', 'edited', now()) "
        "returning wa_message_id as id",
        lambda t, ids: [t, ids["channels"], f"wamid.{uuid.uuid4().hex}", ids["messages"]],
    ),
    "message_reactions": (
        "insert into message_reactions (tenant_id, channel_id, target_wa_message_id, reactor, emoji, reacted_at) "
        "values ($1, $2, $3, 'business', '👍', now()) returning target_wa_message_id as id",
        lambda t, ids: [t, ids["channels"], f"wamid.{uuid.uuid4().hex}"],
    ),
    "channel_errors": (
        "insert into channel_errors (tenant_id, channel_id, body_sha256, position, code) "
        "values ($1, $2, $3, 0, 131000) returning position as id",
        lambda t, ids: [t, ids["channels"], uuid.uuid4().bytes],
    ),
    "event_counters": (
        "insert into event_counters (tenant_id, last_seq) values ($1, 1) returning tenant_id as id",
        lambda t, ids: [t],
    ),
    "agent_connections": (
        "insert into agent_connections (tenant_id, user_id, instance_id, sockets) values ($1, $2, $3, 1) "
        "returning user_id as id",
        lambda t, ids: [t, ids["users"], uuid.uuid4()],
    ),
    "agent_presence_log": (
        "insert into agent_presence_log (tenant_id, user_id, status, connected) values ($1, $2, 'online', true) "
        "returning id",
        lambda t, ids: [t, ids["users"]],
    ),
    "audit_log": (
        "insert into audit_log (tenant_id, actor_kind, action) values ($1, 'system', 'test') returning id",
        lambda t, ids: [t],
    ),
    "assignment_counters": (
        "insert into assignment_counters (tenant_id, kind, subject_id, value) values ($1, 'agent_open', $2, 1) "
        "returning subject_id as id",
        lambda t, ids: [t, ids["users"]],
    ),
    "assignment_counter_deltas": (
        "insert into assignment_counter_deltas (tenant_id, kind, subject_id, delta) "
        "values ($1, 'agent_open', $2, 1) returning subject_id as id",
        lambda t, ids: [t, ids["users"]],
    ),
    "wallboard_day_counters": (
        "insert into wallboard_day_counters (tenant_id, day, kind, subject_id, value) "
        "values ($1, current_date, 'handled', $2, 1) returning subject_id as id",
        lambda t, ids: [t, ids["users"]],
    ),
    "wallboard_day_counter_deltas": (
        "insert into wallboard_day_counter_deltas (tenant_id, day, kind, subject_id, delta) "
        "values ($1, current_date, 'handled', $2, 1) returning subject_id as id",
        lambda t, ids: [t, ids["users"]],
    ),
}


async def insert_row(conn: Connection, table: str, tenant_id: uuid.UUID, ids: Ids) -> Any:
    sql, parameters = INSERTS[table]
    return await conn.fetchval(sql, *parameters(tenant_id, ids))


async def seed_every_table(conn: Connection, tenant_id: uuid.UUID) -> Ids:
    """Inside `tenant_id`'s transaction: one row per tenant table; returns their ids by table."""
    ids: Ids = {"tenants": tenant_id}
    for table in INSERTS:
        ids[table] = await insert_row(conn, table, tenant_id, ids)
    return ids
