"""Canned responses: a tenant's ready answers, inserted in the composer by typing `/shortcut`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fiv_console.db.pool import Connection
from fiv_console.db.search import contains_pattern
from fiv_console.errors import Conflict, NotFound
from fiv_console.text import NO_NUL

Shortcut = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$"),
    Field(description="Typed after a slash: lowercase letters, digits, `_` and `-`; unique in the tenant."),
]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NO_NUL)]
# Not stripped: leading and trailing blank lines of an answer are the author's choice.
Body = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=NO_NUL)]


class CannedResponseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shortcut: Shortcut
    title: Title
    body: Body


class CannedResponseUpdate(BaseModel):
    """A field left out (or null) stays as it is."""

    model_config = ConfigDict(extra="forbid")

    shortcut: Shortcut | None = None
    title: Title | None = None
    body: Body | None = None


class CannedResponse(BaseModel):
    id: UUID
    shortcut: str
    title: str
    body: str
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = "id, shortcut, title, body, created_by, created_at, updated_at"


def _conflict(shortcut: str | None) -> Conflict:
    return Conflict(f"the shortcut /{shortcut} is already taken")


_INSERT_SQL = f"""
insert into canned_responses (tenant_id, shortcut, title, body, created_by) values ($1, $2, $3, $4, $5)
returning {_COLUMNS}
"""


async def create_canned_response(
    conn: Connection, *, tenant_id: UUID, data: CannedResponseCreate, created_by: UUID | None
) -> CannedResponse:
    try:
        row = await conn.fetchrow(_INSERT_SQL, tenant_id, data.shortcut, data.title, data.body, created_by)
    except asyncpg.UniqueViolationError:
        raise _conflict(data.shortcut) from None
    return CannedResponse.model_validate(dict(row or {}))


_FILTER = "where ($1::text is null or shortcut ilike $1 or title ilike $1)"
_LIST_SQL = f"select {_COLUMNS} from canned_responses {_FILTER} order by shortcut limit $2 offset $3"
_COUNT_SQL = f"select count(*) from canned_responses {_FILTER}"


async def list_canned_responses(
    conn: Connection, *, search: str | None, limit: int, offset: int
) -> tuple[list[CannedResponse], int]:
    """By shortcut; `search` matches part of the shortcut or the title (what the composer's picker shows)."""
    pattern = contains_pattern(search)
    rows = await conn.fetch(_LIST_SQL, pattern, limit, offset)
    total = await conn.fetchval(_COUNT_SQL, pattern)
    return [CannedResponse.model_validate(dict(r)) for r in rows], int(total)


_GET_SQL = f"select {_COLUMNS} from canned_responses where id = $1"


async def get_canned_response(conn: Connection, *, canned_response_id: UUID) -> CannedResponse:
    row = await conn.fetchrow(_GET_SQL, canned_response_id)
    if row is None:
        raise NotFound("no such canned response")
    return CannedResponse.model_validate(dict(row))


_UPDATE_SQL = f"""
update canned_responses set
    shortcut = coalesce($2, shortcut),
    title = coalesce($3, title),
    body = coalesce($4, body),
    updated_at = now()
where id = $1
returning {_COLUMNS}
"""


async def update_canned_response(
    conn: Connection, *, canned_response_id: UUID, data: CannedResponseUpdate
) -> CannedResponse:
    try:
        row = await conn.fetchrow(_UPDATE_SQL, canned_response_id, data.shortcut, data.title, data.body)
    except asyncpg.UniqueViolationError:
        raise _conflict(data.shortcut) from None
    if row is None:
        raise NotFound("no such canned response")
    return CannedResponse.model_validate(dict(row))


_DELETE_SQL = f"delete from canned_responses where id = $1 returning {_COLUMNS}"


async def delete_canned_response(conn: Connection, *, canned_response_id: UUID) -> CannedResponse:
    row = await conn.fetchrow(_DELETE_SQL, canned_response_id)
    if row is None:
        raise NotFound("no such canned response")
    return CannedResponse.model_validate(dict(row))
