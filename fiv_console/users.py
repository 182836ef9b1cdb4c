"""People who sign in: admins, supervisors and agents of one tenant, with their capacity."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from fiv_console.db.pool import Connection
from fiv_console.errors import Conflict

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


Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_normalize_email)]
Password = Annotated[SecretStr, AfterValidator(_check_password)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Name
    role: Role
    password: Password
    max_concurrent: int = Field(default=3, ge=1, le=100)


class User(BaseModel):
    """A user as the rest of the code sees it: never with the password hash."""

    id: UUID
    tenant_id: UUID
    email: str
    name: str
    role: Role
    max_concurrent: int
    disabled: bool
    created_at: datetime


_USER_COLUMNS = "id, tenant_id, email, name, role, max_concurrent, disabled, created_at"

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
        raise Conflict(f"a user with email {data.email} already exists") from None
    return User.model_validate(dict(row or {}))


_LOGIN_LOOKUP_SQL = "select tenant_id, user_id from user_for_login($1)"


async def find_login(conn: Connection, *, email: str) -> tuple[UUID, UUID] | None:
    """(tenant id, user id) for an email, before any tenant is known: the reviewed SECURITY DEFINER lookup."""
    row = await conn.fetchrow(_LOGIN_LOOKUP_SQL, email.strip().lower())
    return (row["tenant_id"], row["user_id"]) if row else None
