"""What the console asks the API for beyond conversations themselves: who is signed in with the tenant's time
zone and rules, and whom a conversation may be transferred to (the same rules the transfer itself keeps)."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp.test_utils import TestServer

from fiv_console.db.pool import Database, tenant_tx
from tests.api import Browsers, TenantPeople
from tests.webhooks import customer_writes, number_of


async def _first_conversation(db: Database, tenant: TenantPeople) -> uuid.UUID:
    for _ in range(200):
        async with tenant_tx(db, tenant.id) as conn:
            found = await conn.fetchval("select id from conversations order by created_at limit 1")
        if found is not None:
            return uuid.UUID(str(found))
        await asyncio.sleep(0.05)
    raise AssertionError("the customer's message opened no conversation")


async def test_me_names_the_tenant_its_time_zone_and_whether_agents_take_waiting(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            """update tenants set time_zone = 'America/Sao_Paulo',
                                  settings = settings || '{"agents_can_take_waiting": false}' where id = $1""",
            tenant.id,
        )
    async with tenant_tx(db, tenant.id) as conn:
        name = await conn.fetchval("select name from tenants where id = $1", tenant.id)
    me = (await (await browsers.signed_in(tenant.agent)).get("/api/me")).data
    assert me["time_zone"] == "America/Sao_Paulo"
    assert me["agents_can_take_waiting"] is False
    assert me["tenant_name"] == name
    assert me["workspace"] == tenant.workspace


async def test_transfer_targets_follow_the_transfer_rules(
    api_server: TestServer, browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    await customer_writes(api_server, await number_of(db, tenant), "hello")
    conversation_id = await _first_conversation(db, tenant)
    path = f"/api/conversations/{conversation_id}/transfer-targets"
    admin = await browsers.signed_in(tenant.admin)
    await admin.put(f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}", {})
    second_queue = (await admin.post("/api/queues", {"name": "Billing"})).data["id"]

    agent = await browsers.signed_in(tenant.agent)
    for_agent = (await agent.get(path)).data
    # An agent is offered fellow agents of the queue, never themselves nor staff.
    assert [a["id"] for a in for_agent["agents"]] == [str(tenant.other_agent.id)]
    colleague = for_agent["agents"][0]
    assert (colleague["status"], colleague["connected"], colleague["open_conversations"]) == ("offline", False, 0)
    assert colleague["capacity"] > 0
    assert {q["id"]: q["waiting"] for q in for_agent["queues"]} == {str(tenant.queue_id): 1, second_queue: 0}

    supervisor = await browsers.signed_in(tenant.supervisor)
    offered = {a["id"] for a in (await supervisor.get(path)).data["agents"]}
    assert offered == {str(p.id) for p in (tenant.admin, tenant.agent, tenant.other_agent)}

    # Out of sight is not found, as for the conversation itself.
    outsider = await browsers.signed_in(tenant.other_agent)
    await admin.delete(f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}")
    assert (await outsider.get(path)).status == 404
