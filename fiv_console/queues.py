"""Queues where conversations wait, and their members (the agents who serve them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fiv_console.db.pool import Connection
from fiv_console.errors import Conflict, NotFound


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher is served first.")
    sla_seconds: int = Field(default=300, ge=1, le=604_800, description="Target wait before breach.")


class Queue(BaseModel):
    id: UUID
    tenant_id: UUID
    name: str
    priority: int
    sla_seconds: int
    active: bool
    created_at: datetime


_QUEUE_COLUMNS = "id, tenant_id, name, priority, sla_seconds, active, created_at"

_INSERT_QUEUE_SQL = f"""
insert into queues (tenant_id, name, priority, sla_seconds)
values ($1, $2, $3, $4)
returning {_QUEUE_COLUMNS}
"""


async def create_queue(conn: Connection, *, tenant_id: UUID, data: QueueCreate) -> Queue:
    try:
        row = await conn.fetchrow(_INSERT_QUEUE_SQL, tenant_id, data.name, data.priority, data.sla_seconds)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a queue named {data.name!r} already exists") from None
    return Queue.model_validate(dict(row or {}))


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


_ADD_MEMBER_SQL = """
insert into queue_members (tenant_id, queue_id, user_id) values ($1, $2, $3)
on conflict do nothing
"""


async def add_member(conn: Connection, *, tenant_id: UUID, queue_id: UUID, user_id: UUID) -> None:
    try:
        await conn.execute(_ADD_MEMBER_SQL, tenant_id, queue_id, user_id)
    except asyncpg.ForeignKeyViolationError:
        raise NotFound("no such queue or user in this tenant") from None
