"""Background work visits only tenants with something due (issue #17, point 7): the assignment sweep the
tenants with an open conversation, the presence sweep those where someone is or was just connected, the
hourly retention those with old events or a retention of their own. An idle tenant, however many there
are, is never visited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from fiv_console.accounts.tenants import (
    tenants_with_events_before,
    tenants_with_open_conversations,
    tenants_with_presence,
    tenants_with_retention,
)
from fiv_console.db.pool import Database, tenant_tx
from tests.conftest import new_tenant
from tests.tenant_rows import INSERTS, insert_row


async def _tenant_with(db: Database, name: str, tables: list[str]) -> uuid.UUID:
    tenant_id = await new_tenant(db, name)
    async with tenant_tx(db, tenant_id) as conn:
        ids: dict[str, object] = {"tenants": tenant_id}
        for table in INSERTS:
            if table in tables:
                ids[table] = await insert_row(conn, table, tenant_id, ids)
    return tenant_id


async def test_only_tenants_with_something_due_are_found(db: Database, owner: asyncpg.Connection) -> None:
    # Idle: a queue, a number, an agent and a closed conversation; nobody connected.
    idle = await _tenant_with(db, "Idle", ["users", "queues", "queue_members", "channels", "contacts", "conversations"])
    async with tenant_tx(db, idle) as conn:
        await conn.execute("update conversations set status = 'closed', closed_at = now(), close_reason = 'done'")
    waiting = await _tenant_with(db, "Waiting", ["users", "queues", "channels", "contacts", "conversations"])
    connected = await _tenant_with(db, "Connected", ["users", "agent_connections"])
    online = await _tenant_with(db, "Online", ["users"])
    async with tenant_tx(db, online) as conn:
        await conn.execute("update users set connected = true, connected_changed_at = now()")

    logged = await _tenant_with(db, "Logged", ["users", "queues", "channels", "contacts", "conversations", "events"])
    async with tenant_tx(db, logged) as conn:
        await conn.execute("update conversations set status = 'closed', closed_at = now(), close_reason = 'done'")
        await conn.execute("update tenants set settings = settings || '{\"retention_days\": 90}'")
    # The server role may not rewrite the log: the owner ages it.
    await owner.execute("update events set created_at = now() - interval '40 days' where tenant_id = $1", logged)

    # The test database is shared with other tests' tenants: only these five are looked at.
    mine = {idle, waiting, connected, online, logged}
    assert mine & set(await tenants_with_open_conversations(db)) == {waiting}
    assert mine & set(await tenants_with_presence(db)) == {connected, online}
    assert mine & set(await tenants_with_events_before(db, datetime.now(UTC) - timedelta(days=30))) == {logged}
    assert mine & set(await tenants_with_events_before(db, datetime.now(UTC) - timedelta(days=50))) == set()
    assert mine & set(await tenants_with_retention(db)) == {logged}
    for found in (await tenants_with_open_conversations(db), await tenants_with_presence(db)):
        assert len(found) == len(set(found)), "each tenant once"
