"""Tenant API tokens for integrations: named, with a role and an optional expiry, shown once, stored as a
SHA-256 hash.

Tokens belong to the tenant, not to a person, so an integration survives its creator leaving. What keeps
them accountable is what the listing shows: who made each one (a person, or the token it was made with),
whether that person is still an enabled admin, when it expires and when it was last used.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from fiv_console.accounts.users import Role
from fiv_console.db.pool import DATABASE_TROUBLE, Connection, Database, tenant_tx
from fiv_console.errors import NotFound
from fiv_console.text import NO_NUL

log = logging.getLogger(__name__)

# A recognisable prefix lets secret scanners and people spot a leaked token.
TOKEN_PREFIX = "fivt_"
# At least a minute ahead, so the database (whose clock may trail ours a little) agrees it is in the future;
# at most a year ahead, so a mistyped year does not make a token immortal (leave it out for that).
MIN_LIFETIME = timedelta(minutes=1)
MAX_LIFETIME = timedelta(days=366)
# A token's use is written down at most this often: a write on every call would be waste.
USE_RECORD_INTERVAL = timedelta(minutes=1)


def _check_expiry(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    now = datetime.now(UTC)
    if value < now + MIN_LIFETIME:
        raise ValueError("must be at least a minute in the future")
    if value > now + MAX_LIFETIME:
        raise ValueError("must be at most 366 days ahead (leave it out for a token that does not expire)")
    return value


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NO_NUL)]
    role: Role
    expires_at: Annotated[AwareDatetime | None, AfterValidator(_check_expiry)] = Field(
        default=None,
        description="When it stops working (RFC 3339 with a UTC offset, a minute to 366 days ahead); "
        "left out, it works until revoked.",
    )


class TokenCreator(BaseModel):
    """The person who created a token, as they are now."""

    id: UUID
    name: str
    email: str
    role: Role
    disabled: bool


class TokenReference(BaseModel):
    id: UUID
    name: str


class Token(BaseModel):
    id: UUID
    name: str
    role: Role
    created_at: datetime
    creator: TokenCreator | None = Field(description="The person who created it; null if a token created it.")
    created_by_token: TokenReference | None = Field(description="The token it was created with, if any.")
    creator_active_admin: bool = Field(
        description="Whether the person who created it is still an enabled admin: false once they are demoted "
        "or disabled, and for a token created with a token. The token keeps working either way."
    )
    expires_at: datetime | None = Field(description="When it stops working; null: until revoked.")
    last_used_at: datetime | None = Field(
        description="When it last authenticated a call, to the minute (recorded at most once a minute)."
    )
    revoked_at: datetime | None


class CreatedToken(Token):
    """Returned once, at creation: the only time the secret is shown."""

    secret: str


def token_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _view(source: str) -> str:
    """The tokens of `source` (the table, or a statement's returned rows) with their creators."""
    return f"""
select t.id, t.name, t.role, t.created_at, t.expires_at, t.last_used_at, t.revoked_at,
       u.id as creator_id, u.name as creator_name, u.email as creator_email, u.role as creator_role,
       u.disabled as creator_disabled, m.id as maker_id, m.name as maker_name
from {source} t
left join users u on u.id = t.created_by
left join api_tokens m on m.id = t.created_by_token_id
"""


def _token(row: Any) -> dict[str, Any]:
    creator = (
        TokenCreator(
            id=row["creator_id"],
            name=row["creator_name"],
            email=row["creator_email"],
            role=row["creator_role"],
            disabled=row["creator_disabled"],
        )
        if row["creator_id"] is not None
        else None
    )
    return {
        "id": row["id"],
        "name": row["name"],
        "role": row["role"],
        "created_at": row["created_at"],
        "creator": creator,
        "created_by_token": (
            TokenReference(id=row["maker_id"], name=row["maker_name"]) if row["maker_id"] is not None else None
        ),
        "creator_active_admin": creator is not None and creator.role == "admin" and not creator.disabled,
        "expires_at": row["expires_at"],
        "last_used_at": row["last_used_at"],
        "revoked_at": row["revoked_at"],
    }


_INSERT_SQL = """
with made as (
    insert into api_tokens (tenant_id, name, role, token_hash, created_by, created_by_token_id, expires_at)
    values ($1, $2, $3, $4, $5, $6, $7)
    returning *
)""" + _view("made")


async def create_token(
    conn: Connection,
    *,
    tenant_id: UUID,
    data: TokenCreate,
    created_by: UUID | None,
    created_by_token: UUID | None = None,
) -> CreatedToken:
    """A new token, made by a person (`created_by`) or with another token (`created_by_token`)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        _INSERT_SQL,
        tenant_id,
        data.name,
        data.role,
        token_hash(secret),
        created_by,
        created_by_token,
        data.expires_at,
    )
    assert row is not None
    return CreatedToken(**_token(row), secret=secret)


_LIST_SQL = _view("api_tokens") + "order by t.created_at desc, t.id limit $1 offset $2"
_COUNT_SQL = "select count(*) from api_tokens"


async def list_tokens(conn: Connection, *, limit: int, offset: int) -> tuple[list[Token], int]:
    rows = await conn.fetch(_LIST_SQL, limit, offset)
    return [Token(**_token(r)) for r in rows], int(await conn.fetchval(_COUNT_SQL))


_REVOKE_SQL = """
with revoked as (
    update api_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1 returning *
)""" + _view("revoked")


async def revoke_token(conn: Connection, *, token_id: UUID) -> Token:
    row = await conn.fetchrow(_REVOKE_SQL, token_id)
    if row is None:
        raise NotFound("no such token")
    return Token(**_token(row))


_LOOKUP_SQL = "select tenant_id, token_id from api_token_for_hash($1)"


async def find_token(conn: Connection, *, secret: str) -> tuple[UUID, UUID] | None:
    """(tenant id, token id) of a live token (neither revoked nor expired), before the tenant is known (the
    reviewed lookup)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = await conn.fetchrow(_LOOKUP_SQL, token_hash(secret))
    return (row["tenant_id"], row["token_id"]) if row else None


# SKIP LOCKED: another call recording the same token's use (or a revoke) never makes this one wait.
_RECORD_USE_SQL = """
update api_tokens set last_used_at = now()
where id = (
    select id from api_tokens
    where id = $1 and (last_used_at is null or last_used_at < now() - $2::interval)
    for no key update skip locked
)
"""


async def record_use(db: Database, *, tenant_id: UUID, token_id: UUID) -> None:
    """Writes down that the token authenticated a call, at most once a minute.

    In a transaction of its own, so the use is kept whatever the call's outcome (a refused call is a use
    too), and no lock outlives this statement. It never fails the call: a use that cannot be recorded is
    logged and the call goes on.
    """
    try:
        async with tenant_tx(db, tenant_id) as conn:
            await conn.execute(_RECORD_USE_SQL, token_id, USE_RECORD_INTERVAL)
    except DATABASE_TROUBLE as exc:
        log.warning(
            "the API token's use could not be recorded: %s", type(exc).__name__, extra={"token_id": str(token_id)}
        )


async def authenticate(db: Database, *, secret: str) -> tuple[UUID, UUID] | None:
    """(tenant id, token id) of the live token with this secret, its use recorded; None if there is none."""
    async with db.connection() as conn:
        found = await find_token(conn, secret=secret)
    if found is not None:
        await record_use(db, tenant_id=found[0], token_id=found[1])
    return found


_TOKEN_ROLE_SQL = """
select role from api_tokens where id = $1 and revoked_at is null and (expires_at is null or expires_at > now())
"""


async def token_role(conn: Connection, *, token_id: UUID) -> Role | None:
    """The role of the token if it is still live (neither revoked nor expired), in the call's transaction."""
    role: Role | None = await conn.fetchval(_TOKEN_ROLE_SQL, token_id)
    return role
