"""The server's database role: created and granted by `migrate`, checked by `serve` before it starts.

Role names are cluster-wide, so several databases (tests, several deployments) share `fiv_app`; its
privileges are per database, granted by the migrations.
"""

from __future__ import annotations

import asyncio
import re

import asyncpg

from fiv_console.db.pool import Connection
from fiv_console.db.urls import APP_ROLE

_SAFE_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")

_ROLE_EXISTS_SQL = "select exists (select 1 from pg_roles where rolname = $1)"


class RoleError(Exception):
    """The server role cannot be set up or is unsafe to connect as; the message says what to do."""


def _ident(name: str) -> str:
    if not _SAFE_ROLE.match(name):
        raise RoleError(f"role name {name!r} must be letters, digits and underscores")
    return f'"{name}"'


async def _run_role_ddl(conn: Connection, statement: str) -> None:
    """Run role DDL outside a transaction, tolerating another database of the cluster doing the same.

    Two databases of one cluster migrating at the same instant race on the shared role's catalog row:
    one sees the role already created, or PostgreSQL's "tuple concurrently updated".
    """
    for attempt in range(3):
        try:
            await conn.execute(statement)
            return
        except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            return
        except asyncpg.InternalServerError as exc:
            if "concurrently" not in str(exc) or attempt == 2:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))


async def ensure_group_role(conn: Connection) -> None:
    """`fiv_app` must exist before the migrations grant to it; created without login until configured."""
    if not await conn.fetchval(_ROLE_EXISTS_SQL, APP_ROLE):
        await _run_role_ddl(conn, f"create role {_ident(APP_ROLE)} nologin")


async def configure_login_role(conn: Connection, *, role: str, password: str | None) -> None:
    """Make `role` the server's login: `fiv_app` itself (with `password`) or a member of it."""
    restricted = "nosuperuser nobypassrls nocreatedb nocreaterole noreplication"
    if role == APP_ROLE:
        if password is None or not _HEX.match(password):
            raise RoleError("the fiv_app password must be the derived hex digest")
        # ALTER ROLE takes no bind parameters; the password is a hex digest checked just above.
        await _run_role_ddl(conn, f"alter role {_ident(role)} with login {restricted} password '{password}'")
        return
    if not await conn.fetchval(_ROLE_EXISTS_SQL, role):
        raise RoleError(
            f"role {role!r} from DATABASE_APP_URL does not exist: create it first "
            f"(create role {role} login password '...' {restricted})"
        )
    # An administrator may have set the membership up already (an owner without CREATEROLE cannot).
    if not await conn.fetchval("select pg_has_role($1, $2, 'MEMBER')", role, APP_ROLE):
        await _run_role_ddl(conn, f"grant {_ident(APP_ROLE)} to {_ident(role)}")


_ROLE_SAFETY_SQL = """
select r.rolsuper,
       r.rolbypassrls,
       exists (
           select 1 from pg_class c
           where c.relnamespace = 'public'::regnamespace and pg_has_role(current_user, c.relowner, 'USAGE')
       ) as owns_tables
from pg_roles r
where r.rolname = current_user
"""


async def check_server_role(conn: Connection) -> None:
    """Refuse to serve as a role that row-level security would not hold (superuser, BYPASSRLS, owner)."""
    row = await conn.fetchrow(_ROLE_SAFETY_SQL)
    assert row is not None
    reasons = [
        reason
        for reason, flag in (
            ("is a superuser", row["rolsuper"]),
            ("has BYPASSRLS", row["rolbypassrls"]),
            ("owns (or inherits the owner of) the tables", row["owns_tables"]),
        )
        if flag
    ]
    if reasons:
        user = await conn.fetchval("select current_user")
        raise RoleError(
            f"the server's database role {user!r} {' and '.join(reasons)}, so row-level security would "
            "not hold: point DATABASE_APP_URL at a restricted role, or unset it to use fiv_app"
        )
