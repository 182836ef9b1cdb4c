"""Messages of a conversation: its history, read newest first with a keyset cursor.

A chat opens at its latest message and scrolls back, so the history comes newest first and each page is
older than the one before. The cursor names the last (oldest) message of a page, as (created_at, id):
a position in the order, not an offset, so messages arriving while someone scrolls back neither repeat
nor skip anything. Its text is opaque to clients: base64url of the pair.

The raw webhook payload (`messages.raw`) is kept for the record and never leaves the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
from pydantic import BaseModel, Field

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Sight, conversation_audience
from fiv_console.db import keyset
from fiv_console.db.pool import Connection
from fiv_console.errors import NotFound
from fiv_console.events import EventBatch

Direction = Literal["inbound", "outbound"]
DeliveryStatus = Literal["received", "queued", "sent", "delivered", "read", "failed"]


class Reaction(BaseModel):
    by: Literal["customer", "business"]
    emoji: str
    reacted_at: datetime


class Revision(BaseModel):
    text: str | None = Field(description="What the message said before this edit.")
    replaced_at: datetime


class Message(BaseModel):
    id: UUID
    conversation_id: UUID
    direction: Direction
    kind: str
    text: str | None
    media: dict[str, Any] | None
    status: DeliveryStatus
    error: Any
    author_id: UUID | None
    details: dict[str, Any] | None
    wa_message_id: str | None
    reply_to_wa_message_id: str | None
    sent_at: datetime | None
    created_at: datetime
    edited_at: datetime | None = Field(default=None, description="When the customer last edited it.")
    revoked_at: datetime | None = Field(
        default=None, description="When the customer deleted it for everyone: its text and media are gone."
    )
    reactions: list[Reaction] = Field(default=[], description="One per person who reacted, oldest first.")
    revisions: list[Revision] = Field(
        default=[], description="What an edited message said before, oldest first; none once deleted."
    )


def announce_created(
    events: EventBatch, message: Message, *, queue_id: UUID, agent_id: UUID | None, conversation_status: str
) -> None:
    """`message.created`, to whoever follows the message's conversation (its agent, or its queue's)."""
    events.add(
        "message.created",
        conversation_audience(queue_id=queue_id, agent_id=agent_id, status=conversation_status),
        conversation_id=message.conversation_id,
        payload={"conversation_id": message.conversation_id, "message": message.model_dump(mode="json")},
    )


def announce_status(
    events: EventBatch,
    *,
    conversation_id: UUID,
    message_id: UUID,
    status: str,
    error: Any,
    queue_id: UUID,
    agent_id: UUID | None,
    conversation_status: str,
) -> None:
    """`message.status`: an outbound message moved on (sent, delivered, read, failed, queued again)."""
    events.add(
        "message.status",
        conversation_audience(queue_id=queue_id, agent_id=agent_id, status=conversation_status),
        conversation_id=conversation_id,
        payload={"conversation_id": conversation_id, "message_id": message_id, "status": status, "error": error},
    )


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a conversation's history: just after (older than) this message."""

    created_at: datetime
    id: UUID

    def encode(self) -> str:
        return keyset.pack(self.created_at.isoformat(), str(self.id))

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor a page handed out; ValueError for anything else."""
        try:
            when, ident = keyset.unpack(text)
            created_at, message_id = keyset.instant(when), UUID(ident)
        except (ValueError, OverflowError):
            raise ValueError("not a cursor from this history") from None
        return cls(created_at, message_id)


@dataclass(frozen=True, slots=True)
class History:
    """One page of history, and where it stands in the whole."""

    # Each message as `Message` answers it (see `_message_item`): the route writes them out as they are,
    # without validating 50 models that the database has just typed.
    rows: list[dict[str, Any]]
    total: int
    # Messages newer than this page (0 on the first page): with a constant limit, `newer // limit` pages.
    newer: int
    next_cursor: Cursor | None

    @property
    def messages(self) -> list[Message]:
        """The messages as models (for callers other than the route: validated, so slower)."""
        return [Message.model_validate(row) for row in self.rows]


COLUMNS = (
    "id, conversation_id, direction, kind, text, media, status, error, author_id, details, wa_message_id, "
    "reply_to_wa_message_id, sent_at, created_at, edited_at, revoked_at"
)
# What hangs on a message (`m`): its reactions, by the wamid they name, and an edited one's earlier texts.
_AMENDMENTS_SQL = """
coalesce((
    select json_agg(json_build_object('by', case when r.reactor = 'business' then 'business' else 'customer' end,
                                      'emoji', r.emoji, 'reacted_at', r.reacted_at) order by r.reacted_at)
    from message_reactions r
    where r.channel_id = m.channel_id and r.target_wa_message_id = m.wa_message_id and r.emoji is not null
), '[]'::json) as reactions,
coalesce((
    select json_agg(json_build_object('text', v.previous_text, 'replaced_at', v.occurred_at) order by v.occurred_at)
    from message_revisions v
    where v.tenant_id = m.tenant_id and v.message_id = m.id and v.kind = 'edit' and m.revoked_at is null
), '[]'::json) as revisions"""
# One statement: whether the reader sees the conversation ($1, $2 and $3 as `VISIBLE_CONVERSATION_SQL`
# takes them), and then its page and its counts (computed once, only when it is seen), so that a page is
# one round trip. Two shapes rather than one with "$4 is null or ...": each page keeps a plain index range
# on messages_conversation_created_idx. A conversation seen without messages is one row of nulls.
_PAGE_SQL = f"""
select v.seen,
       case when v.seen then (select count(*) from messages where conversation_id = $3) end as total,
       {{newer}} as newer,
       m.*
