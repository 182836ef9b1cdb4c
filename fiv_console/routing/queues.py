"""Queues where conversations wait, and their members (the users who serve them).

Reads of queues take an `access.Sight`: staff see the whole tenant, an agent only the queues they are a member of.
Row-level security already hides other tenants; the sight narrows what one tenant's agent may see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fiv_console.access import WHOLE_TENANT, Audience, Sight
from fiv_console.accounts.users import Role
from fiv_console.db.pool import Connection
from fiv_console.db.search import contains_pattern
from fiv_console.errors import Conflict, NotFound
from fiv_console.events import EventBatch
from fiv_console.routing.business_hours import BusinessHours
from fiv_console.text import NO_NUL

QueueName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NO_NUL)]
Priority = Annotated[int, Field(ge=-1000, le=1000, description="Higher is served first.")]
SlaSeconds = Annotated[int, Field(ge=1, le=604_800, description="Target wait before breach.")]
OutOfHoursMessage = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4096, pattern=NO_NUL),
    Field(description="Sent once to a customer who writes while the queue is closed (within the 24-hour window)."),
]
HoursField = Annotated[
    BusinessHours | None,
    Field(description="Opening hours per weekday in the tenant's time zone; null: always open."),
]


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: QueueName
    priority: Priority = 0
    sla_seconds: SlaSeconds = 300
    business_hours: HoursField = None
    out_of_hours_message: OutOfHoursMessage | None = None


class QueueUpdate(BaseModel):
    """An admin's change to a queue; a field left out stays as it is, and so does a null one, except
    `business_hours` and `out_of_hours_message`, which null clears."""

    model_config = ConfigDict(extra="forbid")

    name: QueueName | None = None
    priority: Priority | None = None
    sla_seconds: SlaSeconds | None = None
    active: bool | None = None
    business_hours: HoursField = None
    out_of_hours_message: OutOfHoursMessage | None = None


class Queue(BaseModel):
    id: UUID
    tenant_id: UUID
    name: str
    priority: int
    sla_seconds: int
    active: bool
    business_hours: BusinessHours | None
    out_of_hours_message: str | None
    created_at: datetime


QueueSort = Literal["name", "-priority", "-created_at"]

_QUEUE_COLUMNS = "id, tenant_id, name, priority, sla_seconds, active, business_hours, out_of_hours_message, created_at"

_INSERT_QUEUE_SQL = f"""
insert into queues (tenant_id, name, priority, sla_seconds, business_hours, out_of_hours_message)
values ($1, $2, $3, $4, $5, $6)
returning {_QUEUE_COLUMNS}
"""


def _hours_json(hours: BusinessHours | None) -> dict[str, object] | None:
    return hours.model_dump(mode="json") if hours is not None else None


async def create_queue(conn: Connection, *, tenant_id: UUID, data: QueueCreate) -> Queue:
    try:
        row = await conn.fetchrow(
            _INSERT_QUEUE_SQL,
            tenant_id,
            data.name,
            data.priority,
            data.sla_seconds,
            _hours_json(data.business_hours),
            data.out_of_hours_message,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a queue named {data.name!r} already exists") from None
    return Queue.model_validate(dict(row or {}))


# $1: the whole tenant is visible; $2: else the agent whose memberships decide (null: none).
_VISIBLE_QUEUE = """($1::boolean or exists (
    select 1 from queue_members m where m.tenant_id = queues.tenant_id and m.queue_id = queues.id and m.user_id = $2
))"""
_QUEUE_FILTER = f"""
where {_VISIBLE_QUEUE}
  and ($3::boolean is null or active = $3)
  and ($4::text is null or name ilike $4)
  and ($5::uuid is null or exists (
    select 1 from queue_members m where m.tenant_id = queues.tenant_id and m.queue_id = queues.id and m.user_id = $5
  ))
