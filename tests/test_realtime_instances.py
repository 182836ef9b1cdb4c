"""Several instances behind one PostgreSQL and one Redis, and what happens when Redis goes away.

Each instance is a whole application on its own port with its own pool and bus connection, as two
processes behind a load balancer would be; a socket is served only by the instance it is open on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from aiohttp.test_utils import TestServer

from fiv_console.app import create_app
from fiv_console.db.pool import Database
from fiv_console.keys import bus_key
from fiv_console.realtime.protocol import SESSION_ENDED_CODE
from tests.api import Browsers, TenantPeople
from tests.conftest import TestDatabase
from tests.redis_server import RedisProcess
from tests.sockets import open_console
from tests.webhooks import customer_writes, number_of


@asynccontextmanager
async def instances(database: TestDatabase, redis_url: str, count: int) -> AsyncIterator[list[Browsers]]:
    """`count` instances sharing the database and Redis; a `Browsers` for each."""
    async with AsyncExitStack() as stack:
        opened = []
        for _ in range(count):
            server = TestServer(create_app(database.settings(redis_url=redis_url, presence_grace_seconds=3)))
            await server.start_server()
            stack.push_async_callback(server.close)
            browsers = Browsers(server)
            stack.push_async_callback(browsers.close)
            opened.append(browsers)
        yield opened


async def test_events_cross_instances_through_redis(
    database: TestDatabase, redis_url: str, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    async with instances(database, redis_url, 2) as (a, b):
        agent_on_a = await open_console(await a.signed_in(tenant.agent))
        supervisor_on_b = await open_console(await b.signed_in(tenant.supervisor))
        stranger_on_a = await open_console(await a.signed_in(other_tenant.supervisor))
        stranger_on_b = await open_console(await b.signed_in(other_tenant.admin))

        await customer_writes(b.server, phone_number_id, "posted to B")
        message = await agent_on_a.event("message.created")
        assert message["data"]["message"]["text"] == "posted to B"
        conversation_id = message["data"]["conversation_id"]

        supervisor_api_on_a = await a.signed_in(tenant.supervisor)
        answer = await supervisor_api_on_a.post(
            f"/api/conversations/{conversation_id}/assign", {"agent_id": str(tenant.agent.id)}
        )
        assert answer.status == 200, answer.body
        assigned = await supervisor_on_b.event("conversation.assigned")
        assert assigned["data"]["conversation"]["id"] == conversation_id
        assert assigned["data"]["conversation"]["agent_id"] == str(tenant.agent.id)
        assert (await agent_on_a.event("conversation.assigned"))["seq"] == assigned["seq"]

        for stranger in (stranger_on_a, stranger_on_b):
            assert await stranger.quiet_about_conversations(0.5) == []


async def test_a_session_ended_on_one_instance_closes_sockets_on_the_other(
    database: TestDatabase, redis_url: str, tenant: TenantPeople
) -> None:
    async with instances(database, redis_url, 2) as (a, b):
        on_b = await open_console(await b.signed_in(tenant.agent))
        logout = await (await a.signed_in(tenant.agent)).post("/api/auth/logout")
        assert logout.status == 200, logout.body
        assert await on_b.closed(within=3) == SESSION_ENDED_CODE


async def test_redis_restart_pauses_cross_instance_pushes_then_both_live_delivery_and_the_gap_come_back(
    database: TestDatabase, db: Database, tenant: TenantPeople, tmp_path: Path
) -> None:
    redis = RedisProcess(tmp_path)
    redis.start()
    phone_number_id = await number_of(db, tenant)
    try:
        async with instances(database, redis.url, 2) as (a, b):
            agent_api_on_a = await a.signed_in(tenant.agent)
            agent_on_a = await open_console(agent_api_on_a)
            await customer_writes(b.server, phone_number_id, "before")
            before = await agent_on_a.event("message.created")
            assert before["data"]["message"]["text"] == "before"

            redis.stop()
            # Intake, the API and the socket's own instance go on without Redis.
            for text in ("during 1", "during 2"):
                await customer_writes(b.server, phone_number_id, text)
            health = await (await b.new()).get("/health")
            assert health.status == 200
            assert health.body["status"] == "degraded"
            agent_api_on_b = await b.signed_in(tenant.agent)
            listed = await agent_api_on_b.get("/api/conversations?status=waiting")
            assert listed.status == 200, listed.body

            redis.start()
            # The subscriber reconnects by itself; the feed then reads what it missed from the log.
            caught_up = [await agent_on_a.event("message.created", within=15) for _ in range(2)]
            assert [f["data"]["message"]["text"] for f in caught_up] == ["during 1", "during 2"]
            for _ in range(100):
                if a.server.app[bus_key].connected and b.server.app[bus_key].connected:
                    break
                await asyncio.sleep(0.05)
            await customer_writes(b.server, phone_number_id, "after")
            live = await agent_on_a.event("message.created", within=5)
            assert live["data"]["message"]["text"] == "after"
            assert live["seq"] > caught_up[-1]["seq"]

            # A tab that was away the whole time resumes from its last seq: the gap and what followed.
            resumed = await open_console(agent_api_on_a, resume=before["seq"])
            replayed = [await resumed.event("message.created") for _ in range(3)]
            assert [f["data"]["message"]["text"] for f in replayed] == ["during 1", "during 2", "after"]
    finally:
        redis.stop()


async def test_the_bus_itself_carries_events_between_instances_at_once(
    database: TestDatabase, redis_url: str, db: Database, tenant: TenantPeople
) -> None:
    """Not the upkeep's safety net (a tick away, at least a third of the grace period): the doorbell."""
    phone_number_id = await number_of(db, tenant)
    async with AsyncExitStack() as stack:
        servers = []
        for _ in range(2):
            server = TestServer(create_app(database.settings(redis_url=redis_url, presence_grace_seconds=600)))
            await server.start_server()
            stack.push_async_callback(server.close)
            servers.append(server)
        a, b = Browsers(servers[0]), Browsers(servers[1])
        stack.push_async_callback(a.close)
        stack.push_async_callback(b.close)
        started = asyncio.get_running_loop().time()
        agent_on_a = await open_console(await a.signed_in(tenant.agent))
        assert asyncio.get_running_loop().time() - started < 1.5, "the first socket waited on its subscription"
        for number in range(20):
            await customer_writes(b.server, phone_number_id, f"quick {number}")
            message = await agent_on_a.event("message.created", within=1)
            assert message["data"]["message"]["text"] == f"quick {number}"
