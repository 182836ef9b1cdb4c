"""The wallboard's counters (waiting per queue, oldest waiting, open per agent) agree with the conversations
after any mix of arrivals, claims, moves and closes, concurrent ones included, folded or not, per tenant."""

from __future__ import annotations

import asyncio
import random

from fiv_console.access import Viewer
from fiv_console.assignment import counters
from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.conversations import lifecycle as conversations
from fiv_console.db.pool import Database, create_database, tenant_tx
from fiv_console.errors import Conflict, NotFound
from fiv_console.events import Unannounced
from tests.api import TenantPeople
from tests.assigning import available, channel, conversations_waiting
from tests.conftest import TestDatabase


async def _truth(db: Database, tenant: TenantPeople) -> counters.Counters:
    async with tenant_tx(db, tenant.id) as conn:
        queues = await conn.fetch(
            "select q.id, count(c.id) filter (where c.status = 'waiting') as waiting, "
            "count(c.id) filter (where c.status = 'assigned') as in_progress, "
            "min(c.enqueued_at) filter (where c.status = 'waiting') as oldest from queues q "
            "left join conversations c on c.queue_id = q.id group by q.id order by q.id"
        )
        agents = await conn.fetch(
            "select agent_id, count(*) as open from conversations where status = 'assigned' group by agent_id"
        )
    return counters.Counters(
        queues=[
            counters.QueueCounters(
                queue_id=r["id"], waiting=r["waiting"], in_progress=r["in_progress"], oldest_waiting_since=r["oldest"]
            )
            for r in queues
        ],
        open_per_agent={r["agent_id"]: r["open"] for r in agents},
    )


async def _counted(db: Database, tenant: TenantPeople, *, fold: bool = False) -> counters.Counters:
    async with tenant_tx(db, tenant.id) as conn:
        if fold:
            await counters.fold(conn, tenant.id)
        return await counters.read(conn)


async def test_counters_follow_every_kind_of_move_and_stay_within_their_tenant(
    database: TestDatabase, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    made = await conversations_waiting(db, tenant, await channel(db, tenant), 12)
    await conversations_waiting(db, other_tenant, await channel(db, other_tenant), 3)
    assert await _counted(db, tenant) == await _truth(db, tenant)

    async with tenant_tx(db, tenant.id) as conn:
        second_queue = await conn.fetchval(
            "insert into queues (tenant_id, name) values ($1, 'Second') returning id", tenant.id
        )
    await AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id)  # six assigned; folds first
    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    pools = [
        await create_database(database.app_url, min_size=1, max_size=4, acquire_timeout=10, command_timeout=30)
        for _ in range(3)
    ]
    rng = random.Random(5)

    async def moves(pool: Database) -> None:
        for _ in range(30):
            conversation_id = rng.choice(made)
            try:
                async with tenant_tx(pool, tenant.id) as conn:
                    step = rng.randrange(5)
                    if step == 0:
                        await conversations.transfer_to_queue(
                            conn, viewer=admin, conversation_id=conversation_id, queue_id=second_queue
                        )
                    elif step == 1:
                        await conversations.unassign(conn, viewer=admin, conversation_id=conversation_id)
                    elif step == 2:
                        await conversations.close(conn, viewer=admin, conversation_id=conversation_id, reason="done")
                    elif step == 3:
                        await conversations.reopen(conn, viewer=admin, conversation_id=conversation_id)
                    else:
                        agent = rng.choice([tenant.agent.id, tenant.other_agent.id])
                        await conversations.assign(
                            conn, viewer=admin, conversation_id=conversation_id, agent_id=agent, force=True
                        )
            except (Conflict, NotFound):
                pass  # a move that does not apply to the conversation as it now is

    async def claims(pool: Database) -> None:
        loop = AssignmentLoop(pool, Unannounced(), grace=30)
        for _ in range(10):
            await loop.run_once(tenant.id)

    try:
        await asyncio.gather(*(moves(pool) for pool in pools), claims(pools[0]), claims(pools[1]))
    finally:
        for pool in pools:
            await pool.pool.close()
    truth = await _truth(db, tenant)
    assert await _counted(db, tenant) == truth
    assert await _counted(db, tenant, fold=True) == truth
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select count(*) from assignment_counter_deltas") == 0
    assert await _counted(db, tenant) == truth
    assert await _counted(db, other_tenant) == await _truth(db, other_tenant)
    assert [q.waiting for q in (await _counted(db, other_tenant)).queues] == [3]
