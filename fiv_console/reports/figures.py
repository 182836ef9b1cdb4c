"""The report's figures, by queue, by agent, over time and in total, from one statement over the segments.

Each segment (sql/0015) yields its events: queued, answered, abandoned, first response (the customer's and
the agent's view), handled, closed, resolved, transfers in and out, re-routes, reopens, each with its own
time, and each counted in the bucket of that time. The totals, the queues' and agents' rows and the time
series are grouping sets of the same events, so cards, tables and charts cannot disagree; averages are over
conversations (events), never averages of averages. Every definition is written in docs/reports.md and on
the page, in words that follow `_EVENTS_SQL` below.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from fiv_console.db.pool import Connection
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


def _aggregates() -> str:
    counts = [f"sum({name}) as {name}" for name in _COUNTS]
    durations = [
        f"count({name}) as {name}_count, avg({name}) as {name}_average, "
        f"percentile_disc(array[0.5, 0.9]) within group (order by {name}) as {name}_percentiles"
        for name in _DURATIONS
    ]
    return ",\n       ".join(counts + durations)


# $5: 'hour' or 'day'; $6: the tenant's time zone. A bucket is the local wall time its hour or day begins.
SUMMARY_SQL = f"""
select grouping(f.queue_id) = 0 as by_queue, grouping(f.agent_id) = 0 as by_agent,
       grouping(f.bucket) = 0 as by_bucket, f.queue_id, f.agent_id, f.bucket,
       {_aggregates()}
from (select ev.*, date_trunc($5, ev.at at time zone $6) as bucket from ({_EVENTS_SQL}) ev) f
group by grouping sets ((), (f.queue_id), (f.agent_id), (f.bucket))
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


def figures_of(row: Any) -> Figures:
    """A row of SUMMARY_SQL (or nothing: no event) as figures, with the service level and abandon rate."""

    def count(name: str) -> int:
        return int(row[name]) if row is not None else 0

    def duration(name: str) -> Duration:
        if row is None or not row[f"{name}_count"]:
            return Duration(count=0, average=None, p50=None, p90=None)
        p50, p90 = row[f"{name}_percentiles"]
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


async def summarize(
    conn: Connection, *, period: Period, queue_id: UUID | None = None, agent_id: UUID | None = None
) -> Summary:
    """The figures of the period, in the caller's tenant transaction."""
    rows = await conn.fetch(
        SUMMARY_SQL,
        period.starts_at,
        period.ends_at,
        queue_id,
        agent_id,
        period.unit,
        period.time_zone,
    )
    total = next((r for r in rows if not (r["by_queue"] or r["by_agent"] or r["by_bucket"])), None)
    by_queue = {r["queue_id"]: r for r in rows if r["by_queue"]}
    by_agent = {r["agent_id"]: r for r in rows if r["by_agent"] and r["agent_id"] is not None}
    label = BUCKET_FORMATS[period.unit]
    by_bucket = {r["bucket"].strftime(label): r for r in rows if r["by_bucket"]}
    presence = await presence_times(
        conn, starts_at=period.starts_at, ends_at=period.ends_at, agent_id=agent_id, queue_id=queue_id
    )
    queues = await conn.fetch(_QUEUES_SQL, list(by_queue))
    people = await conn.fetch(_PEOPLE_SQL, list(by_agent.keys() | presence.keys()))
    no_time = PresenceTime(online=0, away=0, offline=0)
    return Summary(
        time_zone=period.time_zone,
        starts_at=period.starts_at.isoformat(),
        ends_at=period.ends_at.isoformat(),
        unit=period.unit,
        short_abandon_seconds=SHORT_ABANDON_SECONDS,
        totals=figures_of(total),
        queues=[
            QueueFigures(
                queue_id=q["id"], name=q["name"], sla_seconds=q["sla_seconds"], figures=figures_of(by_queue[q["id"]])
            )
            for q in queues
        ],
        agents=[
            AgentFigures(
                agent_id=p["id"],
                name=p["name"],
                figures=figures_of(by_agent.get(p["id"])),
                presence=presence.get(p["id"], no_time),
            )
            for p in people
        ],
        series=[BucketFigures(bucket=b, figures=figures_of(by_bucket.get(b))) for b in period.buckets()],
    )