"""
_QUEUE_ORDER: dict[QueueSort, str] = {
    "name": "name_key, id",
    "-priority": "priority desc, name_key, id",
    "-created_at": "created_at desc, id",
}
_LIST_QUEUES_SQL: dict[QueueSort, str] = {
    sort: f"select {_QUEUE_COLUMNS} from queues {_QUEUE_FILTER} order by {order} limit $6 offset $7"
    for sort, order in _QUEUE_ORDER.items()
}
_COUNT_QUEUES_SQL = f"select count(*) from queues {_QUEUE_FILTER}"


async def list_queues(
    conn: Connection,
    *,
    sight: Sight,
    active: bool | None,
    search: str | None,
    member_id: UUID | None = None,
    sort: QueueSort,
    limit: int,
    offset: int,
) -> tuple[list[Queue], int]:
    """The queues in `sight`, narrowed to those `member_id` is a member of when given."""
    filters = (*sight.params(), active, contains_pattern(search), member_id)
    rows = await conn.fetch(_LIST_QUEUES_SQL[sort], *filters, limit, offset)
    total = await conn.fetchval(_COUNT_QUEUES_SQL, *filters)
    return [Queue.model_validate(dict(r)) for r in rows], int(total)


_GET_QUEUE_SQL = f"select {_QUEUE_COLUMNS} from queues where id = $3 and {_VISIBLE_QUEUE}"


async def get_queue(conn: Connection, *, queue_id: UUID, sight: Sight) -> Queue:
    """A queue within `sight`; one out of sight is as unknown as one of another tenant."""
    row = await conn.fetchrow(_GET_QUEUE_SQL, *sight.params(), queue_id)
    if row is None:
        raise NotFound("no such queue")
    return Queue.model_validate(dict(row))


_UPDATE_QUEUE_SQL = f"""
update queues set
    name = coalesce($2, name),
    priority = coalesce($3, priority),
    sla_seconds = coalesce($4, sla_seconds),
    active = coalesce($5, active),
    business_hours = case when $6 then $7 else business_hours end,
    out_of_hours_message = case when $8 then $9 else out_of_hours_message end,
    updated_at = now()
where id = $1
returning {_QUEUE_COLUMNS}
"""


async def update_queue(conn: Connection, *, queue_id: UUID, data: QueueUpdate) -> Queue:
    try:
        given = data.model_fields_set
        row = await conn.fetchrow(
            _UPDATE_QUEUE_SQL,
            queue_id,
            data.name,
            data.priority,
            data.sla_seconds,
            data.active,
            "business_hours" in given,
            _hours_json(data.business_hours),
            "out_of_hours_message" in given,
            data.out_of_hours_message,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a queue named {data.name!r} already exists") from None
    if row is None:
        raise NotFound("no such queue")
    return Queue.model_validate(dict(row))


_QUEUE_BY_ID_SQL = f"select {_QUEUE_COLUMNS} from queues where id = $1"
_QUEUE_BY_NAME_SQL = f"select {_QUEUE_COLUMNS} from queues where name_key = lower($1)"


async def find_queue(conn: Connection, *, reference: str) -> Queue:
    """A queue of the current tenant by id or by (case-insensitive) name."""
    try:
        row = await conn.fetchrow(_QUEUE_BY_ID_SQL, UUID(reference))
    except ValueError:
        row = await conn.fetchrow(_QUEUE_BY_NAME_SQL, reference)
    if row is None:
        raise NotFound(f"no queue {reference!r} in this tenant")
    return Queue.model_validate(dict(row))


class MembershipChange(BaseModel):
    """The whole membership (PUT replaces it): a left-out override is null."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent_override: int | None = Field(
        default=None, ge=1, le=100, description="Conversations at once in this queue; null: the user's own."
    )


class QueueMember(BaseModel):
    """A member with what the console shows beside them; `max_concurrent` is the user's own capacity."""

    queue_id: UUID
    user_id: UUID
    name: str
    email: str
    role: Role
    disabled: bool
    max_concurrent: int
    max_concurrent_override: int | None
    created_at: datetime


_MEMBER_COLUMNS = """m.queue_id, m.user_id, u.name, u.email, u.role, u.disabled, u.max_concurrent,
    m.max_concurrent_override, m.created_at"""

_LIST_MEMBERS_SQL = f"""
select {_MEMBER_COLUMNS}
from queue_members m join users u on u.tenant_id = m.tenant_id and u.id = m.user_id
where m.queue_id = $1
order by u.name, u.id
limit $2 offset $3
"""
_COUNT_MEMBERS_SQL = "select count(*) from queue_members where queue_id = $1"


async def list_members(conn: Connection, *, queue_id: UUID, limit: int, offset: int) -> tuple[list[QueueMember], int]:
    # An unknown queue is a 404, not an empty list that would look like a queue without members.
    await get_queue(conn, queue_id=queue_id, sight=WHOLE_TENANT)
    rows = await conn.fetch(_LIST_MEMBERS_SQL, queue_id, limit, offset)
    total = await conn.fetchval(_COUNT_MEMBERS_SQL, queue_id)
    return [QueueMember.model_validate(dict(r)) for r in rows], int(total)


