"""Conversations left with an absent agent go back to their queues, at their original place.

An agent is absent once they chose `offline`, or once they have been without a console socket past the
presence grace period (`users.connected` turned false), for longer than the tenant's `requeue_after_seconds`;
a tenant may instead keep conversations with their agent (`offline_conversations = "keep"`). Peers' top
complaint is chats left with agents who are gone; here they return to the line and the next claim gives
them to someone present.
"""

from __future__ import annotations

from datetime import timedelta

from fiv_console.accounts.tenants import TenantSettings
from fiv_console.conversations import lifecycle as conversations
from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch

# Locked like any move (the conversation first); one someone is moving right now is left for the next round.
# Only what the agent held when they left: a supervisor who assigns to an absent agent afterwards means it.
_LEFT_WITH_ABSENT_SQL = """
select c.id, c.queue_id, c.agent_id
from conversations c
join users u on u.tenant_id = c.tenant_id and u.id = c.agent_id
where c.status = 'assigned'
  and ((u.status = 'offline' and u.status_changed_at <= now() - $1::interval
        and c.assigned_at <= u.status_changed_at)
       or (not u.connected and u.connected_changed_at <= now() - $1::interval
           and c.assigned_at <= u.connected_changed_at))
order by c.enqueued_at, c.id
limit $2
for no key update of c skip locked
"""
# Back in the line where it stood: enqueued_at is kept.
_BACK_TO_QUEUE_SQL = """
update conversations set status = 'waiting', agent_id = null, assigned_at = null, updated_at = now()
where id = any($1::uuid[])
"""
# The segments the update just ended and began (0016's trigger calls them transfers, as for a person's
# unassign) are the console's re-routes: the report counts them apart.
_REROUTED_SQL = """
update conversation_segments
set end_kind = case when ended_at is null then end_kind else 'reroute' end,
    start_kind = case when ended_at is null then 'reroute' else start_kind end
where conversation_id = any($1::uuid[])
  and ((ended_at = now() and end_kind = 'transfer')
       or (ended_at is null and started_at = now() and start_kind = 'transfer'))
"""


async def requeue_from_absent(conn: Connection, batch: EventBatch, settings: TenantSettings, *, limit: int) -> int:
    """In the tenant's transaction (`events.changing`): returns what absent agents hold to their queues, with
    their `conversation.unassigned` events (reason `agent_absent`) in `batch`; how many went back."""
    if settings.offline_conversations == "keep":
        return 0
    after = timedelta(seconds=settings.requeue_after_seconds)
    rows = await conn.fetch(_LEFT_WITH_ABSENT_SQL, after, limit)
    if not rows:
        return 0
    await conn.execute(_BACK_TO_QUEUE_SQL, [r["id"] for r in rows])
    await conn.execute(_REROUTED_SQL, [r["id"] for r in rows])
    await conversations.announce_returned(conn, batch, rows, reason="agent_absent")
    return len(rows)
