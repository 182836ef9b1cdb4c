"""WhatsApp groups (issue #16, point 7): a group's messages are one group conversation, each naming the
participant who wrote it, and the agent's reply goes to the group, never privately to a participant.

Bodies: Meta's "Group messages webhook reference" (developers.facebook.com/documentation/business-messaging/
whatsapp/groups, Nov 2025): a messages change whose message has `group_id`, `from` being the participant;
sends: "Group messaging", `recipient_type: group` and the group's id as `to`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.simulation.envelopes import message_object, messages_envelope
from tests.api import TenantPeople
from tests.conftest import TestDatabase
from tests.webhooks import World, post_webhook, simulated_world

GROUP = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
ANA, BRUNO = "5511911112222", "5511933334444"


@pytest.fixture
async def world(database: TestDatabase, db: Database, tenant: TenantPeople) -> AsyncIterator[World]:
    async with simulated_world(database, db, tenant, seed=11) as world:
        yield world


async def _writes(world: World, who: str, name: str, text: str, *, group: str | None = GROUP) -> str:
    message: dict[str, Any] = message_object(who, "text", {"body": text})
    if group is not None:
        message["group_id"] = group
    body = messages_envelope(world.phone_number_id, "15550100", who, name, message)
    async with ClientSession() as http:
        assert (await post_webhook(http, world.webhook_url, body)).status == 200
    return str(message["id"])


async def test_a_group_is_one_conversation_and_is_answered_as_a_group(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    await _writes(world, ANA, "Ana", "Is the shop open on Sunday?")
    await _writes(world, BRUNO, "Bruno", "And on holidays?")
    await _writes(world, ANA, "Ana", "Just me, in private", group=None)

    async with tenant_tx(db, tenant.id) as conn:
        contacts = await conn.fetch("select id, wa_id, group_id from contacts order by group_id nulls last")
        conversations = await conn.fetch("select id, contact_id from conversations")
    assert [(c["wa_id"], c["group_id"]) for c in contacts] == [(None, GROUP), (ANA, None)]
    assert len(conversations) == 2  # the group's, and Ana's own
    group_conversation = next(c["id"] for c in conversations if c["contact_id"] == contacts[0]["id"])

    agent = await world.browsers.signed_in(tenant.agent)
    shown = await agent.get(f"/api/conversations/{group_conversation}")
    assert shown.data["contact"]["group_id"] == GROUP
    assert (await agent.post(f"/api/conversations/{group_conversation}/assign", {})).status == 200
    history = await agent.get(f"/api/conversations/{group_conversation}/messages")
    participants = [m["details"]["participant"] for m in reversed(history.data["items"])]
    assert [(p["wa_id"], p["name"]) for p in participants] == [(ANA, "Ana"), (BRUNO, "Bruno")]
    assert all(p["user_id"].startswith("ZZ.") for p in participants)

    reply = await agent.post(f"/api/conversations/{group_conversation}/messages", {"text": "Open 9 to 1 on Sundays."})
    assert reply.status == 201, reply.body
    [sent] = [s for s in world.simulator.sent if s.wamid == reply.data["wa_message_id"]]
    assert (sent.request["recipient_type"], sent.request["to"]) == ("group", GROUP)
    assert "recipient" not in sent.request


async def test_reactions_in_a_group_are_each_participants_own(world: World, db: Database, tenant: TenantPeople) -> None:
    target = await _writes(world, ANA, "Ana", "We meet at 5")
    for who, emoji in ((ANA, "👍"), (BRUNO, "❤️")):
        reaction = message_object(who, "reaction", {"message_id": target, "emoji": emoji})
        reaction["group_id"] = GROUP
        body = messages_envelope(world.phone_number_id, "15550100", who, "x", reaction)
        async with ClientSession() as http:
            assert (await post_webhook(http, world.webhook_url, body)).status == 200
    async with tenant_tx(db, tenant.id) as conn:
        emoji = await conn.fetch("select emoji from message_reactions order by reacted_at, emoji")
    assert sorted(r["emoji"] for r in emoji) == sorted(["👍", "❤️"])
