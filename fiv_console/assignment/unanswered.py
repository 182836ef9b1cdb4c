"""Conversations left unanswered by the agent they were given to are taken back and given to another.

Where the tenant sets `unanswered_reroute_seconds`, an assigned conversation whose customer has awaited an
answer that long goes back to its queue at its original place, passed over by that agent: the next claim
gives it to another agent of the queue, and back to them only if no other is available
(`assignment.policy`; a supervisor may assign it to anyone). The wait runs from the customer's first
message that no reply has answered yet (`conversations.awaiting_reply_since`, set by the intake, answered
when WhatsApp takes a reply that is not one of the console's automatic ones: out of hours, queue position,
closing; a refused reply and notes do not count either), or from the assignment if that is later. A
customer who keeps writing does not put it off: their later messages answer nothing. A conversation whose
agent has answered stays: nobody is waiting. Peers' top complaint is chats left with agents who do not
answer; this is the other half of `assignment.absence`.

The sweep reads only overdue conversations, from a partial index of the assigned ones awaiting an answer,
the longest waiting first; it never reads messages.
"""

from __future__ import annotations

from datetime import timedelta

from fiv_console.accounts.tenants import TenantSettings
from fiv_console.conversations import lifecycle as conversations
from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch

# Locked like any move (the conversation first); one someone is moving right now is left for the next round.
_UNANSWERED_SQL = """
select c.id, c.queue_id, c.agent_id
from conversations c
where c.status = 'assigned' and c.awaiting_reply_since <= now() - $1::interval
  and c.assigned_at <= now() - $1::interval
order by c.awaiting_reply_since, c.id
limit $2
for no key update of c skip locked
"""
_HAND_BACK_SQL = """
update conversations c
set status = 'waiting', agent_id = null, assigned_at = null, passed_over_agent_id = p.agent_id, updated_at = now()
from unnest($1::uuid[], $2::uuid[]) as p(conversation_id, agent_id)
where c.id = p.conversation_id
"""


async def reroute_unanswered(conn: Connection, batch: EventBatch, settings: TenantSettings, *, limit: int) -> int:
    """In the tenant's transaction: returns conversations unanswered past the tenant's limit to their
    queues, passed over by their agent, with `conversation.unassigned` events (reason `unanswered`)."""
    if settings.unanswered_reroute_seconds is None:
        return 0
    rows = await conn.fetch(_UNANSWERED_SQL, timedelta(seconds=settings.unanswered_reroute_seconds), limit)
    if not rows:
        return 0
    await conn.execute(_HAND_BACK_SQL, [r["id"] for r in rows], [r["agent_id"] for r in rows])
    await conversations.announce_returned(conn, batch, rows, reason="unanswered")
    return len(rows)
