"""Edits, revokes and reactions: what a customer does to a message already sent, applied to that message.

None of these is a new message in the history (Meta sends each as a message of its own, `type` edit,
revoke or reaction, with its own wamid). Instead:

- an edit changes the original's text (or caption, and media) in place and marks it `edited_at`; the text
  it replaced is kept in `message_revisions`, which the history shows as the message's earlier versions;
- a revoke (deleted for everyone) clears the original's text and media and marks it `revoked_at`; its
  content stays in `message_revisions` for the audit, and is never shown again (nor previewed in the list,
  nor found by search);
- a reaction is the reacting person's one reaction to the message (`message_reactions`): a newer one
  replaces it, an empty one removes it.

Each is recorded once per its own wamid (a redelivery changes nothing) and, in Meta's time order (an older
edit or reaction delivered late does not undo a newer one). One that names a message not stored (yet) is
recorded and changes nothing. Whatever changed a stored message is announced as `message.updated`, with
the message as the history now shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from fiv_console.access import conversation_audience
from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch
from fiv_console.messages import history
from fiv_console.whatsapp.payloads import InboundMessage

BUSINESS = "business"
"""The reactor of the business's own reactions (an agent's), beside customers' contact ids."""


def is_amendment(message: InboundMessage) -> bool:
    """Whether the message changes another rather than being one of the history."""
    if message.kind == "reaction":
        return message.reaction is not None
    return message.kind in ("edit", "revoke") and message.original_message_id is not None


@dataclass(frozen=True, slots=True)
class Amendment:
    channel_id: UUID
    message: InboundMessage
    reactor: str  # who did it, for a reaction: the customer's contact id, a group's participant, or BUSINESS


_REACT_SQL = """
insert into message_reactions as r (tenant_id, channel_id, target_wa_message_id, reactor, emoji, wa_message_id,
                                    reacted_at)
values ($1, $2, $3, $4, $5, $6, $7)
on conflict (channel_id, target_wa_message_id, reactor) do update
set emoji = excluded.emoji, wa_message_id = excluded.wa_message_id, reacted_at = excluded.reacted_at
where r.reacted_at <= excluded.reacted_at and r.wa_message_id is distinct from excluded.wa_message_id
returning 1
"""
_REVISE_SQL = """
insert into message_revisions (tenant_id, channel_id, wa_message_id, target_wa_message_id, kind, text, media, raw,
                               occurred_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
on conflict (channel_id, wa_message_id) do nothing
returning 1
"""
_TARGET_SQL = """
select m.id, m.text, m.media, m.edited_at, m.revoked_at, c.queue_id, c.agent_id, c.status
from messages m join conversations c on c.tenant_id = m.tenant_id and c.id = m.conversation_id
where m.channel_id = $1 and m.wa_message_id = $2
for no key update of m
"""
_LINK_REVISION_SQL = """
update message_revisions set message_id = $3, previous_text = $4, previous_media = $5
where channel_id = $1 and wa_message_id = $2
"""
_EDIT_SQL = (
    "update messages set text = $2, media = coalesce($3, media), edited_at = $4, updated_at = now() where id = $1"
)
_REVOKE_SQL = """
update messages set text = null, media = null, revoked_at = $2, updated_at = now() where id = $1
"""
# The list's preview follows the message it shows; a deleted one's words leave search (the conversation's
# other messages with a word may then not be found by it: the price of never finding deleted text).
_PREVIEW_SQL = """
update conversations set last_message_text = left($3, 140), updated_at = now()
where tenant_id = $1 and last_message_id = $2
"""
_FORGET_TERMS_SQL = "delete from conversation_terms where tenant_id = $1 and message_id = $2"


async def apply(conn: Connection, batch: EventBatch, amendments: list[Amendment]) -> list[bool]:
    """Records and applies each amendment; for each, whether it was new (False: a redelivery, or one older
    than what the message already shows)."""
    return [await _apply(conn, batch, amendment) for amendment in amendments]


async def _apply(conn: Connection, batch: EventBatch, amendment: Amendment) -> bool:
    message = amendment.message
    when = message.timestamp or datetime.now(UTC)
    if message.kind == "reaction":
        assert message.reaction is not None, "is_amendment checked it"
        target = message.reaction.message_id
        changed = await conn.fetchval(
            _REACT_SQL,
            batch.tenant_id,
            amendment.channel_id,
            target,
            amendment.reactor,
            message.reaction.emoji[:64] if message.reaction.emoji else None,
            message.wa_message_id,
            when,
        )
        if changed:
            await announce_updated(conn, batch, amendment.channel_id, target)
        return bool(changed)
    original = message.original_message_id
    assert original is not None, "is_amendment checked it"
    media = message.media.model_dump(exclude_none=True) if message.media else None
    recorded = await conn.fetchval(
        _REVISE_SQL,
        batch.tenant_id,
        amendment.channel_id,
        message.wa_message_id,
        original,
        message.kind,
        message.text,
        media,
        message.raw,
        when,
    )
    if not recorded:
        return False
    row = await conn.fetchrow(_TARGET_SQL, amendment.channel_id, original)
    if row is None or row["revoked_at"] is not None:
        return True
    if message.kind == "revoke":
        await conn.execute(_REVOKE_SQL, row["id"], when)
        await conn.execute(_FORGET_TERMS_SQL, batch.tenant_id, row["id"])
        await conn.execute(_PREVIEW_SQL, batch.tenant_id, row["id"], None)
    elif row["edited_at"] is None or row["edited_at"] <= when:
        await conn.execute(_EDIT_SQL, row["id"], message.text, media, when)
        await conn.execute(_PREVIEW_SQL, batch.tenant_id, row["id"], message.text)
    else:
        return True  # an older edit, delivered after a newer one: kept as a revision, the text stays
    await conn.execute(
        _LINK_REVISION_SQL, amendment.channel_id, message.wa_message_id, row["id"], row["text"], row["media"]
    )
    await announce_updated(conn, batch, amendment.channel_id, original)
    return True


_AUDIENCE_SQL = """
select m.id, c.queue_id, c.agent_id, c.status
from messages m join conversations c on c.tenant_id = m.tenant_id and c.id = m.conversation_id
where m.channel_id = $1 and m.wa_message_id = $2
"""


async def announce_updated(conn: Connection, batch: EventBatch, channel_id: UUID, wa_message_id: str) -> None:
    """`message.updated` for the stored message with this wamid, if there is one, to its followers."""
    row = await conn.fetchrow(_AUDIENCE_SQL, channel_id, wa_message_id)
    if row is None:
        return
    message = await history.read_message(conn, row["id"])
    batch.add(
        "message.updated",
        conversation_audience(queue_id=row["queue_id"], agent_id=row["agent_id"], status=row["status"]),
        conversation_id=message.conversation_id,
        payload={"conversation_id": message.conversation_id, "message": message.model_dump(mode="json")},
    )
