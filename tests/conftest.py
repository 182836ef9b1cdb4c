"""Test fixtures on a real PostgreSQL: `DATABASE_URL` when set, else the embedded server.

One fresh database per test session, migrated, then dropped; tests that need an empty or disposable
database get one of their own from `fresh_database`. Tests never mock our database: each test makes its
own tenants, and row-level security keeps them apart.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner

from fiv_console.accounts.tenants import TenantCreate, create_tenant
from fiv_console.app import create_app
from fiv_console.db.embedded import embedded_postgres
from fiv_console.db.migrations import migrate
from fiv_console.db.pool import Database, create_database
from fiv_console.db.urls import APP_ROLE, derived_app_password, with_database, with_role
from fiv_console.keys import database_key
from fiv_console.settings import Settings
from fiv_console.web import connection_limits
from tests.api import Browsers, TenantPeople, make_tenant
from tests.redis_server import own_redis_server

# Signs the webhooks tests post, as Meta's app secret would.
WEBHOOK_SECRET = "test-whatsapp-app-secret"


@dataclass(frozen=True)
class TestDatabase:
    """A migrated database: the owner's URL (migrations, catalog checks) and the server role's URL."""

    __test__ = False
    name: str
    owner_url: str

    @property
    def app_url(self) -> str:
        return with_role(self.owner_url, APP_ROLE, derived_app_password(self.owner_url))

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": self.owner_url,
            "database_app_url": None,
            "redis_url": None,
            "db_pool_min_size": 1,
            "db_pool_max_size": 4,
            "secret_key": "test-secret-key-0123456789abcdef",
            "whatsapp_app_secret": WEBHOOK_SECRET,
            # Nothing listens there: a test that sends without the simulator fails fast, never reaching Meta.
            "whatsapp_graph_url": "http://127.0.0.1:9/v23.0",
            "whatsapp_send_timeout": 2.0,
            # Numbers connected through the API are confirmed with WhatsApp only where a test runs the
            # simulator and says so (tests/test_channel_verification.py).
            "whatsapp_verify_numbers": False,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's superuser URL (its `postgres` database)."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    with embedded_postgres(tmp_path_factory.mktemp("embedded")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`REDIS_URL` when set, else a redis-server of the session's own."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    with own_redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


async def _on_server(server_url: str, statement: str) -> None:
    """CREATE/DROP DATABASE, which cannot run inside a transaction or against the database itself."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def migrate_database(owner_url: str) -> None:
    await migrate(owner_url, app_role=APP_ROLE, app_password=derived_app_password(owner_url))


async def _add_neighbours(owner_url: str) -> None:
    """Two tenants no test uses: with them the session's database is a deployment of several tenants from
    the start, as the tests assume (sign-in needs the workspace), whichever test runs first."""
    conn = await asyncpg.connect(owner_url)
    try:
        for _ in range(2):
            neighbour = uuid.uuid4()
            async with conn.transaction():
                await conn.execute("select set_config('app.current_tenant', $1, true)", str(neighbour))
                await conn.execute(
                    "insert into tenants (id, name, slug) values ($1, 'Neighbour', $2)", neighbour, f"n-{neighbour.hex}"
                )
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database(postgres_url: str) -> Iterator[TestDatabase]:
    """The session's migrated database."""
    name = f"fiv_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_on_server(postgres_url, f'create database "{name}"'))
    test_db = TestDatabase(name=name, owner_url=with_database(postgres_url, name))
    try:
        asyncio.run(migrate_database(test_db.owner_url))
        asyncio.run(_add_neighbours(test_db.owner_url))
        yield test_db
    finally:
        asyncio.run(_on_server(postgres_url, f'drop database if exists "{name}" with (force)'))


@pytest.fixture
def fresh_database(postgres_url: str) -> Iterator[TestDatabase]:
    """An empty database of the test's own (not migrated), dropped afterwards."""
    name = f"fiv_fresh_{uuid.uuid4().hex[:12]}"
    asyncio.run(_on_server(postgres_url, f'create database "{name}"'))
    try:
        yield TestDatabase(name=name, owner_url=with_database(postgres_url, name))
    finally:
        asyncio.run(_on_server(postgres_url, f'drop database if exists "{name}" with (force)'))


@pytest.fixture
async def db(database: TestDatabase) -> AsyncIterator[Database]:
    """A small pool connected as the server role, as the server connects."""
    pool = await create_database(database.app_url, min_size=1, max_size=4, acquire_timeout=5, command_timeout=30)
    try:
        yield pool
    finally:
        await pool.pool.close()


@pytest.fixture
async def owner(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the schema owner (a superuser here): for catalog checks, never for app queries."""
    conn = await asyncpg.connect(database.owner_url)
    try:
        yield conn
    finally:
        await conn.close()


async def new_tenant(db: Database, name: str = "Tenant") -> uuid.UUID:
    return (await create_tenant(db, TenantCreate(name=f"{name} {uuid.uuid4().hex[:6]}"))).id


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


class ServeLikeTestServer(TestServer):
    """aiohttp's test server running the application as `fiv-console serve` does (its header deadline)."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return connection_limits.AppRunner(self.app, **kwargs)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[TestServer]:
    """The whole application with these settings on a real port, as browsers and integrations reach it."""
    server = ServeLikeTestServer(create_app(settings))
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@asynccontextmanager
async def people_of(server: TestServer) -> AsyncIterator[Browsers]:
    opened = Browsers(server)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def api_server(database: TestDatabase) -> AsyncIterator[TestServer]:
    async with serving(database.settings()) as server:
        yield server


@pytest.fixture
async def browsers(api_server: TestServer) -> AsyncIterator[Browsers]:
    async with people_of(api_server) as opened:
        yield opened


@pytest.fixture
async def tenant(db: Database) -> TenantPeople:
    return await make_tenant(db, "A")


@pytest.fixture
async def other_tenant(db: Database) -> TenantPeople:
    return await make_tenant(db, "B")


@pytest.fixture
async def single_tenant(fresh_database: TestDatabase) -> AsyncIterator[tuple[TestServer, TenantPeople]]:
    """A deployment with one tenant (a database of its own): sign-in needs no workspace there."""
    await migrate_database(fresh_database.owner_url)
    async with serving(fresh_database.settings()) as server:
        yield server, await make_tenant(server.app[database_key], "Solo")


@pytest.fixture
async def live_server(database: TestDatabase) -> AsyncIterator[TestServer]:
    """The application for realtime tests: a short presence grace (upkeep ticks every half second) and a small
    outbox per socket, so lapses and slow clients show within a test's patience."""
    async with serving(database.settings(presence_grace_seconds=1.5, ws_send_queue=20)) as server:
        yield server


@pytest.fixture
async def live_people(live_server: TestServer) -> AsyncIterator[Browsers]:
    async with people_of(live_server) as opened:
        yield opened
