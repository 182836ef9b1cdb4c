"""The report's figures, by queue, by agent, over time and in total, from the segments (sql/0016).

Each segment yields its events: queued, answered, abandoned, first response (the customer's and the agent's
view), handled, closed, resolved, transfers in and out, re-routes, reopens, each with its own time, and each
counted in the bucket of that time. The totals, the queues' and agents' rows and the time series are
grouping sets of the same events (counts and averages in one statement, p50 and p90 in another), so cards,
tables and charts cannot disagree; averages are over conversations (events), never averages of averages.
Every definition is written in docs/reports.md and on the page, in words that follow the SQL below.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.reports.period import BUCKET_FORMATS, Period, Unit
from fiv_console.reports.presence import PresenceTime, presence_times

# A customer who left within this long of entering the line is not counted against the service level.
SHORT_ABANDON_SECONDS = 5


def _seconds(later: str, earlier: str) -> str:
    return f"extract(epoch from {later} - {earlier})::float8"


# The segments with an event in the range ($1 inclusive to $2 exclusive): one index range per event time.
_SEGMENTS_SQL = """
select s.*, q.sla_seconds
from conversation_segments s
join queues q on q.tenant_id = s.tenant_id and q.id = s.queue_id
where ((s.started_at >= $1 and s.started_at < $2)
       or (s.assigned_at >= $1 and s.assigned_at < $2)
       or (s.agent_reply_at >= $1 and s.agent_reply_at < $2)
       or (s.episode_reply_here and s.episode_reply_at >= $1 and s.episode_reply_at < $2)
       or (s.ended_at >= $1 and s.ended_at < $2))
  and ($3::uuid is null or s.queue_id = $3)
"""

# Each figure of one event: a count (1 or 0) or seconds (null where it does not apply), from the event's kind
# (1 start, 2 answer, 3 the opening's first reply of a person, 4 the agent's first reply, 5 end) and its
# segment `s`. Counts are summed and durations averaged over conversations; nothing is averaged twice.
_COUNTS: dict[str, str] = {
    "queued": "e.kind = 1 and s.queued",
    "answered": "e.kind = 2",
    "answered_in_target": "e.kind = 2 and s.assigned_at - s.started_at <= make_interval(secs => s.sla_seconds)",
    "abandoned": "e.kind = 5 and s.end_kind = 'close' and s.queued and s.assigned_at is null",
    "short_abandoned": (
        "e.kind = 5 and s.end_kind = 'close' and s.queued and s.assigned_at is null"
        f" and s.ended_at - s.started_at < make_interval(secs => {SHORT_ABANDON_SECONDS})"
    ),
    "closed": "e.kind = 5 and s.end_kind = 'close'",
    "transfers_in": "e.kind = 1 and s.start_kind = 'transfer'",
    "transfers_out": "e.kind = 5 and s.end_kind = 'transfer'",
    "reroutes": "e.kind = 5 and s.end_kind = 'reroute'",
    "reopened": "e.kind = 1 and s.start_kind = 'reopen'",
}
_DURATIONS: dict[str, tuple[str, str]] = {
    "wait": ("e.kind = 2", _seconds("s.assigned_at", "s.started_at")),
    "first_response": ("e.kind = 3", _seconds("s.episode_reply_at", "s.opened_at")),
    "agent_first_response": ("e.kind = 4", _seconds("s.agent_reply_at", "s.assigned_at")),
    "handle": (
        "e.kind = 5 and s.end_kind = 'close' and s.assigned_at is not null",
        _seconds("s.ended_at", "s.assigned_at"),
    ),
    "resolution": (
        "e.kind = 5 and s.end_kind = 'close' and s.episode_reply_at is not null",
        _seconds("s.ended_at", "s.opened_at"),
    ),
}


def _event_columns() -> str:
    counts = [f"({condition})::int as {name}" for name, condition in _COUNTS.items()]
    durations = [f"case when {condition} then {value} end as {name}" for name, (condition, value) in _DURATIONS.items()]
    return ",\n       ".join(counts + durations)


# Each segment yields up to five events, each at its own time and credited to its own agent: its start
# (queued, transferred in, reopened: an agent's only when handed straight to them), its answer (a queued
# segment assigned), the opening's first reply of a person when sent in this segment (whoever sent it), its
# agent's first reply, and its end (closed, abandoned, transferred out, re-routed). A null time: no event.
_EVENTS_SQL = f"""
select e.at, s.queue_id, e.agent_id,
       {_event_columns()}
