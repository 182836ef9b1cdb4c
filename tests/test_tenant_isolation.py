"""Cross-tenant isolation enforced by PostgreSQL itself, table by table, as the server's role sees it.

Each test walks every table that has a tenant_id (read from the catalog, so a new table is covered the
day it is added), and would fail if row-level security were switched off on any one of them.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from fiv_console.db.pool import Database, tenant_tx
from tests.conftest import TestDatabase, new_tenant
from tests.tenant_rows import INSERTS, Ids, insert_row, seed_every_table

TENANT_TABLES = ["tenants", *INSERTS]


@dataclass(frozen=True)
class TwoTenants:
    a: uuid.UUID
    b: uuid.UUID
    a_ids: Ids
    b_ids: Ids


@pytest.fixture
async def two_tenants(db: Database) -> TwoTenants:
    a, b = await new_tenant(db, "A"), await new_tenant(db, "B")
    async with tenant_tx(db, a) as conn:
        a_ids = await seed_every_table(conn, a)
    async with tenant_tx(db, b) as conn:
        b_ids = await seed_every_table(conn, b)
    return TwoTenants(a=a, b=b, a_ids=a_ids, b_ids=b_ids)


def _tenant_column(table: str) -> str:
    return "id" if table == "tenants" else "tenant_id"


async def test_the_walk_covers_every_tenant_table(owner: asyncpg.Connection) -> None:
    in_catalog = await owner.fetch(
        """
        select distinct c.relname from pg_class c join pg_attribute a on a.attrelid = c.oid
        where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' and a.attname = 'tenant_id'
        """
    )
    assert sorted(r["relname"] for r in in_catalog) == sorted(INSERTS)


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_a_tenant_sees_only_its_own_rows(db: Database, two_tenants: TwoTenants, table: str) -> None:
    column = _tenant_column(table)
    async with tenant_tx(db, two_tenants.a) as conn:
        own = await conn.fetchval(f"select count(*) from {table} where {column} = $1", two_tenants.a)
        everything = await conn.fetchval(f"select count(*) from {table}")
        foreign = await conn.fetchval(f"select count(*) from {table} where {column} = $1", two_tenants.b)
    assert own >= 1
    assert foreign == 0
    assert everything == own


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_no_tenant_set_sees_nothing(db: Database, two_tenants: TwoTenants, table: str) -> None:
    async with db.connection() as conn:
        assert await conn.fetchval(f"select count(*) from {table}") == 0


async def test_a_reverted_tenant_setting_sees_nothing(database: TestDatabase, two_tenants: TwoTenants) -> None:
    """After a transaction-local setting ends it reads back as '' (not NULL): the policy must cope."""
    conn = await asyncpg.connect(database.app_url)
    try:
        async with conn.transaction():
            await conn.execute("select set_config('app.current_tenant', $1, true)", str(two_tenants.a))
            assert await conn.fetchval("select count(*) from queues") >= 1
        assert await conn.fetchval("select current_setting('app.current_tenant', true)") == ""
        assert await conn.fetchval("select count(*) from queues") == 0
        assert await conn.fetchval("select count(*) from tenants") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize("table", list(INSERTS))
async def test_writing_a_row_for_another_tenant_is_refused(db: Database, two_tenants: TwoTenants, table: str) -> None:
    """In A's transaction, a row claiming tenant B (pointing at B's real rows) fails WITH CHECK."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with tenant_tx(db, two_tenants.a) as conn:
            await insert_row(conn, table, two_tenants.b, two_tenants.b_ids)


async def test_creating_a_tenant_row_for_another_id_is_refused(db: Database, two_tenants: TwoTenants) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with tenant_tx(db, two_tenants.a) as conn:
            await conn.execute("insert into tenants (id, name) values ($1, 'intruder')", uuid.uuid4())


async def test_moving_a_row_to_another_tenant_is_refused(db: Database, two_tenants: TwoTenants) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with tenant_tx(db, two_tenants.a) as conn:
            await conn.execute(
                "update queues set tenant_id = $1 where id = $2", two_tenants.b, two_tenants.a_ids["queues"]
            )


async def test_updates_and_deletes_cannot_reach_another_tenant(db: Database, two_tenants: TwoTenants) -> None:
    b = two_tenants.b_ids
    async with tenant_tx(db, two_tenants.a) as conn:
        assert await conn.execute("update queues set name = 'taken' where id = $1", b["queues"]) == "UPDATE 0"
        assert await conn.execute("update users set disabled = true where id = $1", b["users"]) == "UPDATE 0"
        assert await conn.execute("update tenants set name = 'taken' where id = $1", two_tenants.b) == "UPDATE 0"
        assert await conn.execute("delete from queue_members where user_id = $1", b["users"]) == "DELETE 0"
        assert await conn.execute("delete from events where tenant_id = $1", two_tenants.b) == "DELETE 0"
    async with tenant_tx(db, two_tenants.b) as conn:
        assert await conn.fetchval("select name from queues where id = $1", b["queues"]) != "taken"
        assert await conn.fetchval("select count(*) from queue_members") == 1


async def test_a_row_cannot_point_at_another_tenants_row(db: Database, two_tenants: TwoTenants) -> None:
    """Composite foreign keys: A's conversation naming B's queue is refused, though key checks bypass RLS."""
    a, b = two_tenants.a_ids, two_tenants.b_ids
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with tenant_tx(db, two_tenants.a) as conn:
            await conn.execute(
                "insert into conversations (tenant_id, channel_id, contact_id, queue_id) values ($1, $2, $3, $4)",
                two_tenants.a,
                a["channels"],
                await insert_row(conn, "contacts", two_tenants.a, a),
                b["queues"],
            )


async def test_concurrent_tenants_on_one_pool_each_see_their_own(db: Database, two_tenants: TwoTenants) -> None:
    async def names_seen(tenant: uuid.UUID) -> set[uuid.UUID]:
        async with tenant_tx(db, tenant) as conn:
            await asyncio.sleep(0)
            return {r["tenant_id"] for r in await conn.fetch("select tenant_id from users")}

    seen = await asyncio.gather(*(names_seen(t) for t in [two_tenants.a, two_tenants.b] * 10))
    assert seen == [{two_tenants.a}, {two_tenants.b}] * 10
