"""Tenant API tokens for integrations: named, with a role, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, StringConstraints

from fiv_console.db.pool import Connection
from fiv_console.errors import NotFound
from fiv_console.text import NO_NUL
from fiv_console.users import Role

# A recognisable prefix lets secret scanners and people spot a leaked token.
TOKEN_PREFIX = "fivt_"


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NO_NUL)]
    role: Role


class Token(BaseModel):
    id: UUID
    name: str
    role: Role
    created_by: UUID | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class CreatedToken(Token):
    """Returned once, at creation: the only time the secret is shown."""

    secret: str


def token_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


_TOKEN_COLUMNS = "id, name, role, created_by, created_at, last_used_at, revoked_at"
_INSERT_SQL = f"""
insert into api_tokens (tenant_id, name, role, token_hash, created_by) values ($1, $2, $3, $4, $5)
returning {_TOKEN_COLUMNS}
"""


async def create_token(
    conn: Connection, *, tenant_id: UUID, data: TokenCreate, created_by: UUID | None
) -> CreatedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(_INSERT_SQL, tenant_id, data.name, data.role, token_hash(secret), created_by)
    assert row is not None
    return CreatedToken(**dict(row), secret=secret)


_LIST_SQL = f"select {_TOKEN_COLUMNS} from api_tokens order by created_at desc limit $1 offset $2"
_COUNT_SQL = "select count(*) from api_tokens"


async def list_tokens(conn: Connection, *, limit: int, offset: int) -> tuple[list[Token], int]:
    rows = await conn.fetch(_LIST_SQL, limit, offset)
    return [Token.model_validate(dict(r)) for r in rows], int(await conn.fetchval(_COUNT_SQL))


_REVOKE_SQL = f"""
update api_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1 returning {_TOKEN_COLUMNS}
"""


async def revoke_token(conn: Connection, *, token_id: UUID) -> Token:
    row = await conn.fetchrow(_REVOKE_SQL, token_id)
    if row is None:
        raise NotFound("no such token")
    return Token.model_validate(dict(row))


_LOOKUP_SQL = "select tenant_id, token_id from api_token_for_hash($1)"


async def find_token(conn: Connection, *, secret: str) -> tuple[UUID, UUID] | None:
    """(tenant id, token id) of a live token, before the tenant is known (the reviewed lookup)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = await conn.fetchrow(_LOOKUP_SQL, token_hash(secret))
    return (row["tenant_id"], row["token_id"]) if row else None


_TOKEN_ROLE_SQL = """
update api_tokens set last_used_at = now()
where id = $1 and revoked_at is null and (last_used_at is null or last_used_at < now() - interval '1 minute')
returning role
"""
_TOKEN_ROLE_READ_SQL = "select role from api_tokens where id = $1 and revoked_at is null"


async def token_role(conn: Connection, *, token_id: UUID) -> Role | None:
    """The live token's role; records its use at most once a minute (a write per call would be waste)."""
    role: Role | None = await conn.fetchval(_TOKEN_ROLE_SQL, token_id)
    if role is None:
        role = await conn.fetchval(_TOKEN_ROLE_READ_SQL, token_id)
    return role