from (select exists (select 1 from conversations c where c.id = $3 and {VISIBLE_CONVERSATION_SQL}) as seen) v
left join lateral (
    select {COLUMNS}, {_AMENDMENTS_SQL} from messages m
    where conversation_id = $3{{after}}
    order by created_at desc, id desc
    limit {{limit}}
) m on v.seen
"""
_LATEST_SQL = _PAGE_SQL.format(newer="0", after="", limit="$4")
_OLDER_SQL = _PAGE_SQL.format(
    newer="case when v.seen then (select count(*) from messages"
    " where conversation_id = $3 and (created_at, id) >= ($4, $5)) end",
    after=" and (created_at, id) < ($4, $5)",
    limit="$6",
)

_ONE_SQL = f"select {COLUMNS}, {_AMENDMENTS_SQL} from messages m where id = $1"


async def read_message(conn: Connection, message_id: UUID) -> Message:
    """One message as the history shows it (the caller knows it exists)."""
    row = await conn.fetchrow(_ONE_SQL, message_id)
    assert row is not None, "the caller found the message"
    return Message.model_validate(dict(row))


def _text_of(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


def _message_item(row: asyncpg.Record) -> dict[str, Any]:
    """One message as `Message`: its fields in its order, each value as pydantic writes it once dumped with
    `envelope.json_fragment` (ids as text; times left to orjson, which writes UTC as `Z` as pydantic does).
    tests/test_conversation_list.py compares the bytes with the models'."""
    return {
        "id": str(row["id"]),
        "conversation_id": str(row["conversation_id"]),
        "direction": row["direction"],
        "kind": row["kind"],
        "text": row["text"],
        "media": row["media"],
        "status": row["status"],
        "error": row["error"],
        "author_id": _text_of(row["author_id"]),
        "details": row["details"],
        "wa_message_id": row["wa_message_id"],
        "reply_to_wa_message_id": row["reply_to_wa_message_id"],
        "sent_at": row["sent_at"],
        "created_at": row["created_at"],
        "edited_at": row["edited_at"],
        "revoked_at": row["revoked_at"],
        # Rare, and with times as JSON text: through their models, to write them as every other time.
        "reactions": [Reaction.model_validate(r).model_dump() for r in row["reactions"]],
        "revisions": [Revision.model_validate(r).model_dump() for r in row["revisions"]],
    }


async def history(
    conn: Connection, *, sight: Sight, conversation_id: UUID, before: Cursor | None, limit: int
) -> History:
    """Up to `limit` messages older than `before` (or the latest), newest first, of a conversation in
    `sight`; NotFound for one out of it (as for another tenant's)."""
    # One row more than asked says whether another page follows, without a second query.
    if before is None:
        rows = await conn.fetch(_LATEST_SQL, *sight.params(), conversation_id, limit + 1)
    else:
        rows = await conn.fetch(_OLDER_SQL, *sight.params(), conversation_id, before.created_at, before.id, limit + 1)
    if not rows[0]["seen"]:
        raise NotFound("no such conversation")
    found = [row for row in rows if row["id"] is not None]
    page = [_message_item(row) for row in found[:limit]]
    last = found[limit - 1] if len(found) > limit else None
    next_cursor = Cursor(last["created_at"], last["id"]) if last is not None else None
    return History(page, int(rows[0]["total"]), int(rows[0]["newer"]), next_cursor)
