"""Every event the console writes keeps the contract of `realtime/event_data.py`, which the docs list.

A run of real traffic goes through every kind of change (a customer writes; staff change a queue and its
members; a conversation is assigned, answered and its receipts come back, noted, labelled, transferred,
unassigned, closed, reopened; a waiting one breaches its SLA; an agent changes status), and every event it
wrote is read back from the log and validated against its type's model, which forbids unknown fields.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession

from fiv_console import events
from fiv_console.assignment.sla import mark_breaches
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.events import Unannounced
from fiv_console.realtime.event_data import EVENT_DATA, validate
from tests.api import Answer, Api, TenantPeople
from tests.conftest import TestDatabase, project_root
from tests.sockets import open_console
from tests.webhooks import World, envelope, post_webhook, simulated_world, text_message


@pytest.fixture
async def world(database: TestDatabase, db: Database, tenant: TenantPeople) -> AsyncIterator[World]:
    async with simulated_world(database, db, tenant, seed=13) as world:
        yield world


def _ok(answer: Answer) -> Any:
    """The answer's data, once `Answer.data` has checked it succeeded."""
    return answer.data


async def _conversation_of(api: Api, wa_id: str) -> str:
    listed = _ok(await api.get("/api/conversations"))["items"]
    return next(str(c["id"]) for c in listed if c["contact"]["wa_id"] == wa_id)


async def _logged(db: Database, tenant_id: uuid.UUID) -> list[Any]:
    async with tenant_tx(db, tenant_id) as conn:
        return list(await conn.fetch("select seq, type, payload from events order by seq"))


async def test_every_event_of_a_run_of_traffic_keeps_its_contract(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    supervisor = await world.browsers.signed_in(tenant.supervisor)
    agent = await world.browsers.signed_in(tenant.agent)
    _ok(await supervisor.patch(f"/api/queues/{tenant.queue_id}", {"priority": 3}))
    _ok(await supervisor.put(f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}", {}))
    console = await open_console(agent)
    await console.send({"type": "presence", "status": "away"})  # away: the loop gives the agent nothing

    late = text_message("5511911110001", "my order is late")
    reaction = {
        **text_message("5511911110001", ""),
        "type": "reaction",
        "reaction": {"message_id": late["id"], "emoji": "😡"},
    }
    del reaction["text"]
    async with ClientSession() as http:
        for message in (late, reaction):  # the customer reacts to their own message: `message.updated`
            assert (
                await post_webhook(http, world.webhook_url, envelope(world.phone_number_id, messages=[message]))
            ).status == 200
    await world.customer_writes("5511911110002", "and mine never came")
    first = await _conversation_of(supervisor, "5511911110001")
    second = await _conversation_of(supervisor, "5511911110002")

    _ok(await supervisor.post(f"/api/conversations/{first}/assign", {"agent_id": str(tenant.agent.id)}))
    assert _ok(await agent.post(f"/api/conversations/{first}/read")) == {"marked": 1}
    _ok(await agent.post(f"/api/conversations/{first}/messages", {"text": "Let me look."}))
    _ok(await agent.post(f"/api/conversations/{first}/notes", {"body": "courier says Tuesday"}))
    label = _ok(await supervisor.post("/api/labels", {"name": f"late {uuid.uuid4().hex[:6]}"}))
    _ok(await agent.put(f"/api/conversations/{first}/labels/{label['id']}"))
    _ok(await agent.post(f"/api/conversations/{first}/transfer", {"queue_id": str(tenant.queue_id)}))
    _ok(await supervisor.post(f"/api/conversations/{first}/assign", {"agent_id": str(tenant.agent.id)}))
    _ok(await supervisor.post(f"/api/conversations/{first}/unassign"))
    _ok(await supervisor.post(f"/api/conversations/{first}/assign", {"agent_id": str(tenant.agent.id)}))
    _ok(await agent.post(f"/api/conversations/{first}/close", {"reason": "delivered"}))
    _ok(await agent.post(f"/api/conversations/{first}/reopen"))
    admin = await world.browsers.signed_in(tenant.admin)
    settings = _ok(await admin.get("/api/tenant/settings"))
    _ok(await admin.patch("/api/tenant/settings", {"agents_can_take_waiting": not settings["agents_can_take_waiting"]}))

    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update conversations set enqueued_at = now() - interval '1 day' where id = $1", second)
    async with events.changing(db, Unannounced(), tenant.id) as (conn, batch):
        assert await mark_breaches(conn, batch, limit=10) >= 1

    for _ in range(500):  # the simulator's receipts come back a little later
        if any(row["type"] == "message.status" for row in await _logged(db, tenant.id)):
            break
        await asyncio.sleep(0.02)

    logged = await _logged(db, tenant.id)
    for row in logged:
        validate(row["type"], row["payload"])
    assert {row["type"] for row in logged} == set(EVENT_DATA)
    # The read mark announced the conversation with its count dropped, before any label was put on it.
    counted = [row["payload"]["conversation"] for row in logged if row["type"] == "conversation.updated"]
    assert counted[0]["id"] == first
    assert counted[0]["unread_count"] == 0
    assert counted[0]["labels"] == []
    assert counted[0]["last_message"]["text"] == "my order is late"
    created = next(row["payload"] for row in logged if row["type"] == "conversation.created")
    assert created["conversation"]["unread_count"] == 1


def test_the_docs_list_every_event_type_the_contract_has() -> None:
    text = (project_root() / "docs" / "websocket.md").read_text(encoding="utf-8")
    events_section = text.split("## Events", 1)[1].split("\n## ", 1)[0]
    listed = set()
    for cell in re.findall(r"^\| `([^|]+)` \|", events_section, re.M):
        names = [name.strip(" `") for name in cell.split(",")]
        family = names[0].rsplit(".", 1)[0]
        listed |= {name if not name.startswith(".") else family + name for name in names}
    assert listed == set(EVENT_DATA)