from ({_SEGMENTS_SQL}) s
cross join lateral (values
    (1, s.started_at, case when not s.queued then s.agent_id end),
    (2, case when s.queued then s.assigned_at end, s.agent_id),
    (3, case when s.episode_reply_here then s.episode_reply_at end, s.episode_reply_by),
    (4, s.agent_reply_at, s.agent_id),
    (5, s.ended_at, s.agent_id)
) as e(kind, at, agent_id)
where e.at >= $1 and e.at < $2 and ($4::uuid is null or e.agent_id = $4)
"""


_GROUPS = """
grouping(queue_id) = 0 as by_queue, grouping(agent_id) = 0 as by_agent, grouping(bucket) = 0 as by_bucket,
queue_id, agent_id, bucket"""
_SETS = "group by grouping sets ((), (queue_id), (agent_id), (bucket))"


def _cell_sums() -> str:
    counts = [f"sum({name}) as {name}" for name in _COUNTS]
    durations = [f"count({name}) as {name}_count, sum({name}) as {name}_sum" for name in _DURATIONS]
    return ", ".join(counts + durations)


def _rolled_up() -> str:
    counts = [f"sum({name}) as {name}" for name in _COUNTS]
    durations = [
        f"sum({name}_count) as {name}_count, sum({name}_sum) / nullif(sum({name}_count), 0) as {name}_average"
        for name in _DURATIONS
    ]
    return ", ".join(counts + durations)


# $5: 'hour' or 'day'; $6: the tenant's time zone. A bucket is the local wall time its hour or day begins.
# Counts and averages: the events summed per queue, agent and bucket first (one hashed pass with one sum per
# figure), then those cells rolled up into the four groupings: sums of sums, so still over conversations.
COUNTS_SQL = f"""
with cells as (
    select ev.queue_id, ev.agent_id, date_trunc($5, ev.at at time zone $6) as bucket, {_cell_sums()}
    from ({_EVENTS_SQL}) ev
    group by 1, 2, 3
)
select {_GROUPS}, {_rolled_up()}
from cells
{_SETS}
"""
# p50 and p90 need every value in order: only the events that carry a duration, in the same four groupings.
_PERCENTILES = ", ".join(
    f"percentile_disc(array[0.5, 0.9]) within group (order by {name}) as {name}_percentiles" for name in _DURATIONS
)
PERCENTILES_SQL = f"""
select {_GROUPS}, {_PERCENTILES}
from (select ev.queue_id, ev.agent_id, date_trunc($5, ev.at at time zone $6) as bucket, {", ".join(_DURATIONS)}
      from ({_EVENTS_SQL}) ev
      where coalesce({", ".join(_DURATIONS)}) is not null) n
{_SETS}
"""
_QUEUES_SQL = "select id, name, sla_seconds from queues where id = any($1::uuid[]) order by lower(name), id"
_PEOPLE_SQL = "select id, name from users where id = any($1::uuid[]) order by lower(name), id"


class Duration(BaseModel):
    """Seconds, over the conversations the figure counts."""

    count: int
    average: float | None
    p50: float | None
    p90: float | None


class Figures(BaseModel):
    queued: int
    answered: int
    answered_in_target: int
    abandoned: int
    short_abandoned: int
    service_level: float | None
    abandon_rate: float | None
    closed: int
    transfers_in: int
    transfers_out: int
    reroutes: int
    reopened: int
    wait: Duration
    first_response: Duration
    agent_first_response: Duration
    handle: Duration
    resolution: Duration

    @property
    def resolved(self) -> int:
        return self.resolution.count

    @property
    def handled(self) -> int:
        return self.handle.count


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def figures_of(row: Any, percentiles: Any) -> Figures:
    """Rows of COUNTS_SQL and PERCENTILES_SQL for one grouping (or none: no event) as figures, with the
    service level and abandon rate."""

    def count(name: str) -> int:
        # The total's row exists even with no event at all, its sums null.
        return int(row[name] or 0) if row is not None else 0

    def duration(name: str) -> Duration:
        if row is None or not row[f"{name}_count"]:
            return Duration(count=0, average=None, p50=None, p90=None)
        p50, p90 = percentiles[f"{name}_percentiles"] if percentiles is not None else (None, None)
        return Duration(count=row[f"{name}_count"], average=row[f"{name}_average"], p50=p50, p90=p90)

    answered, abandoned, short = count("answered"), count("abandoned"), count("short_abandoned")
    derived: dict[str, Any] = {
        "service_level": _ratio(count("answered_in_target"), answered + abandoned - short),
        "abandon_rate": _ratio(abandoned, count("queued")),
    }
    return Figures.model_validate(
        {name: count(name) for name in _COUNTS} | {name: duration(name) for name in _DURATIONS} | derived
    )


class QueueFigures(BaseModel):
    queue_id: UUID
    name: str
    sla_seconds: int
    figures: Figures


class AgentFigures(BaseModel):
    agent_id: UUID
    name: str
    figures: Figures
    presence: PresenceTime


class BucketFigures(BaseModel):
    bucket: str
    figures: Figures


class Summary(BaseModel):
    time_zone: str
    starts_at: str
    ends_at: str
    unit: Unit
    short_abandon_seconds: int
    totals: Figures
    queues: list[QueueFigures]
    agents: list[AgentFigures]
    series: list[BucketFigures]


GroupKey = tuple[str, Any]


def _by_group(rows: list[asyncpg.Record]) -> dict[GroupKey, asyncpg.Record]:
    def key(row: asyncpg.Record) -> GroupKey:
        if row["by_queue"]:
            return ("queue", row["queue_id"])
        if row["by_agent"]:
            return ("agent", row["agent_id"])
        if row["by_bucket"]:
            return ("bucket", row["bucket"])
        return ("total", None)

    return {key(row): row for row in rows}


async def _fetch(db: Database, tenant_id: UUID, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with tenant_tx(db, tenant_id) as conn:
        return await conn.fetch(sql, *args)


async def summarize(
    db: Database, *, tenant_id: UUID, period: Period, queue_id: UUID | None = None, agent_id: UUID | None = None
) -> Summary:
    """The figures of the period in the tenant.

    The counts and the percentiles are two statements over the same events, run side by side on two
    connections (each a transaction of its own), so a month's report takes the longer of the two rather than
    their sum; a conversation that moves between their two snapshots can be in one and not yet the other.
    """
    args = (period.starts_at, period.ends_at, queue_id, agent_id, period.unit, period.time_zone)
    count_rows, percentile_rows = await asyncio.gather(
        _fetch(db, tenant_id, COUNTS_SQL, *args), _fetch(db, tenant_id, PERCENTILES_SQL, *args)
    )
    counts, percentiles = _by_group(count_rows), _by_group(percentile_rows)
    async with tenant_tx(db, tenant_id) as conn:
        presence = await presence_times(
            conn, starts_at=period.starts_at, ends_at=period.ends_at, agent_id=agent_id, queue_id=queue_id
        )
        queue_ids = [k[1] for k in counts if k[0] == "queue"]
        agent_ids = {k[1] for k in counts if k[0] == "agent" and k[1] is not None} | presence.keys()
        queues = await conn.fetch(_QUEUES_SQL, queue_ids)
        people = await conn.fetch(_PEOPLE_SQL, list(agent_ids))

    def of(key: GroupKey) -> Figures:
        return figures_of(counts.get(key), percentiles.get(key))

    label = BUCKET_FORMATS[period.unit]
    buckets = {k[1].strftime(label): k for k in counts if k[0] == "bucket"}
    no_time = PresenceTime(online=0, away=0, offline=0)
    return Summary(
        time_zone=period.time_zone,
        starts_at=period.starts_at.isoformat(),
        ends_at=period.ends_at.isoformat(),
        unit=period.unit,
        short_abandon_seconds=SHORT_ABANDON_SECONDS,
        totals=of(("total", None)),
        queues=[
            QueueFigures(queue_id=q["id"], name=q["name"], sla_seconds=q["sla_seconds"], figures=of(("queue", q["id"])))
            for q in queues
        ],
        agents=[
            AgentFigures(
                agent_id=p["id"],
                name=p["name"],
                figures=of(("agent", p["id"])),
                presence=presence.get(p["id"], no_time),
            )
            for p in people
        ],
        series=[BucketFigures(bucket=b, figures=of(buckets.get(b, ("bucket", b)))) for b in period.buckets()],
    )
