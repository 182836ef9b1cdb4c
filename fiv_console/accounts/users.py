"""People who sign in: admins, supervisors and agents of one tenant, with their capacity."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from fiv_console.db.pool import Connection
from fiv_console.db.search import contains_pattern
from fiv_console.errors import Conflict, NotFound
from fiv_console.text import NO_NUL

Role = Literal["admin", "supervisor", "agent"]
ROLES: tuple[Role, ...] = ("admin", "supervisor", "agent")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _normalize_email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value):
        raise ValueError("must be an email address")
    return value


def _check_password(value: SecretStr) -> SecretStr:
    length = len(value.get_secret_value())
    if not 8 <= length <= 1024:
        raise ValueError("must be 8 to 1024 characters")
    return value


Email = Annotated[str, StringConstraints(max_length=254, pattern=NO_NUL), AfterValidator(_normalize_email)]
Password = Annotated[SecretStr, AfterValidator(_check_password)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Name
    role: Role
    password: Password
    max_concurrent: int = Field(default=3, ge=1, le=100)


AgentStatus = Literal["online", "away", "offline"]


class User(BaseModel):
    """A user as the rest of the code sees it: never with the password hash."""

    id: UUID
    tenant_id: UUID
    email: str
    name: str
    role: Role
    max_concurrent: int
    disabled: bool
    status: AgentStatus
    connected: bool = Field(description="Has a live console connection (or had one within the grace period).")
    created_at: datetime


class UserUpdate(BaseModel):
    """An admin's change to a user; any of role, password or disabled ends the user's sessions."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    role: Role | None = None
    password: Password | None = None
    max_concurrent: int | None = Field(default=None, ge=1, le=100)
    disabled: bool | None = None


_USER_COLUMNS = "id, tenant_id, email, name, role, max_concurrent, disabled, status, connected, created_at"

_INSERT_USER_SQL = f"""
insert into users (tenant_id, email, name, role, password_hash, max_concurrent)
values ($1, $2, $3, $4, $5, $6)
returning {_USER_COLUMNS}
"""


async def create_user(conn: Connection, *, tenant_id: UUID, data: UserCreate, password_hash: str) -> User:
    """Insert a user; the caller hashed the password outside the transaction (it is slow on purpose)."""
    try:
        row = await conn.fetchrow(
            _INSERT_USER_SQL, tenant_id, data.email, data.name, data.role, password_hash, data.max_concurrent
        )
    except asyncpg.UniqueViolationError:
        # Emails are unique per tenant: this says nothing about other tenants' people.
        raise Conflict(f"a user with email {data.email} already exists in this workspace") from None
    return User.model_validate(dict(row or {}))


_LOGIN_LOOKUP_SQL = "select tenant_id, user_id from user_for_login($1, $2)"


async def find_login(conn: Connection, *, workspace: str, email: str) -> tuple[UUID, UUID] | None:
    """(tenant id, user id) for a workspace and an email, before any tenant is known: the reviewed SECURITY
    DEFINER lookup. None alike for an unknown workspace and an unknown email."""
    row = await conn.fetchrow(_LOGIN_LOOKUP_SQL, workspace.strip().lower(), email.strip().lower())
    return (row["tenant_id"], row["user_id"]) if row else None


_LIST_USERS_SQL = f"""
select {_USER_COLUMNS} from users
where ($1::text is null or role = $1)
  and ($2::boolean is null or disabled = $2)
  and ($3::text is null or name ilike $3 or email ilike $3)
order by name, id
limit $4 offset $5
"""
_COUNT_USERS_SQL = """
select count(*) from users
where ($1::text is null or role = $1)
  and ($2::boolean is null or disabled = $2)
  and ($3::text is null or name ilike $3 or email ilike $3)
"""


async def list_users(
    conn: Connection, *, role: Role | None, disabled: bool | None, search: str | None, limit: int, offset: int
) -> tuple[list[User], int]:
    pattern = contains_pattern(search)
    rows = await conn.fetch(_LIST_USERS_SQL, role, disabled, pattern, limit, offset)
    total = await conn.fetchval(_COUNT_USERS_SQL, role, disabled, pattern)
    return [User.model_validate(dict(r)) for r in rows], int(total)


_GET_USER_SQL = f"select {_USER_COLUMNS} from users where id = $1"


async def get_user(conn: Connection, *, user_id: UUID) -> User:
    row = await conn.fetchrow(_GET_USER_SQL, user_id)
    if row is None:
        raise NotFound("no such user")
    return User.model_validate(dict(row))


_UPDATE_USER_SQL = f"""
update users set
    name = coalesce($2, name),
    role = coalesce($3, role),
    password_hash = coalesce($4, password_hash),
    max_concurrent = coalesce($5, max_concurrent),
    disabled = coalesce($6, disabled),
    session_version = session_version + case when $7 then 1 else 0 end,
    updated_at = now()
where id = $1
returning {_USER_COLUMNS}
"""


async def update_user(
    conn: Connection, *, user_id: UUID, data: UserUpdate, password_hash: str | None, end_sessions: bool
) -> User:
    """Apply an admin's change; `end_sessions` bumps the session version (every session ends)."""
    row = await conn.fetchrow(
        _UPDATE_USER_SQL, user_id, data.name, data.role, password_hash, data.max_concurrent, data.disabled, end_sessions
    )
    if row is None:
        raise NotFound("no such user")
    return User.model_validate(dict(row))
