"""Blue ticks: which of a conversation's inbound messages the agent has read, so each is marked read once.

Only the agent a conversation is assigned to marks it read: a supervisor looking in, or an agent of the
queue glancing at a waiting conversation, must not tell the customer that someone has read them.
Marking is claimed in the database first (`claim_unread` sets `read_at`) and told to WhatsApp after the
commit; if WhatsApp cannot be told, `release` gives the claim back, so the next opening tries again.
Both move the conversation's `unread_count` in the same statement and announce `conversation.updated`.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Viewer
from fiv_console.conversations.labels import announce_updated
from fiv_console.conversations.reading import read_after_move
from fiv_console.db.pool import Connection
from fiv_console.errors import NotFound
from fiv_console.events import EventBatch


@dataclass(frozen=True, slots=True)
class ReadMark:
    """The newest inbound message to mark read (WhatsApp then counts every earlier one read too)."""

    conversation_id: UUID
    phone_number_id: str
    access_token: str | None
    wa_message_id: str
    message_ids: list[UUID]


_CONVERSATION_SQL = f"""
select c.agent_id, c.status, ch.phone_number_id, ch.access_token
from conversations c join channels ch on ch.tenant_id = c.tenant_id and ch.id = c.channel_id
where c.id = $3 and {VISIBLE_CONVERSATION_SQL}
"""
# The conversation's unread count moves in the same statement as the marks (messages, then the
# conversation: the order release takes too; intake and replies never wait on an inbound message's lock).
_CLAIM_SQL = """
with claimed as (
    update messages set read_at = now()
    where conversation_id = $1 and direction = 'inbound' and read_at is null and wa_message_id is not null
    returning id, wa_message_id, created_at
), counted as (
    update conversations set unread_count = greatest(unread_count - (select count(*) from claimed), 0)
    where id = $1 and exists (select 1 from claimed)
)
select id, wa_message_id, created_at from claimed
"""
_NEWEST_SQL = """
select wa_message_id from messages
where conversation_id = $1 and direction = 'inbound' and wa_message_id is not null
order by created_at desc, id desc limit 1
"""
_RELEASE_SQL = """
with released as (
    update messages set read_at = null where id = any($1::uuid[]) and read_at is not null
    returning conversation_id
)
update conversations c set unread_count = c.unread_count + r.released
from (select conversation_id, count(*) as released from released group by conversation_id) r
where c.id = r.conversation_id
returning c.id
"""


async def _reader_target(conn: Connection, viewer: Viewer, conversation_id: UUID) -> tuple[str, str | None] | None:
    row = await conn.fetchrow(_CONVERSATION_SQL, *viewer.sight.params(), conversation_id)
    if row is None:
        raise NotFound("no such conversation")
    if row["status"] != "assigned" or row["agent_id"] != viewer.user_id:
        return None
    return row["phone_number_id"], row["access_token"]


async def claim_unread(
    conn: Connection, events: EventBatch, *, viewer: Viewer, conversation_id: UUID
) -> ReadMark | None:
    """The unread inbound messages, now marked read here; None if there are none or the viewer is not its agent."""
    target = await _reader_target(conn, viewer, conversation_id)
    if target is None:
        return None
    rows = await conn.fetch(_CLAIM_SQL, conversation_id)
    if not rows:
        return None
    await announce_count(conn, events, conversation_id=conversation_id)
    newest = max(rows, key=lambda r: (r["created_at"], r["id"]))
    return ReadMark(conversation_id, target[0], target[1], newest["wa_message_id"], [r["id"] for r in rows])


async def newest_inbound(
    conn: Connection, events: EventBatch, *, viewer: Viewer, conversation_id: UUID
) -> ReadMark | None:
    """The customer's newest message, to show the typing indicator against (which also marks all read)."""
    target = await _reader_target(conn, viewer, conversation_id)
    if target is None:
        return None
    claimed = await conn.fetch(_CLAIM_SQL, conversation_id)
    if claimed:
        await announce_count(conn, events, conversation_id=conversation_id)
    wamid = await conn.fetchval(_NEWEST_SQL, conversation_id)
    if wamid is None:
        return None
    return ReadMark(conversation_id, target[0], target[1], wamid, [r["id"] for r in claimed])


async def release(conn: Connection, events: EventBatch, *, mark: ReadMark) -> None:
    """WhatsApp could not be told: these messages count as unread again."""
    if await conn.fetchval(_RELEASE_SQL, mark.message_ids) is not None:
        await announce_count(conn, events, conversation_id=mark.conversation_id)


async def announce_count(conn: Connection, events: EventBatch, *, conversation_id: UUID) -> None:
    """`conversation.updated` with the unread count as it now is, to whoever follows the conversation: the
    agent's other tabs see it drop (or come back when WhatsApp could not be told)."""
    announce_updated(events, await read_after_move(conn, conversation_id))
