"""Opening the server's pool safely: the role must be held by row-level security and the schema current.

`serve` and the admin commands both go through `open_server_database`, so neither ever works as a role
that bypasses RLS or against a schema this code does not expect.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from fiv_console.db import migrations, roles
from fiv_console.db.pool import Database, create_database
from fiv_console.db.urls import app_url
from fiv_console.settings import Settings

log = logging.getLogger(__name__)

_POOL_CLOSE_SECONDS = 10.0


class StartupError(Exception):
    """The server must not start as configured; the message says why and what to do."""


async def _check(db: Database) -> None:
    async with db.connection() as conn:
        try:
            await roles.check_server_role(conn)
        except roles.RoleError as exc:
            raise StartupError(str(exc)) from None
        applied, expected = await migrations.schema_versions(conn)
    if applied > expected:
        raise StartupError(
            f"the database schema is at migration {applied:04d}, newer than this code ({expected:04d}): "
            "run a newer version of fiv-console"
        )
    if applied < expected:
        raise StartupError(
            f"the database schema is at migration {applied:04d} and this code needs {expected:04d}: "
            "run `fiv-console migrate`"
        )


async def open_server_database(settings: Settings, *, min_size: int, max_size: int) -> Database:
    try:
        db = await create_database(
            app_url(settings),
            min_size=min_size,
            max_size=max_size,
            acquire_timeout=settings.db_acquire_timeout,
            command_timeout=settings.db_command_timeout,
        )
    except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError) as exc:
        # fiv_app is created, and its password set, by `migrate`: a cluster it never ran on has no such role.
        raise StartupError(
            f"the server's database role cannot log in ({exc}): run `fiv-console migrate` first"
        ) from None
    try:
        await _check(db)
    except BaseException:
        await close_server_database(db)
        raise
    return db


async def close_server_database(db: Database) -> None:
    try:
        await asyncio.wait_for(db.pool.close(), _POOL_CLOSE_SECONDS)
    except TimeoutError:
        log.warning("database pool did not close in time; terminating its connections")
        db.pool.terminate()
