"""Test helpers for assignment: available agents, waiting conversations in a line, and who owns what."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import SecretStr

from fiv_console.accounts import users
from fiv_console.db.pool import Connection, Database, tenant_tx
from tests.api import PASSWORD, TenantPeople, password_hash
from tests.webhooks import number_of


async def available(db: Database, tenant: TenantPeople, *agents: uuid.UUID, queue_id: uuid.UUID | None = None) -> None:
    """The agents are members of the queue (the tenant's unless named), online, and connected (a fresh lease)."""
    async with tenant_tx(db, tenant.id) as conn:
        for agent_id in agents:
            await conn.execute(
                "insert into queue_members (tenant_id, queue_id, user_id) values ($1, $2, $3) on conflict do nothing",
                tenant.id,
                queue_id or tenant.queue_id,
                agent_id,
            )
            await conn.execute("update users set status = 'online', max_concurrent = 3 where id = $1", agent_id)
            await conn.execute(
                "insert into agent_connections (tenant_id, user_id, instance_id, sockets) values ($1, $2, $3, 1)",
                tenant.id,
                agent_id,
                uuid.uuid4(),
            )


async def conversations_waiting(
    db: Database, tenant: TenantPeople, channel_id: uuid.UUID, count: int
) -> list[uuid.UUID]:
    """`count` waiting conversations, one a second apart in their queue's line (the first the oldest)."""
    made = []
    async with tenant_tx(db, tenant.id) as conn:
        for n in range(count):
            contact = await conn.fetchval(
                "insert into contacts (tenant_id, wa_id) values ($1, $2) returning id",
                tenant.id,
                f"55{uuid.uuid4().int % 10**11:011d}",
            )
            made.append(
                await conn.fetchval(
                    "insert into conversations (tenant_id, channel_id, contact_id, queue_id, enqueued_at) "
                    "values ($1, $2, $3, $4, now() - make_interval(secs => $5)) returning id",
                    tenant.id,
                    channel_id,
                    contact,
                    tenant.queue_id,
                    float(10_000 - n),
                )
            )
    return made


async def channel(db: Database, tenant: TenantPeople) -> uuid.UUID:
    await number_of(db, tenant)
    async with tenant_tx(db, tenant.id) as conn:
        channel_id: uuid.UUID = await conn.fetchval("select id from channels order by created_at desc limit 1")
    return channel_id


async def owners_of(db: Database, tenant: TenantPeople) -> dict[uuid.UUID, uuid.UUID | None]:
    async with tenant_tx(db, tenant.id) as conn:
        rows = await conn.fetch("select id, agent_id from conversations where status <> 'closed'")
    return {r["id"]: r["agent_id"] for r in rows}


async def assigned_to(db: Database, tenant: TenantPeople, agent_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    made = await conversations_waiting(db, tenant, await channel(db, tenant), count)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update conversations set status = 'assigned', agent_id = $1, assigned_at = now() - interval '10 minutes' "
            "where id = any($2)",
            agent_id,
            made,
        )
    return made


async def enqueued(db: Database, tenant: TenantPeople) -> dict[uuid.UUID, tuple[str, datetime]]:
    async with tenant_tx(db, tenant.id) as conn:
        rows = await conn.fetch("select id, status, enqueued_at from conversations")
    return {r["id"]: (r["status"], r["enqueued_at"]) for r in rows}


async def new_agents(conn: Connection, tenant_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """In the tenant's transaction: `count` more agents (in no queue), named Agent 1, Agent 2, ..."""
    made = []
    for n in range(1, count + 1):
        user = await users.create_user(
            conn,
            tenant_id=tenant_id,
            data=users.UserCreate(
                email=f"agent-{n}-{uuid.uuid4().hex[:10]}@assigning.example",
                name=f"Agent {n}",
                role="agent",
                password=SecretStr(PASSWORD),
            ),
            password_hash=password_hash(),
        )
        made.append(user.id)
    return made
