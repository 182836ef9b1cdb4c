"""The wallboard: every figure of every queue and agent of a tenant, and what changed between two boards.

Read from counters the database keeps as conversations move (`assignment/counters.py`,
`assignment/daily_counters.py`), one index probe per queue for its oldest waiting, and the queues and
agents themselves: never by counting conversations or messages, so a board costs the same with 100
conversations or 100,000. docs/wallboard.md defines each figure.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from fiv_console.accounts.users import AgentStatus, Role
from fiv_console.assignment import counters, daily_counters
from fiv_console.db.pool import Connection
from fiv_console.routing.business_hours import BusinessHours, closed_since, next_change

# A queue's longest wait turns the board yellow at this share of its SLA target, red past the target.
WARNING_SHARE = 0.8


class QueueFigures(BaseModel):
    queue_id: UUID
    name: str
    active: bool
    sla_seconds: int = Field(description="The queue's SLA target: a wait longer than this is breached.")
    sla_warning_seconds: int = Field(description="A wait longer than this is a warning (80% of the target).")
    waiting: int = Field(description="Conversations waiting in the queue now.")
    oldest_waiting_since: datetime | None = Field(description="When the longest waiter entered the queue.")
    in_progress: int = Field(description="Conversations of the queue assigned to an agent now.")
    answered_today: int = Field(description="Waits in this queue that ended with an assignment today.")
    answered_in_sla_today: int = Field(description="Of those, the ones that waited no longer than the target.")
    abandoned_today: int = Field(description="Waits that ended closed today, after 5 seconds or more.")
    service_level_today: float | None = Field(
        description="answered within the target / (answered + abandoned), today; null before any."
    )
    closed_today: int
    average_wait_seconds_today: float | None = Field(description="Enqueue to assignment, answered waits today.")
    first_responses_today: int
    average_first_response_seconds_today: float | None = Field(
        description="Arrival to the first reply of a person, for first replies today."
    )
    open_now: bool = Field(description="Within its business hours now (always, without hours).")
    hours_change_at: datetime | None = Field(description="When it next opens or closes; null if never.")


class AgentFigures(BaseModel):
    user_id: UUID
    name: str
    role: Role
    status: AgentStatus
    connected: bool
    presence_since: datetime | None = Field(description="The last change of status or connection.")
    open: int = Field(description="Conversations assigned to them now.")
    capacity: int
    handled_today: int = Field(description="Conversations they held that were closed today.")
    queue_ids: list[UUID] = Field(description="The queues they are a member of (the board's queue filter).")


class Wallboard(BaseModel):
    day: date = Field(description="The tenant's calendar day the `_today` figures count.")
    time_zone: str
    generated_at: datetime
    refresh_at: datetime = Field(
        description="The next moment figures change by the clock alone: midnight, or a queue opening or closing."
    )
    server_ms: float = Field(description="Server time spent reading the board, in milliseconds.")
    queues: list[QueueFigures]
    agents: list[AgentFigures]


class WallboardChange(BaseModel):
    """`queue.stats`: the rows that changed since the board a viewer holds, or the whole board (`full`)."""

    full: bool
    day: date
    time_zone: str
    generated_at: datetime
    queues: list[QueueFigures]
    agents: list[AgentFigures]


# Three statements, each one round trip: every counter (now and today), the tenant with its queues and each
# queue's oldest waiting (one index probe each), the people. `now()` is the transaction's: all agree on it.
_COUNTS_SQL = f"""
select 'now' as part, kind, subject_id, value from ({counters.READ_SQL}) live
union all
select 'today', kind, subject_id, value from ({daily_counters.READ_TODAY_SQL}) today
"""
_QUEUES_SQL = """
select t.time_zone, (now() at time zone t.time_zone)::date as day, now() as now,
       q.id, q.name, q.active, q.sla_seconds, q.business_hours,
       (select min(c.enqueued_at) from conversations c
        where c.tenant_id = q.tenant_id and c.queue_id = q.id and c.status = 'waiting') as oldest
from tenants t left join queues q on q.tenant_id = t.id
order by q.name_key, q.id
"""
# Agents, and anyone else holding conversations now (a supervisor who took one over); disabled people are
# off the board.
_AGENTS_SQL = """
select id, name, role, status, connected, max_concurrent,
       greatest(status_changed_at, connected_changed_at) as presence_since,
       array(select m.queue_id from queue_members m
             where m.tenant_id = users.tenant_id and m.user_id = users.id order by m.queue_id) as queue_ids
