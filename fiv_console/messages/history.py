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

from pydantic import BaseModel, Field

from fiv_console.access import conversation_audience
from fiv_console.db import keyset
from fiv_console.db.pool import Connection
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

    messages: list[Message]
    total: int
    # Messages newer than this page (0 on the first page): with a constant limit, `newer // limit` pages.
    newer: int
    next_cursor: Cursor | None


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
# Two statements rather than one with "$2 is null or ...": each keeps a plain index range on
# messages_conversation_created_idx.
_LATEST_SQL = f"""
select {COLUMNS}, {_AMENDMENTS_SQL} from messages m
where conversation_id = $1
order by created_at desc, id desc
limit $2
"""
_OLDER_SQL = f"""
select {COLUMNS}, {_AMENDMENTS_SQL} from messages m
where conversation_id = $1 and (created_at, id) < ($2, $3)
order by created_at desc, id desc
limit $4
"""
_ONE_SQL = f"select {COLUMNS}, {_AMENDMENTS_SQL} from messages m where id = $1"


async def read_message(conn: Connection, message_id: UUID) -> Message:
    """One message as the history shows it (the caller knows it exists)."""
    row = await conn.fetchrow(_ONE_SQL, message_id)
    assert row is not None, "the caller found the message"
    return Message.model_validate(dict(row))


_COUNT_SQL = """
select count(*) as total,
       count(*) filter (where $2::timestamptz is not null and (created_at, id) >= ($2, $3::uuid)) as newer
from messages where conversation_id = $1
"""


async def history(conn: Connection, *, conversation_id: UUID, before: Cursor | None, limit: int) -> History:
    """Up to `limit` messages older than `before` (or the latest), newest first.

    The caller has checked that the conversation is in the reader's sight.
    """
    # One row more than asked says whether another page follows, without a second query.
    if before is None:
        rows = await conn.fetch(_LATEST_SQL, conversation_id, limit + 1)
    else:
        rows = await conn.fetch(_OLDER_SQL, conversation_id, before.created_at, before.id, limit + 1)
    page = [Message.model_validate(dict(r)) for r in rows[:limit]]
    counts = await conn.fetchrow(
        _COUNT_SQL,
        conversation_id,
        before.created_at if before else None,
        before.id if before else None,
    )
    assert counts is not None, "an aggregate always answers one row"
    next_cursor = Cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return History(page, int(counts["total"]), int(counts["newer"]), next_cursor)
