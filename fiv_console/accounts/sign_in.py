"""Signing in: checking a password, and whether a session or token still stands for a live user.

Sessions carry the user's `session_version`; bumping it (logout, password change, disable, role change)
ends every session of that user at once, on every instance, with no session store to sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from fiv_console.accounts.passwords import verify_password_async
from fiv_console.accounts.users import Role, find_login
from fiv_console.db.pool import Connection, Database, tenant_tx
from fiv_console.errors import Conflict, InvalidInput


@dataclass(frozen=True, slots=True)
class SignedIn:
    tenant_id: UUID
    user_id: UUID
    session_version: int


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """What a sign-in found: the account the workspace and email name (if any), and whether it got in."""

    account: tuple[UUID, UUID] | None
    signed_in: SignedIn | None


_AUTH_ROW_SQL = "select password_hash, disabled, session_version from users where id = $1"


async def check_password(db: Database, *, workspace: str, email: str, password: str) -> PasswordCheck:
    """Signed in if the workspace and the email name an enabled account and the password matches.

    Every path verifies one Argon2 hash, so the time says nothing about which part was wrong.
    """
    async with db.connection() as conn:
        login = await find_login(conn, workspace=workspace, email=email)
    row = None
    if login is not None:
        async with tenant_tx(db, login[0]) as conn:
            row = await conn.fetchrow(_AUTH_ROW_SQL, login[1])
    matches = await verify_password_async(row["password_hash"] if row else None, password)
    if login is None or row is None or not matches or row["disabled"]:
        return PasswordCheck(account=login, signed_in=None)
    signed_in = SignedIn(tenant_id=login[0], user_id=login[1], session_version=row["session_version"])
    return PasswordCheck(account=login, signed_in=signed_in)


@dataclass(frozen=True, slots=True)
class LiveUser:
    role: Role
    session_version: int
    disabled: bool


_LIVE_USER_SQL = "select role, session_version, disabled from users where id = $1"
# The same, read with the tenant set by `pool.tenant_tx_reading` (`t.tenant_id`), the user's id in $2.
LIVE_USER_WITH_TENANT_SQL = (
    "select role, session_version, disabled from users where tenant_id = t.tenant_id and id = $2"
)


def live_user_of(row: asyncpg.Record | None) -> LiveUser | None:
    return LiveUser(role=row["role"], session_version=row["session_version"], disabled=row["disabled"]) if row else None


async def live_user(conn: Connection, *, user_id: UUID) -> LiveUser | None:
    return live_user_of(await conn.fetchrow(_LIVE_USER_SQL, user_id))


_END_SESSIONS_SQL = "update users set session_version = session_version + 1, updated_at = now() where id = $1"


async def end_all_sessions(conn: Connection, *, user_id: UUID) -> None:
    await conn.execute(_END_SESSIONS_SQL, user_id)


_PASSWORD_HASH_SQL = "select password_hash from users where id = $1"
_REPLACE_PASSWORD_SQL = """
update users set password_hash = $3, session_version = session_version + 1, updated_at = now()
where id = $1 and password_hash = $2
returning session_version
"""


async def password_hash(conn: Connection, *, user_id: UUID) -> str | None:
    hashed: str | None = await conn.fetchval(_PASSWORD_HASH_SQL, user_id)
    return hashed


async def check_current_password(current_hash: str | None, password: str) -> None:
    """Outside any transaction (Argon2 is slow): InvalidInput unless `password` matches."""
    if not await verify_password_async(current_hash, password):
        raise InvalidInput(
            "the current password is wrong",
            details=[{"field": "body.current_password", "message": "does not match"}],
        )


async def replace_password(conn: Connection, *, user_id: UUID, checked_hash: str, new_hash: str) -> int:
    """Store `new_hash` if the password is still the one just checked; ends every session. Returns the new
    session version. A password changed in between (another tab, an admin) is a conflict, not overwritten."""
    version: int | None = await conn.fetchval(_REPLACE_PASSWORD_SQL, user_id, checked_hash, new_hash)
    if version is None:
        raise Conflict("the password was changed meanwhile: sign in again")
    return version
