"""Agents' time online, away and offline in a report's range, from the presence log (sql/0005).

Each row of `agent_presence_log` holds from its `changed_at` until the agent's next row. The state at the
range's start is the agent's last row before it; the range ends at its end or now, whichever is first.
Online: connected (a console socket open) with the status `online`; away: connected with `away`; offline:
the status `offline`, or no socket open. Agents without any row before the range's end have no time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from pydantic import BaseModel

from fiv_console.db.pool import Connection

# $1, $2: the range, cut at now; $3: one agent or null; $4: only members of this queue, or null. The row
# before the range is one probe of (tenant_id, user_id, changed_at) per person, the rows inside one range
# of it each.
PRESENCE_SQL = """
with people as (
    select u.id from users u
    where ($3::uuid is null or u.id = $3)
      and ($4::uuid is null or exists (select 1 from queue_members m where m.queue_id = $4 and m.user_id = u.id))
),
changes as (
    select p.id as user_id, b.id as seq, b.status, b.connected, $1::timestamptz as since
    from people p
    cross join lateral (
        select l.id, l.status, l.connected from agent_presence_log l
        where l.user_id = p.id and l.changed_at < $1
        order by l.changed_at desc, l.id desc limit 1
    ) b
    union all
    select p.id, l.id, l.status, l.connected, l.changed_at
    from people p
    cross join lateral (
        select l.id, l.status, l.connected, l.changed_at from agent_presence_log l
        where l.user_id = p.id and l.changed_at >= $1 and l.changed_at < $2
    ) l
),
spans as (
    select user_id, status, connected, since,
           coalesce(lead(since) over (partition by user_id order by since, seq), $2::timestamptz) as until
    from changes
)
select user_id,
       coalesce(sum(extract(epoch from until - since)) filter (where connected and status = 'online'), 0)::float8
           as online,
       coalesce(sum(extract(epoch from until - since)) filter (where connected and status = 'away'), 0)::float8
           as away,
       coalesce(sum(extract(epoch from until - since)) filter (where not connected or status = 'offline'), 0)::float8
           as offline
from spans
where until > since
group by user_id
"""


class PresenceTime(BaseModel):
    """Seconds in each state within the range."""

    online: float
    away: float
    offline: float


async def presence_times(
    conn: Connection, *, starts_at: datetime, ends_at: datetime, agent_id: UUID | None, queue_id: UUID | None
) -> dict[UUID, PresenceTime]:
    # Time yet to come is no time online: the range ends now, if that is sooner.
    rows = await conn.fetch(PRESENCE_SQL, starts_at, min(ends_at, datetime.now(UTC)), agent_id, queue_id)
    return {r["user_id"]: PresenceTime(online=r["online"], away=r["away"], offline=r["offline"]) for r in rows}
