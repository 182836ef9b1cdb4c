"""The reviewed SECURITY DEFINER lookups: the only way to cross tenants, returning ids and nothing else
(and /metrics' waiting lines: slugs, queue names and figures).

They must work for the server role with no tenant set (that is their purpose), also where the schema
owner is not a superuser and so is itself held to the FORCEd policies (managed PostgreSQL services), and
reveal nothing beyond the ids.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fiv_console.accounts.tenants import (
    sole_workspace,
    tenants_with_events_before,
    tenants_with_open_conversations,
    tenants_with_presence,
    tenants_with_retention,
)
from fiv_console.accounts.users import find_login
from fiv_console.db.migrations import migrate
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.db.startup import open_server_database
from fiv_console.db.urls import APP_ROLE, role_of, with_database, with_role
from fiv_console.observability.waiting import waiting_lines
from fiv_console.settings import Settings
from tests.conftest import new_tenant
from tests.tenant_rows import seed_every_table


async def test_lookups_find_the_tenant_before_it_is_known(db: Database) -> None:
    tenant = await new_tenant(db)
    secret = b"token-secret-for-the-lookup-test"
    async with tenant_tx(db, tenant) as conn:
        ids = await seed_every_table(conn, tenant)
        email = await conn.fetchval("select email from users where id = $1", ids["users"])
        workspace = await conn.fetchval("select slug from tenants where id = $1", tenant)
        phone = await conn.fetchval("select phone_number_id from channels where id = $1", ids["channels"])
        queue = await conn.fetchval("select name from queues where id = $1", ids["queues"])
        live = await conn.fetchval(
            "insert into api_tokens (tenant_id, name, role, token_hash) values ($1, 'live', 'admin', $2) returning id",
            tenant,
            hashlib.sha256(secret).digest(),
        )
        await conn.execute(
            "insert into api_tokens (tenant_id, name, role, token_hash, revoked_at) "
            "values ($1, 'old', 'admin', $2, now())",
            tenant,
            hashlib.sha256(b"revoked").digest(),
        )
        await conn.execute(
            "insert into api_tokens (tenant_id, name, role, token_hash, created_at, expires_at) "
            "values ($1, 'expired', 'admin', $2, now() - interval '2 days', now() - interval '1 second')",
            tenant,
            hashlib.sha256(b"expired").digest(),
        )

    async with db.connection() as conn:
        assert await find_login(conn, workspace=workspace.upper(), email=email.upper()) == (tenant, ids["users"])
        assert await find_login(conn, workspace=workspace, email="nobody@example.test") is None
        assert await find_login(conn, workspace="no-such-workspace", email=email) is None
        # The test database holds many tenants: none is the deployment's only one.
        assert await sole_workspace(conn) is None

        channel = await conn.fetch("select * from channel_for_phone_number($1)", phone)
        assert [dict(r) for r in channel] == [{"tenant_id": tenant, "channel_id": ids["channels"], "active": True}]
        assert await conn.fetch("select * from channel_for_phone_number('999')") == []

        token = await conn.fetch("select * from api_token_for_hash($1)", hashlib.sha256(secret).digest())
        assert [dict(r) for r in token] == [{"tenant_id": tenant, "token_id": live}]
        assert await conn.fetch("select * from api_token_for_hash($1)", hashlib.sha256(b"revoked").digest()) == []
        assert await conn.fetch("select * from api_token_for_hash($1)", hashlib.sha256(b"expired").digest()) == []

        assert tenant in await tenants_with_open_conversations(db)
        assert tenant in await tenants_with_presence(db)
        # The seed's conversation waits in its queue: named by the tenant's slug and the queue's name.
        lines = [line for line in await waiting_lines(db) if line.tenant == workspace]
        assert [(line.queue, line.waiting) for line in lines] == [(queue, 1)]

        # Without the lookups, the same connection sees none of those rows.
        assert await conn.fetchval("select count(*) from users where email = $1", email) == 0
        assert await conn.fetchval("select count(*) from api_tokens") == 0
        assert await conn.fetchval("select count(*) from tenants") == 0


@pytest.fixture
def unprivileged_owner(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A database owned by a role that is not a superuser, and a server role of the operator's own.

    Returns (owner URL, server URL). The owner may create roles and administer fiv_app, as a managed
    service's main user can; the server role is named through DATABASE_APP_URL.
    """
    suffix = uuid.uuid4().hex[:8]
    owner_role, app_role, name = f"fiv_owner_{suffix}", f"fiv_ops_{suffix}", f"fiv_managed_{suffix}"
    setup = [
        f"create role {owner_role} login createrole",
        f"grant {APP_ROLE} to {owner_role} with admin option",
        f"create role {app_role} login",
        f"create database {name} owner {owner_role}",
    ]
    teardown = [
        f"drop database if exists {name} with (force)",
        f"drop role if exists {app_role}",
        f"drop role if exists {owner_role}",
    ]

    async def run(statements: list[str]) -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(setup))
    try:
        server = with_database(postgres_url, name)
        yield with_role(server, owner_role, ""), with_role(server, app_role, "")
    finally:
        asyncio.run(run(teardown))


async def test_lookups_work_when_the_owner_is_not_a_superuser(unprivileged_owner: tuple[str, str]) -> None:
    owner_url, app_url = unprivileged_owner
    await migrate(owner_url, app_role=role_of(app_url), app_password=None)
    settings = Settings(database_url=owner_url, database_app_url=app_url, redis_url=None)  # type: ignore[call-arg]
    db = await open_server_database(settings, min_size=1, max_size=2)
    try:
        tenant = await new_tenant(db)
        async with tenant_tx(db, tenant) as conn:
            ids = await seed_every_table(conn, tenant)
            email = await conn.fetchval("select email from users where id = $1", ids["users"])
            workspace = await conn.fetchval("select slug from tenants where id = $1", tenant)
            phone = await conn.fetchval("select phone_number_id from channels where id = $1", ids["channels"])
            queue = await conn.fetchval("select name from queues where id = $1", ids["queues"])
        async with db.connection() as conn:
            assert await conn.fetchval("select current_user") == role_of(app_url)
            assert await find_login(conn, workspace=workspace, email=email) == (tenant, ids["users"])
            assert await sole_workspace(conn) == workspace
            channel = await conn.fetchrow("select tenant_id, channel_id from channel_for_phone_number($1)", phone)
            assert channel is not None
            assert (channel["tenant_id"], channel["channel_id"]) == (tenant, ids["channels"])
            # The seed has an open conversation, a connection lease and events: the sweeps find the tenant.
            assert await tenants_with_open_conversations(db) == [tenant]
            assert await tenants_with_presence(db) == [tenant]
            assert await tenants_with_events_before(db, datetime.now(UTC) + timedelta(days=1)) == [tenant]
            assert await tenants_with_retention(db) == []
            lines = await waiting_lines(db)
            assert [(line.tenant, line.queue, line.waiting) for line in lines] == [(workspace, queue, 1)]
            assert lines[0].oldest_enqueued_at is not None
            assert await conn.fetchval("select count(*) from users") == 0
    finally:
        await db.pool.close()