_ADD_MEMBER_SQL = """
insert into queue_members (tenant_id, queue_id, user_id) values ($1, $2, $3)
on conflict do nothing
"""


async def add_member(conn: Connection, *, tenant_id: UUID, queue_id: UUID, user_id: UUID) -> None:
    try:
        await conn.execute(_ADD_MEMBER_SQL, tenant_id, queue_id, user_id)
    except asyncpg.ForeignKeyViolationError:
        raise NotFound("no such queue or user in this tenant") from None


_SET_MEMBER_SQL = f"""
with m as (
    insert into queue_members (tenant_id, queue_id, user_id, max_concurrent_override) values ($1, $2, $3, $4)
    on conflict (tenant_id, queue_id, user_id) do update set max_concurrent_override = excluded.max_concurrent_override
    returning queue_id, user_id, tenant_id, max_concurrent_override, created_at
)
select {_MEMBER_COLUMNS} from m join users u on u.tenant_id = m.tenant_id and u.id = m.user_id
"""


async def set_member(
    conn: Connection, *, tenant_id: UUID, queue_id: UUID, user_id: UUID, data: MembershipChange
) -> QueueMember:
    """Make the user a member (or change their override). The composite foreign keys refuse a queue or
    user of another tenant, which RLS would not: that refusal is a 404 like any unknown id."""
    try:
        row = await conn.fetchrow(_SET_MEMBER_SQL, tenant_id, queue_id, user_id, data.max_concurrent_override)
    except asyncpg.ForeignKeyViolationError:
        raise NotFound("no such queue or user in this tenant") from None
    return QueueMember.model_validate(dict(row or {}))


_REMOVE_MEMBER_SQL = f"""
with m as (
    delete from queue_members where queue_id = $1 and user_id = $2
    returning queue_id, user_id, tenant_id, max_concurrent_override, created_at
)
select {_MEMBER_COLUMNS} from m join users u on u.tenant_id = m.tenant_id and u.id = m.user_id
"""


async def remove_member(conn: Connection, *, queue_id: UUID, user_id: UUID) -> QueueMember:
    """End a membership; conversations the user already holds in the queue stay with them."""
    row = await conn.fetchrow(_REMOVE_MEMBER_SQL, queue_id, user_id)
    if row is None:
        raise NotFound("that user is not a member of that queue")
    return QueueMember.model_validate(dict(row))


_MEMBER_QUEUE_IDS_SQL = "select queue_id from queue_members where user_id = $1"


async def member_queue_ids(conn: Connection, *, user_id: UUID) -> frozenset[UUID]:
    """The queues a user is a member of (whose waiting conversations they see)."""
    return frozenset(r["queue_id"] for r in await conn.fetch(_MEMBER_QUEUE_IDS_SQL, user_id))


_MEMBERSHIPS_SQL = "select user_id, queue_id from queue_members where user_id = any($1::uuid[])"


async def member_queue_ids_of(conn: Connection, *, user_ids: list[UUID]) -> dict[UUID, frozenset[UUID]]:
    """The queues each of these users is a member of (users of no queue are left out)."""
    found: dict[UUID, set[UUID]] = {}
    for row in await conn.fetch(_MEMBERSHIPS_SQL, user_ids):
        found.setdefault(row["user_id"], set()).add(row["queue_id"])
    return {user_id: frozenset(queue_ids) for user_id, queue_ids in found.items()}


def announce_changed(batch: EventBatch, queue: Queue) -> None:
    """`queue.updated` to the queue's members and the supervisors: its hours, priority or state changed
    (and the assignment loop looks again at once)."""
    batch.add(
        "queue.updated",
        Audience.queue(queue.id),
        conversation_id=None,
        payload={"queue": queue.model_dump(mode="json")},
    )


def announce_membership(batch: EventBatch, *, queue_id: UUID, user_id: UUID, member: QueueMember | None) -> None:
    """`queue.members_changed`: someone joined or left the queue, or their capacity in it changed (None:
    they left); to its members, the person concerned and the supervisors."""
    batch.add(
        "queue.members_changed",
        Audience.members(queue_ids=[queue_id], user_ids=[user_id]),
        conversation_id=None,
        payload={
            "queue_id": str(queue_id),
            "user_id": str(user_id),
            "member": member.model_dump(mode="json") if member is not None else None,
        },
    )
