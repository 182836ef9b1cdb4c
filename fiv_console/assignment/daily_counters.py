"""The wallboard's figures of the day: per queue waits answered (within the SLA target or not) and their
total, waits abandoned, closes, first responses and their total time; per agent conversations handled.

Each is counted in the tenant's calendar day of the event that ends it, in its time zone. The database
keeps them (migration 0015: a trigger on conversations appends delta rows in the statement that moves
one); `fold` adds the deltas into the day's counters, one fold at a time per tenant, and drops days no
board shows any more. Reading adds the unfolded deltas of today to today's counters: nothing is counted
from conversations or messages.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from fiv_console.db.pool import Connection

DayKind = Literal[
    "answered", "answered_in_sla", "wait_ms", "abandoned", "closed", "first_responses", "first_response_ms", "handled"
]

# Folds of one tenant take turns without waiting, as 0007's do (another lock key: they may run together).
_TRY_TURN_SQL = "select pg_try_advisory_xact_lock(hashtextextended('wallboard-day-counters:' || $1::uuid::text, 0))"
_FOLD_SQL = """
with taken as (delete from wallboard_day_counter_deltas returning tenant_id, day, kind, subject_id, delta)
insert into wallboard_day_counters (tenant_id, day, kind, subject_id, value)
select tenant_id, day, kind, subject_id, sum(delta) from taken
group by tenant_id, day, kind, subject_id
order by day, kind, subject_id
on conflict (tenant_id, day, kind, subject_id) do update set value = wallboard_day_counters.value + excluded.value
"""
# Yesterday is kept: a board in another time zone than the server's clock may still be on it a moment.
_PRUNE_SQL = """
delete from wallboard_day_counters
where day < (select (now() at time zone time_zone)::date - 1 from tenants)
"""
_TODAY_SQL = "select (now() at time zone time_zone)::date from tenants"
_READ_TEMPLATE = """
select kind, subject_id, sum(value)::bigint as value from (
    select kind, subject_id, value from wallboard_day_counters where day = {day}
    union all
    select kind, subject_id, delta from wallboard_day_counter_deltas where day = {day}
) counted
group by kind, subject_id
"""
_READ_SQL = _READ_TEMPLATE.format(day="$1")
# Today's, the day found in the same statement (the wallboard folds it into its own: one round trip).
READ_TODAY_SQL = _READ_TEMPLATE.format(day=f"({_TODAY_SQL})")


class DayCounters(BaseModel):
    day: date
    # kind -> subject (a queue, or an agent for `handled`) -> value
    values: dict[DayKind, dict[UUID, int]]

    def of(self, kind: DayKind, subject_id: UUID) -> int:
        return self.values.get(kind, {}).get(subject_id, 0)


async def fold(conn: Connection, tenant_id: UUID) -> None:
    """In the tenant's transaction: adds the deltas appended so far into the day counters."""
    if await conn.fetchval(_TRY_TURN_SQL, tenant_id):
        await conn.execute(_FOLD_SQL)
        await conn.execute(_PRUNE_SQL)


async def today(conn: Connection) -> date:
    """In the tenant's transaction: the tenant's calendar day now, in its time zone."""
    day: date = await conn.fetchval(_TODAY_SQL)
    return day


async def read(conn: Connection, *, day: date) -> DayCounters:
    """In the tenant's transaction: the day's counters as of its last commit."""
    values: defaultdict[DayKind, dict[UUID, int]] = defaultdict(dict)
    for row in await conn.fetch(_READ_SQL, day):
        values[row["kind"]][row["subject_id"]] = int(row["value"])
    return DayCounters(day=day, values=dict(values))
