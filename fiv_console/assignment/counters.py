"""The wallboard's counters: conversations waiting and in progress per queue (and since when the oldest
waits), open per agent.

The database keeps them (migrations 0007, 0015): every statement that moves a conversation appends its net
change as delta rows, and `fold` adds the deltas into the counters, one fold at a time per tenant. Reading
adds the few deltas not folded yet to the counters, and finds each queue's oldest waiting conversation
with one index probe (conversations_oldest_waiting_idx): no conversation is counted.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from fiv_console.db.pool import Connection

# Folds of one tenant take turns without waiting: a fold already running takes whatever is there.
_TRY_TURN_SQL = "select pg_try_advisory_xact_lock(hashtextextended('assignment-counters:' || $1::uuid::text, 0))"
_FOLD_SQL = """
with taken as (delete from assignment_counter_deltas returning tenant_id, kind, subject_id, delta)
insert into assignment_counters (tenant_id, kind, subject_id, value)
select tenant_id, kind, subject_id, sum(delta) from taken
group by tenant_id, kind, subject_id
order by kind, subject_id
on conflict (tenant_id, kind, subject_id) do update set value = assignment_counters.value + excluded.value
"""
# The wallboard folds this into its own statement (wallboard/board.py): one round trip for all counters.
READ_SQL = """
select kind, subject_id, sum(value)::bigint as value from (
    select kind, subject_id, value from assignment_counters
    union all
    select kind, subject_id, delta from assignment_counter_deltas
) counted
group by kind, subject_id
"""
_OLDEST_WAITING_SQL = """
select q.id, (
    select min(c.enqueued_at) from conversations c
    where c.tenant_id = q.tenant_id and c.queue_id = q.id and c.status = 'waiting'
) as oldest
from queues q
"""


class QueueCounters(BaseModel):
    queue_id: UUID
    waiting: int
    in_progress: int
    oldest_waiting_since: datetime | None


class Counters(BaseModel):
    queues: list[QueueCounters]
    open_per_agent: dict[UUID, int]


async def fold(conn: Connection, tenant_id: UUID) -> None:
    """In the tenant's transaction: adds the deltas appended so far into the counters."""
    if await conn.fetchval(_TRY_TURN_SQL, tenant_id):
        await conn.execute(_FOLD_SQL)


async def read(conn: Connection) -> Counters:
    """In the tenant's transaction: the counters as of its last commit."""
    values = {(r["kind"], r["subject_id"]): int(r["value"]) for r in await conn.fetch(READ_SQL)}
    queues = [
        QueueCounters(
            queue_id=r["id"],
            waiting=values.get(("queue_waiting", r["id"]), 0),
            in_progress=values.get(("queue_open", r["id"]), 0),
            oldest_waiting_since=r["oldest"],
        )
        for r in await conn.fetch(_OLDEST_WAITING_SQL)
    ]
    open_per_agent = {subject: value for (kind, subject), value in values.items() if kind == "agent_open" and value}
    return Counters(queues=sorted(queues, key=lambda q: q.queue_id), open_per_agent=open_per_agent)