from users
where not disabled and (role = 'agent' or id = any($1::uuid[]))
order by name, id
"""


def _average(total_ms: int, count: int) -> float | None:
    return round(total_ms / count / 1000, 1) if count else None


def _next_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone).astimezone(UTC)


async def read(conn: Connection) -> Wallboard:
    """In the tenant's transaction: the whole board now."""
    started = time.perf_counter()
    live: defaultdict[str, dict[UUID, int]] = defaultdict(dict)
    today: defaultdict[str, dict[UUID, int]] = defaultdict(dict)
    for row in await conn.fetch(_COUNTS_SQL):
        (live if row["part"] == "now" else today)[row["kind"]][row["subject_id"]] = int(row["value"])

    def of(counted: defaultdict[str, dict[UUID, int]], kind: str, subject_id: UUID) -> int:
        return counted[kind].get(subject_id, 0)

    rows = await conn.fetch(_QUEUES_SQL)
    zone_name: str = rows[0]["time_zone"]
    day: date = rows[0]["day"]
    now: datetime = rows[0]["now"]
    refresh_at = _next_midnight(day, ZoneInfo(zone_name))
    queues: list[QueueFigures] = []
    for row in rows:
        queue_id: UUID | None = row["id"]
        if queue_id is None:
            continue  # a tenant without queues
        hours = BusinessHours.model_validate(row["business_hours"]) if row["business_hours"] is not None else None
        change_at = next_change(hours, zone_name, now) if hours is not None else None
        if change_at is not None:
            refresh_at = min(refresh_at, change_at)
        answered, abandoned = of(today, "answered", queue_id), of(today, "abandoned", queue_id)
        in_sla, first = of(today, "answered_in_sla", queue_id), of(today, "first_responses", queue_id)
        queues.append(
            QueueFigures(
                queue_id=queue_id,
                name=row["name"],
                active=row["active"],
                sla_seconds=row["sla_seconds"],
                sla_warning_seconds=max(1, int(row["sla_seconds"] * WARNING_SHARE)),
                waiting=of(live, "queue_waiting", queue_id),
                oldest_waiting_since=row["oldest"],
                in_progress=of(live, "queue_open", queue_id),
                answered_today=answered,
                answered_in_sla_today=in_sla,
                abandoned_today=abandoned,
                service_level_today=round(in_sla / (answered + abandoned), 4) if answered + abandoned else None,
                closed_today=of(today, "closed", queue_id),
                average_wait_seconds_today=_average(of(today, "wait_ms", queue_id), answered),
                first_responses_today=first,
                average_first_response_seconds_today=_average(of(today, "first_response_ms", queue_id), first),
                open_now=hours is None or closed_since(hours, zone_name, now) is None,
                hours_change_at=change_at,
            )
        )
    holding = [agent_id for agent_id, count in live["agent_open"].items() if count]
    agents = [
        AgentFigures(
            user_id=row["id"],
            name=row["name"],
            role=row["role"],
            status=row["status"],
            connected=row["connected"],
            presence_since=row["presence_since"],
            open=of(live, "agent_open", row["id"]),
            capacity=row["max_concurrent"],
            handled_today=of(today, "handled", row["id"]),
            queue_ids=row["queue_ids"],
        )
        for row in await conn.fetch(_AGENTS_SQL, holding)
    ]
    return Wallboard(
        day=day,
        time_zone=zone_name,
        generated_at=now,
        refresh_at=refresh_at,
        server_ms=round((time.perf_counter() - started) * 1000, 3),
        queues=queues,
        agents=agents,
    )


def whole(board: Wallboard) -> WallboardChange:
    """The board as one `queue.stats` a new viewer starts from."""
    return WallboardChange(
        full=True,
        day=board.day,
        time_zone=board.time_zone,
        generated_at=board.generated_at,
        queues=board.queues,
        agents=board.agents,
    )


def changes(before: Wallboard, after: Wallboard) -> WallboardChange | None:
    """What a viewer holding `before` needs to hold `after`: the rows that differ (compared whole), or the
    whole board when rows came, went or moved (a queue renamed) or a new day reset the `_today` figures;
    None when nothing differs."""
    same_rows = [q.queue_id for q in before.queues] == [q.queue_id for q in after.queues] and [
        a.user_id for a in before.agents
    ] == [a.user_id for a in after.agents]
    if not same_rows or before.day != after.day or before.time_zone != after.time_zone:
        return whole(after)
    queues = [new for old, new in zip(before.queues, after.queues, strict=True) if old != new]
    agents = [new for old, new in zip(before.agents, after.agents, strict=True) if old != new]
    if not (queues or agents):
        return None
    return WallboardChange(
        full=False,
        day=after.day,
        time_zone=after.time_zone,
        generated_at=after.generated_at,
        queues=queues,
        agents=agents,
    )
