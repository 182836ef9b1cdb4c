"""The server's connection pool and `tenant_tx`, the one place the tenant is set for row-level security.

The tenant is set per transaction with `set_config(..., true)`, never per pooled connection: a setting
at session scope would outlive the request and leak into whichever task borrows the connection next.
Every acquire has a deadline, so a database outage fails requests fast instead of queueing them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from fiv_console.errors import Unavailable

# asyncpg's classes are generic only in its stubs, hence the quoted aliases.
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
# Domain functions take either a pooled connection or a direct one (migrations, tests).
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

_SET_TENANT_SQL = "select set_config('app.current_tenant', $1, true)"
# The tenant set and a first read in one round trip (`tenant_tx_reading`). The read runs after the tenant is
# set because it is the inner side of a lateral join that needs `t.tenant_id` (`offset 0` keeps each side
# a subquery: t evaluated once, the read rescanned for t's row, never a relation the planner could read
# first); were it ever read first, it would see no tenant's rows, and fail closed.
_SET_TENANT_AND_READ_SQL = """
select q.* from (select set_config('app.current_tenant', $1, true)::uuid as tenant_id offset 0) t
cross join lateral ({query} offset 0) q
"""

# Failures that mean "the database is not reachable right now", as opposed to a bug in a query. While
# acquiring, any error is of that kind (the pool is opening a connection: refused, too many clients,
# database not accepting connections); once connected, only these mean the connection was lost.
_CONNECTION_LOST = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


def _lost(conn: Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


# What a database that is away, restarting or overloaded raises: background work logs it briefly and tries
# again later; anything else is a bug and is logged with its traceback.
DATABASE_TROUBLE: tuple[type[BaseException], ...] = (Unavailable, OSError, TimeoutError, asyncpg.PostgresError)


def json_default(value: object) -> str:
    # asyncpg returns uuid columns as its own UUID class, which orjson does not know.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    for json_type in ("json", "jsonb"):
        await conn.set_type_codec(
            json_type,
            encoder=lambda value: orjson.dumps(value, default=json_default).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


@dataclass(slots=True)
class Acquires:
    """Acquires of a pooled connection under way: requests waiting for one (read by /metrics)."""

    under_way: int = 0


@dataclass(frozen=True, slots=True)
class Database:
    """The pool plus the deadline every acquire is held to."""

    pool: Pool
    acquire_timeout: float
    acquires: Acquires = field(default_factory=lambda: Acquires())

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection with no tenant set: it sees no tenant rows, only the reviewed lookups."""
        self.acquires.under_way += 1
        try:
            conn = await self.pool.acquire(timeout=self.acquire_timeout)
        except (*_CONNECTION_LOST, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise Unavailable("the database is not reachable") from exc
        finally:
            self.acquires.under_way -= 1
        try:
            yield conn
        except _CONNECTION_LOST as exc:
            raise Unavailable("the connection to the database was lost") from exc
        except (asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            # A connection the server ended fails like this on its next use; once asyncpg has noticed, the
            # pooled proxy is detached and even asking whether it is closed raises.
            if _lost(conn):
                raise Unavailable("the connection to the database was lost") from exc
            raise
        finally:
            await self.pool.release(conn)


@asynccontextmanager
async def tenant_tx(db: Database, tenant_id: UUID) -> AsyncIterator[Connection]:
    """A transaction in which row-level security shows and accepts only `tenant_id`'s rows."""
    async with db.connection() as conn, conn.transaction():
        await conn.execute(_SET_TENANT_SQL, str(tenant_id))
        yield conn


@asynccontextmanager
async def tenant_tx_reading(
    db: Database, tenant_id: UUID, query: str, *args: Any
) -> AsyncIterator[tuple[Connection, asyncpg.Record | None]]:
    """`tenant_tx`, whose statement setting the tenant also reads `query`'s first row: one round trip less
    for what every request reads first (whether its caller is still signed in). `query` names the tenant
    set as `t.tenant_id` (`where tenant_id = t.tenant_id and ...`) and takes its parameters from `$2`."""
    async with db.connection() as conn, conn.transaction():
        row = await conn.fetchrow(_SET_TENANT_AND_READ_SQL.format(query=query), str(tenant_id), *args)
        yield conn, row


async def create_database(
    url: str,
    *,
    min_size: int,
    max_size: int,
    acquire_timeout: float,
    command_timeout: float,
) -> Database:
    pool = await asyncpg.create_pool(
        url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        command_timeout=command_timeout,
        timeout=acquire_timeout,
        init=_init_connection,
        server_settings={"application_name": "fiv-console"},
    )
    return Database(pool=pool, acquire_timeout=acquire_timeout)
