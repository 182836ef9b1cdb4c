"""Messages of a business number that uses the WhatsApp Business app as well (Meta's "coexistence").

Such a number's owner also writes from the app: Meta echoes what they send (`smb_message_echoes`), and, when
the number joins, may send the app's chats of the last 180 days (`history`). The intake stores both as
messages of the customer's conversations (`payloads` reads them as outbound, or as history): an echo
joins (or opens) the open conversation like a customer's message; the past chats go to the customer's
newest conversation on the number, or to a closed one made for them, since they are history, not work.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch
from fiv_console.whatsapp.payloads import InboundMessage

# A history conversation: the newest of the customer's on the number, whatever its state.
_NEWEST_CONVERSATIONS_SQL = """
select c.id, c.channel_id, c.contact_id, c.queue_id, c.agent_id, c.status
from unnest($1::uuid[], $2::uuid[]) with ordinality as k(channel_id, contact_id, ord)
cross join lateral (
    select id, channel_id, contact_id, queue_id, agent_id, status from conversations
    where channel_id = k.channel_id and contact_id = k.contact_id
    order by created_at desc, id desc
    limit 1
    for no key update
) c
order by k.ord
"""
# The app's past chats are history, not work: a customer with no conversation gets a closed one for them.
_START_CLOSED_SQL = """
insert into conversations (tenant_id, channel_id, contact_id, queue_id, status, closed_at, close_reason)
select $1, ch.id, k.contact_id, ch.default_queue_id, 'closed', now(), $4
from unnest($2::uuid[], $3::uuid[]) with ordinality as k(channel_id, contact_id, ord)
join channels ch on ch.id = k.channel_id
order by k.ord
returning id, channel_id, contact_id, queue_id, agent_id, status, created_at
"""
HISTORY_REASON = "history: chats from the WhatsApp Business app before this number joined"


# How far a message the business sent from the app got, by what WhatsApp said of it ("READ", ...).
_APP_DELIVERY = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read", "failed": "failed"}


def status_of(message: InboundMessage) -> str:
    """The stored status of an intake message: a customer's is received; the business's, as the app said."""
    if message.direction == "inbound":
        return "received"
    return _APP_DELIVERY.get(message.delivery or "", "sent")


async def history_conversations(
    conn: Connection, batch: EventBatch, pairs: list[tuple[UUID, UUID]]
) -> dict[tuple[UUID, UUID], asyncpg.Record]:
    """The conversation each (channel, contact)'s past chats join, locked."""
    found = await conn.fetch(_NEWEST_CONVERSATIONS_SQL, [p[0] for p in pairs], [p[1] for p in pairs])
    conversations = {(row["channel_id"], row["contact_id"]): row for row in found}
    missing = [pair for pair in pairs if pair not in conversations]
    if missing:
        made = await conn.fetch(
            _START_CLOSED_SQL, batch.tenant_id, [p[0] for p in missing], [p[1] for p in missing], HISTORY_REASON
        )
        conversations.update(((row["channel_id"], row["contact_id"]), row) for row in made)
    return conversations
