"""Pool-leak stress: many tasks alternating tenants over a 2-connection pool, some failing mid-transaction.

If the tenant were set per connection (session scope) instead of per transaction, a task would inherit
the previous borrower's tenant; here every task must see exactly its own tenant, and a connection handed
back after any outcome must carry no tenant at all.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import pytest

from fiv_console.db.pool import Database, create_database, tenant_tx, tenant_tx_reading
from tests.conftest import TestDatabase, new_tenant


class Boom(Exception):
    pass


async def _keep_session_state(conn: object) -> None:
    """A pool `reset` that resets nothing: the test must not lean on asyncpg's RESET ALL at release."""


async def _pool(database: TestDatabase, *, asyncpg_reset: bool) -> Database:
    if asyncpg_reset:
        return await create_database(database.app_url, min_size=2, max_size=2, acquire_timeout=30, command_timeout=30)
    pool = await asyncpg.create_pool(database.app_url, min_size=2, max_size=2, reset=_keep_session_state)
    return Database(pool=pool, acquire_timeout=30)


@pytest.mark.parametrize("asyncpg_reset", [True, False], ids=["server-pool", "pool-without-reset"])
async def test_alternating_tenants_on_two_connections_never_leak(
    database: TestDatabase, db: Database, asyncpg_reset: bool
) -> None:
    tenants = [await new_tenant(db, f"Leak{i}") for i in range(4)]
    db = await _pool(database, asyncpg_reset=asyncpg_reset)
    try:
        rng = random.Random(20261125)
        outcomes: list[str] = []

        async def one_task(index: int) -> None:
            tenant = tenants[index % len(tenants)]
            fail_at = rng.choice([None, None, "before", "after"])
            try:
                async with tenant_tx(db, tenant) as conn:
                    if fail_at == "before":
                        raise Boom
                    await asyncio.sleep(rng.random() / 200)
                    seen = await conn.fetch("select id from tenants")
                    setting = await conn.fetchval("select current_setting('app.current_tenant', true)")
                    assert [r["id"] for r in seen] == [tenant], (index, tenant, seen)
                    assert setting == str(tenant)
                    await conn.execute(
                        "insert into audit_log (tenant_id, actor_kind, action) values ($1, 'system', $2)",
                        tenant,
                        f"task {index}",
                    )
                    if fail_at == "after":
                        raise Boom
                outcomes.append("committed")
            except Boom:
                outcomes.append("rolled back")

        await asyncio.gather(*(one_task(i) for i in range(400)))
        assert outcomes.count("committed") > 100
        assert outcomes.count("rolled back") > 100

        # Every connection the pool hands out now carries no tenant and sees nothing.
        for _ in range(4):
            async with db.connection() as conn:
                assert await conn.fetchval("select current_setting('app.current_tenant', true)") in (None, "")
                assert await conn.fetchval("select count(*) from tenants") == 0

        # Committed work landed in the right tenant only; rolled-back work left nothing.
        for index, tenant in enumerate(tenants):
            async with tenant_tx(db, tenant) as conn:
                actions = {r["action"] for r in await conn.fetch("select action from audit_log")}
            assert all(int(a.split()[1]) % len(tenants) == index for a in actions)
        total = 0
        for tenant in tenants:
            async with tenant_tx(db, tenant) as conn:
                total += await conn.fetchval("select count(*) from audit_log")
        assert total == outcomes.count("committed")
    finally:
        await db.pool.close()


async def test_a_query_error_mid_transaction_leaves_no_tenant_behind(database: TestDatabase) -> None:
    db = await create_database(database.app_url, min_size=1, max_size=1, acquire_timeout=10, command_timeout=10)
    try:
        tenant = await new_tenant(db)
        with pytest.raises(Exception, match="division by zero"):
            async with tenant_tx(db, tenant) as conn:
                await conn.fetchval("select 1 / 0")
        async with db.connection() as conn:
            assert await conn.fetchval("select current_setting('app.current_tenant', true)") in (None, "")
            assert await conn.fetchval("select count(*) from tenants") == 0
        async with tenant_tx(db, uuid.uuid4()) as conn:
            assert await conn.fetchval("select count(*) from tenants") == 0
    finally:
        await db.pool.close()


# What the first statement of `tenant_tx_reading` sees: the tenant it set, and only that tenant's rows.
_FIRST_READ_SQL = """
select t.tenant_id as set_to, (select array_agg(id) from tenants) as seen,
       (select count(*) from users where tenant_id <> t.tenant_id) as others_users
"""


async def test_the_tenant_is_set_before_the_first_read_of_its_statement(database: TestDatabase) -> None:
    db = await create_database(database.app_url, min_size=2, max_size=2, acquire_timeout=10, command_timeout=10)
    try:
        tenants = [await new_tenant(db, f"First{i}") for i in range(3)]
        for index in range(12):
            tenant = tenants[index % len(tenants)]
            async with tenant_tx_reading(db, tenant, _FIRST_READ_SQL) as (conn, row):
                assert row is not None
                assert (row["set_to"], row["seen"], row["others_users"]) == (tenant, [tenant], 0)
                assert await conn.fetchval("select array_agg(id) from tenants") == [tenant]
        # A read that finds nothing in the tenant (another tenant's row) finds nothing, and the setting ends
        # with the transaction as `tenant_tx`'s does.
        async with tenant_tx_reading(db, tenants[0], "select id from tenants where id = $2", tenants[1]) as (_, row):
            assert row is None
        for _ in range(2):
            async with db.connection() as conn:
                assert await conn.fetchval("select current_setting('app.current_tenant', true)") in (None, "")
                assert await conn.fetchval("select count(*) from tenants") == 0
    finally:
        await db.pool.close()
