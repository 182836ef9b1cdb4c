"""Service levels: a waiting conversation past its queue's target wait is marked breached, once.

The target is the queue's `sla_seconds`, counted from `enqueued_at` (kept across transfers and returns to
the queue, so moving a conversation does not reset its clock). The mark and its
`conversation.sla_breached` event are what the wallboard shows; a reopened conversation starts afresh.
"""

from __future__ import annotations

from fiv_console.assignment.claim import take_turn
from fiv_console.conversations import reading
from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch

# Conversations someone is moving right now are skipped: the next round sees them where they land.
_BREACHED_SQL = """
select c.id from conversations c
join queues q on q.tenant_id = c.tenant_id and q.id = c.queue_id
where c.status = 'waiting' and c.sla_breached_at is null
  and c.enqueued_at <= now() - make_interval(secs => q.sla_seconds)
order by c.enqueued_at, c.id
limit $1
for no key update of c skip locked
"""
_MARK_SQL = "update conversations set sla_breached_at = now(), updated_at = now() where id = any($1::uuid[])"


async def mark_breaches(conn: Connection, batch: EventBatch, *, limit: int) -> int:
    """In the tenant's transaction: marks waiting conversations past their queue's target, with an event to
    whoever follows each (its queue's agents, supervisors); how many."""
    await take_turn(conn, batch.tenant_id)  # it locks waiting conversations: a claim must not skip them
    ids = [r["id"] for r in await conn.fetch(_BREACHED_SQL, limit)]
    if not ids:
        return 0
    await conn.execute(_MARK_SQL, ids)
    for conversation in await reading.read_many(conn, ids):
        batch.add(
            "conversation.sla_breached",
            reading.followers_now(conversation),
            conversation_id=conversation.id,
            payload={"conversation": conversation.model_dump(mode="json")},
        )
    return len(ids)
