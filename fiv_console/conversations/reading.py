"""Reading conversations: the model, one conversation, and who follows it (the list: `listing`).

Every query naming a conversation goes through `access.VISIBLE_CONVERSATION_SQL` (who may see what, and
its other forms, live in `fiv_console.access`): a conversation out of the viewer's sight is "not found",
exactly like another tenant's id, so an agent learns nothing about it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg
from pydantic import BaseModel, Field

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Audience, Viewer, conversation_audience
from fiv_console.db.pool import Connection
from fiv_console.errors import NotFound
from fiv_console.events import EventBatch
from fiv_console.messages.history import Direction

ConversationStatus = Literal["waiting", "assigned", "closed"]

# WhatsApp's customer-service window: free text may be sent for 24 hours after the customer's last message.
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)


class ContactSummary(BaseModel):
    id: UUID
    wa_id: str | None = Field(description="Their phone number (digits); null for a user known by username only.")
    name: str | None
    profile_name: str | None
    username: str | None = Field(description="Their WhatsApp username, when they adopted one.")
    group_id: str | None = Field(description="A WhatsApp group's id: the conversation is the group's.")


class LabelSummary(BaseModel):
    id: UUID
    name: str
    color: str


class LastMessage(BaseModel):
    id: UUID
    direction: Direction
    kind: str
    text: str | None = Field(description="The start of its text or caption: at most 140 characters.")
    created_at: datetime


class Conversation(BaseModel):
    id: UUID
    status: ConversationStatus
    queue_id: UUID
    agent_id: UUID | None
    priority: int
    contact: ContactSummary
    created_at: datetime
    enqueued_at: datetime
    assigned_at: datetime | None
    first_response_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    sla_breached_at: datetime | None
    last_inbound_at: datetime | None
    last_message_at: datetime | None
    window_closes_at: datetime | None
    unread_count: int = Field(description="The customer's messages not marked read yet.")
    last_message: LastMessage | None = Field(description="The newest message, either way; null before any.")
    labels: list[LabelSummary]


SELECT_COLUMNS_SQL = """
       c.id, c.status, c.queue_id, c.agent_id, c.priority, c.created_at, c.enqueued_at, c.assigned_at,
       c.first_response_at, c.closed_at, c.close_reason, c.sla_breached_at, c.last_inbound_at, c.last_message_at,
       c.unread_count, c.last_message_id, c.last_message_direction, c.last_message_kind, c.last_message_text,
       c.last_message_created_at,
       k.id as contact_id, k.wa_id as contact_wa_id, k.name as contact_name, k.profile_name as contact_profile_name,
       k.username as contact_username, k.group_id as contact_group_id,
       coalesce((
           -- json, not jsonb: its objects keep the keys in `LabelSummary`'s order, as the list writes them out.
           select json_agg(json_build_object('id', l.id, 'name', l.name, 'color', l.color) order by l.name_key, l.id)
           from conversation_labels cl join labels l on l.tenant_id = cl.tenant_id and l.id = cl.label_id
           where cl.tenant_id = c.tenant_id and cl.conversation_id = c.id
       ), '[]'::json) as labels"""
_CONTACT_JOIN_SQL = "join contacts k on k.tenant_id = c.tenant_id and k.id = c.contact_id"
_SELECT_SQL = f"select {SELECT_COLUMNS_SQL}\nfrom conversations c\n{_CONTACT_JOIN_SQL}\n"


def _values(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = dict(row)
    values["contact"] = ContactSummary(
        id=values.pop("contact_id"),
        wa_id=values.pop("contact_wa_id"),
        name=values.pop("contact_name"),
        profile_name=values.pop("contact_profile_name"),
        username=values.pop("contact_username"),
        group_id=values.pop("contact_group_id"),
    )
    inbound = values["last_inbound_at"]
    values["window_closes_at"] = inbound + CUSTOMER_SERVICE_WINDOW if inbound is not None else None
    last = {name: values.pop(f"last_message_{name}") for name in ("id", "direction", "kind", "text", "created_at")}
    values["last_message"] = LastMessage.model_validate(last) if last["id"] is not None else None
    return values


def _conversation(row: asyncpg.Record) -> Conversation:
    return Conversation.model_validate(_values(row))


_GET_SQL = f"{_SELECT_SQL}where c.id = $3 and {VISIBLE_CONVERSATION_SQL}"


async def get_conversation(conn: Connection, *, viewer: Viewer, conversation_id: UUID) -> Conversation:
    row = await conn.fetchrow(_GET_SQL, *viewer.sight.params(), conversation_id)
    if row is None:
        raise NotFound("no such conversation")
    return _conversation(row)


_VISIBLE_ID_SQL = f"select c.id from conversations c where c.id = $3 and {VISIBLE_CONVERSATION_SQL}"


async def ensure_visible(conn: Connection, *, viewer: Viewer, conversation_id: UUID) -> None:
    """NotFound unless the viewer may see the conversation (what its notes and messages require)."""
    if await conn.fetchval(_VISIBLE_ID_SQL, *viewer.sight.params(), conversation_id) is None:
        raise NotFound("no such conversation")


_FOLLOWERS_SQL = f"""
select c.queue_id, c.agent_id, c.status from conversations c where c.id = $3 and {VISIBLE_CONVERSATION_SQL}
for share of c
"""


async def followers(conn: Connection, *, viewer: Viewer, conversation_id: UUID) -> Audience:
    """Who follows a conversation the viewer sees (see `access.conversation_audience`); NotFound otherwise.

    Share-locks the conversation until commit, so a move cannot slip between this read and the event that
    uses it (the move would take its seq first, and the event would go to the conversation's old followers).
    """
    row = await conn.fetchrow(_FOLLOWERS_SQL, *viewer.sight.params(), conversation_id)
    if row is None:
        raise NotFound("no such conversation")
    return conversation_audience(queue_id=row["queue_id"], agent_id=row["agent_id"], status=row["status"])


def followers_now(conversation: Conversation) -> Audience:
    """Who follows the conversation as it is (after a move: its new followers only)."""
    return conversation_audience(
        queue_id=conversation.queue_id, agent_id=conversation.agent_id, status=conversation.status
    )


_READ_MANY_SQL = f"{_SELECT_SQL}where c.id = any($1::uuid[]) order by c.id"


async def read_many(conn: Connection, ids: list[UUID]) -> list[Conversation]:
    """These conversations as they now are, whoever asks (the assignment loop has them locked)."""
    return [_conversation(r) for r in await conn.fetch(_READ_MANY_SQL, ids)]


# Share-locked (after the contact, which the caller changed: the intake's order), in the order of their ids:
# a move committing meanwhile would otherwise have the event read the followers it had before (as
# `outbound._FOLLOWERS_SQL`). Callers update nothing of them later, so the share lock is never upgraded.
_CONTACTS_OPEN_SQL = "select id from conversations where contact_id = $1 and status <> 'closed' order by id for share"


async def announce_contact_changed(conn: Connection, batch: EventBatch, contact_id: UUID) -> None:
    """The contact's name changed (a person renamed it, WhatsApp renamed a group): each of its open
    conversations, which show the contact, is announced as `conversation.updated` to its followers."""
    open_ids = [row["id"] for row in await conn.fetch(_CONTACTS_OPEN_SQL, contact_id)]
    for conversation in await read_many(conn, open_ids) if open_ids else []:
        batch.add(
            "conversation.updated",
            followers_now(conversation),
            conversation_id=conversation.id,
            payload={"conversation": conversation.model_dump(mode="json")},
        )


# After a move, the conversation as it now is. Not filtered by sight: the caller locked it within their sight
# and acted on it, and the move itself may take it out of their sight (an agent transferring it away).
_READ_AFTER_MOVE_SQL = f"{_SELECT_SQL}where c.id = $1"


async def read_after_move(conn: Connection, conversation_id: UUID) -> Conversation:
    row = await conn.fetchrow(_READ_AFTER_MOVE_SQL, conversation_id)
    assert row is not None, "the conversation is locked by this transaction"
    return _conversation(row)
