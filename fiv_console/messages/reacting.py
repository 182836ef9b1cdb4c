"""The agent's reactions: an emoji on a message of the conversation, sent to WhatsApp and shown on it.

A reaction is no message of the history (a customer's is not either: `amendments`): it is the business's
one reaction on the message (`message_reactions`, reactor "business"), replaced by a newer one and taken
back by an empty one. It goes as Meta documents (`type: reaction`, `reaction: {message_id, emoji}`), as a
free-form message: only by whoever may reply in the conversation, and inside the 24-hour window
(`outbound.reaction_target`). The Graph API is called outside any transaction, and the reaction is
recorded, and announced as `message.updated`, once WhatsApp took it; if it did not, nothing is recorded
and the answer says why.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fiv_console import events
from fiv_console.access import Viewer
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.errors import Conflict, NotFound
from fiv_console.events import Announcer
from fiv_console.messages import amendments, history, outbound
from fiv_console.messages.history import Message
from fiv_console.text import NO_NUL
from fiv_console.whatsapp.client import GraphClient, GraphError, reaction_payload


class ReactionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emoji: Annotated[str, StringConstraints(max_length=16, pattern=NO_NUL)] = Field(
        description="The emoji to react with; empty takes the business's reaction back."
    )


class ReactionRefused(Conflict):
    """WhatsApp did not take the reaction: nothing was recorded."""

    code = "WHATSAPP_REFUSED"


_MESSAGE_SQL = "select conversation_id, channel_id, wa_message_id, revoked_at from messages where id = $1"
_REACT_SQL = f"""
insert into message_reactions as r (tenant_id, channel_id, target_wa_message_id, reactor, emoji, wa_message_id,
                                    reacted_at)
values ($1, $2, $3, '{amendments.BUSINESS}', $4, $5, $6)
on conflict (channel_id, target_wa_message_id, reactor) do update
set emoji = excluded.emoji, wa_message_id = excluded.wa_message_id, reacted_at = excluded.reacted_at
where r.reacted_at <= excluded.reacted_at
"""


async def react(
    db: Database,
    client: GraphClient,
    announcer: Announcer,
    *,
    viewer: Viewer,
    message_id: UUID,
    request: ReactionRequest,
) -> Message:
    """Sends the reaction and records it; the message as the history now shows it."""
    async with tenant_tx(db, viewer.tenant_id) as conn:
        row = await conn.fetchrow(_MESSAGE_SQL, message_id)
        if row is None:
            raise NotFound("no such message")
        target = await outbound.reaction_target(conn, viewer, row["conversation_id"])
        if row["wa_message_id"] is None:
            raise Conflict("this message has no WhatsApp id (yet): it cannot be reacted to")
        if row["revoked_at"] is not None:
            raise Conflict("the customer deleted this message")
    emoji, wamid = request.emoji.strip(), row["wa_message_id"]
    try:
        sent = await client.send_message(
            target.phone_number_id,
            target.access_token,
            reaction_payload(target.to, wamid, emoji),
            idempotency_key=str(uuid.uuid4()),
        )
    except GraphError as exc:
        raise ReactionRefused(exc.reason, details={"code": exc.code}) from None
    async with events.changing(db, announcer, viewer.tenant_id) as (conn, batch):
        await conn.execute(
            _REACT_SQL, viewer.tenant_id, row["channel_id"], wamid, emoji or None, sent.wamid, datetime.now(UTC)
        )
        await amendments.announce_updated(conn, batch, row["channel_id"], wamid)
        return await history.read_message(conn, message_id)
