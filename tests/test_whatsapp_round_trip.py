"""A customer and an agent through the Cloud API simulator: message in, reply out, receipts back, the window.

The console and the simulator are two real servers on loopback: the console sends through the simulator's
Graph API (`WHATSAPP_GRAPH_URL`), and the simulator posts signed webhooks to the console, as Meta would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from aiohttp import ClientSession

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.keys import group_names_key
from fiv_console.simulation.envelopes import message_object, messages_envelope
from fiv_console.simulation.traffic import TrafficConfig, TrafficGenerator
from tests.api import Api, TenantPeople
from tests.conftest import WEBHOOK_SECRET, TestDatabase
from tests.webhooks import (
    World,
    post_webhook,
    simulated_world,
)

CUSTOMER = "5511988887777"


@pytest.fixture
async def world(database: TestDatabase, db: Database, tenant: TenantPeople) -> AsyncIterator[World]:
    async with simulated_world(database, db, tenant, seed=7) as world:
        yield world


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 10.0) -> None:
    """Polls the API: what the simulator's webhooks change arrives a little later, by design."""
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"waited {seconds} s for {what}")


async def _customer_writes(world: World, text: str) -> None:
    await world.customer_writes(CUSTOMER, text)


async def _waiting_conversation(agent: Api) -> str:
    listed = await agent.get("/api/conversations?status=waiting")
    assert listed.status == 200, listed.body
    [conversation] = listed.body["data"]["items"]
    return str(conversation["id"])


async def test_a_customer_and_an_agent_through_the_simulator(
    world: World, tenant: TenantPeople, db: Database, owner: asyncpg.Connection
) -> None:
    await _customer_writes(world, "Hello, my order is late")
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id = await _waiting_conversation(agent)

    # An agent cannot reply before the conversation is theirs.
    early = await agent.post(f"/api/conversations/{conversation_id}/messages", {"text": "Hi!"})
    assert (early.status, early.body["error"]["code"]) == (403, "FORBIDDEN")
    taken = await agent.post(f"/api/conversations/{conversation_id}/assign", {})
    assert taken.status == 200, taken.body
    assert taken.body["data"]["first_response_at"] is None

    history = await agent.get(f"/api/conversations/{conversation_id}/messages")
    [inbound] = history.body["data"]["items"]
    reply = await agent.post(
        f"/api/conversations/{conversation_id}/messages",
        {"text": "Sorry about that, let me check.", "reply_to": inbound["id"]},
    )
    assert reply.status == 201, reply.body
    message = reply.body["data"]
    assert (message["direction"], message["status"], message["author_id"]) == ("outbound", "sent", str(tenant.agent.id))
    wamid = message["wa_message_id"]

    [sent] = [s for s in world.simulator.sent if s.wamid == wamid]
    assert sent.wa_id == CUSTOMER
    assert sent.request["text"]["body"] == "Sorry about that, let me check."
    assert sent.request["context"] == {"message_id": inbound["wa_message_id"]}
    assert sent.idempotency_key == message["id"]

    async def read_by_customer() -> bool:
        answer = await agent.get(f"/api/conversations/{conversation_id}/messages")
        return bool(answer.body["data"]["items"][0]["status"] == "read")

    await _eventually(read_by_customer, "the reply to be read")
    conversation = await agent.get(f"/api/conversations/{conversation_id}")
    assert conversation.body["data"]["first_response_at"] is not None
    async with tenant_tx(db, tenant.id) as conn:
        receipts = await conn.fetch("select status from message_statuses where wa_message_id = $1", wamid)
        kinds = [r["type"] for r in await conn.fetch("select type from events order by seq")]
    assert sorted(r["status"] for r in receipts) == ["delivered", "read", "sent"]
    assert kinds.count("message.status") >= 2

    # A day later, free text is refused with when the window closed; a template goes.
    await owner.execute(
        "update conversations set last_inbound_at = now() - interval '25 hours' where id = $1",
        uuid.UUID(conversation_id),
    )
    late = await agent.post(f"/api/conversations/{conversation_id}/messages", {"text": "Are you still there?"})
    assert (late.status, late.body["error"]["code"]) == (409, "WINDOW_CLOSED")
    assert late.body["error"]["details"]["window_closed_at"] is not None
    sends_before = len(world.simulator.sent)
    template = await agent.post(
        f"/api/conversations/{conversation_id}/messages",
        {"template": {"name": "order_update", "language": "en_US", "parameters": ["Ana", "#1234"]}},
    )
    assert template.status == 201, template.body
    assert template.body["data"]["status"] == "sent"
    assert template.body["data"]["text"] == "Hi Ana, your order #1234 is on its way.\n\nFi.V Demo Shop"
    assert len(world.simulator.sent) == sends_before + 1
    body = world.simulator.sent[-1].request["template"]
    assert body["name"] == "order_update"
    assert body["components"][0]["parameters"] == [
        {"type": "text", "text": "Ana"},
        {"type": "text", "text": "#1234"},
    ]


async def test_metas_refusal_is_kept_with_a_reason_and_can_be_sent_again(
    world: World, tenant: TenantPeople, db: Database
) -> None:
    await _customer_writes(world, "hi")
    supervisor = await world.browsers.signed_in(tenant.supervisor)
    conversation_id = await _waiting_conversation(supervisor)
    world.simulator.fail_next(131026, times=1)
    failed = await supervisor.post(f"/api/conversations/{conversation_id}/messages", {"text": "Hello there"})
    assert failed.status == 201, failed.body
    message = failed.body["data"]
    assert message["status"] == "failed"
    assert message["error"]["code"] == 131026
    assert "deliver" in message["error"]["reason"]
    unanswered = await supervisor.get(f"/api/conversations/{conversation_id}")
    assert unanswered.body["data"]["first_response_at"] is None  # a reply that did not go is no response

    again = await supervisor.post(f"/api/messages/{message['id']}/retry")
    assert again.status == 200, again.body
    assert again.body["data"]["status"] == "sent"
    assert again.body["data"]["id"] == message["id"]
    assert (await supervisor.post(f"/api/messages/{message['id']}/retry")).status == 409
    answered = await supervisor.get(f"/api/conversations/{conversation_id}")
    assert answered.body["data"]["first_response_at"] is not None


async def test_the_window_is_closed_before_the_customer_ever_wrote(
    world: World, tenant: TenantPeople, db: Database
) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        contact = await conn.fetchval(
            "insert into contacts (tenant_id, wa_id) values ($1, $2) returning id", tenant.id, CUSTOMER
        )
        conversation_id = await conn.fetchval(
            "insert into conversations (tenant_id, channel_id, contact_id, queue_id) values ($1, $2, $3, $4) "
            "returning id",
            tenant.id,
            world.channel_id,
            contact,
            tenant.queue_id,
        )
    admin = await world.browsers.signed_in(tenant.admin)
    answer = await admin.post(f"/api/conversations/{conversation_id}/messages", {"text": "hello"})
    assert (answer.status, answer.body["error"]["code"]) == (409, "WINDOW_CLOSED")
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select count(*) from messages") == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": ""},
        {"text": "   "},
        {"text": "a" * 4097},
        {"text": "x", "template": {"name": "t", "language": "en"}},
        {"template": {"name": "Bad Name", "language": "en"}},
        {"media": {"id": "1", "kind": "audio", "caption": "no"}},
        {"text": "nul\u0000"},
        {"text": "x", "extra": 1},
    ],
)
async def test_a_bad_send_request_is_400_and_stores_nothing(
    body: dict[str, object], world: World, tenant: TenantPeople, db: Database
) -> None:
    await _customer_writes(world, "hi")
    admin = await world.browsers.signed_in(tenant.admin)
    conversation_id = await _waiting_conversation(admin)
    answer = await admin.post(f"/api/conversations/{conversation_id}/messages", body)
    assert (answer.status, answer.body["error"]["code"]) == (400, "VALIDATION_ERROR")
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select count(*) from messages where direction = 'outbound'") == 0


async def test_opening_a_conversation_marks_the_customers_messages_read_once(
    world: World, tenant: TenantPeople
) -> None:
    await _customer_writes(world, "first")
    await _customer_writes(world, "second")
    agent = await world.browsers.signed_in(tenant.agent)
    supervisor = await world.browsers.signed_in(tenant.supervisor)
    conversation_id = await _waiting_conversation(agent)
    # Nobody has it yet, and a supervisor looking in does not make the customer think they were read.
    assert (await agent.post(f"/api/conversations/{conversation_id}/read")).body["data"] == {"marked": 0}
    assert (await supervisor.post(f"/api/conversations/{conversation_id}/read")).body["data"] == {"marked": 0}
    assert world.simulator.read_marks == []

    await agent.post(f"/api/conversations/{conversation_id}/assign", {})
    world.simulator.fail_next(100, times=1, target="read")
    assert (await agent.post(f"/api/conversations/{conversation_id}/read")).body["data"] == {"marked": 0}
    assert (await agent.post(f"/api/conversations/{conversation_id}/read")).body["data"] == {"marked": 2}
    assert (await agent.post(f"/api/conversations/{conversation_id}/read")).body["data"] == {"marked": 0}
    history = await agent.get(f"/api/conversations/{conversation_id}/messages")
    newest = history.body["data"]["items"][0]["wa_message_id"]
    assert [(m.message_id, m.typing_indicator) for m in world.simulator.read_marks] == [(newest, False)]

    assert (await agent.post(f"/api/conversations/{conversation_id}/typing")).body["data"] == {"sent": True}
    assert (await agent.post(f"/api/conversations/{conversation_id}/typing")).body["data"] == {"sent": False}
    assert [m.typing_indicator for m in world.simulator.read_marks] == [False, True]


async def test_a_customer_known_by_username_only_is_answered_by_their_bsuid(world: World, tenant: TenantPeople) -> None:
    # Meta's "Business-scoped user IDs" (2026): a user with a username may write with no number; the
    # business answers with `recipient` set to their BSUID, and the receipts name it as `recipient_user_id`.
    bsuid = "BR.1A2b3C4d5E6f1A2b3C4d5E6f1A2b3C4d5E6f1A2b3C4d5E6f1A2b3C4d5E6f123456"
    message = message_object(None, "text", {"body": "Oi, sou eu"}, user_id=bsuid)
    body = messages_envelope(
        world.phone_number_id, "15550100", None, "Sheena", message, user_id=bsuid, username="sheena"
    )
    async with ClientSession() as http:
        assert (await post_webhook(http, world.webhook_url, body)).status == 200
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id = await _waiting_conversation(agent)
    assert (await agent.post(f"/api/conversations/{conversation_id}/assign", {})).status == 200
    reply = await agent.post(f"/api/conversations/{conversation_id}/messages", {"text": "Olá! Como posso ajudar?"})
    assert reply.status == 201, reply.body
    [sent] = [s for s in world.simulator.sent if s.wamid == reply.body["data"]["wa_message_id"]]
    assert sent.request["recipient"] == bsuid
    assert "to" not in sent.request

    async def read_by_customer() -> bool:
        answer = await agent.get(f"/api/conversations/{conversation_id}/messages")
        return bool(answer.body["data"]["items"][0]["status"] == "read")

    await _eventually(read_by_customer, "the reply to be read")


async def test_the_agent_reacts_to_a_customers_message_and_takes_it_back(world: World, tenant: TenantPeople) -> None:
    # Meta's messages reference, reaction: `type: reaction`, `reaction: {message_id, emoji}`; an empty emoji
    # removes it. A reaction is no message of the history: it shows on the message it reacts to.
    await _customer_writes(world, "My parcel arrived, thanks!")
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id = await _waiting_conversation(agent)
    history = await agent.get(f"/api/conversations/{conversation_id}/messages")
    [inbound] = history.body["data"]["items"]

    early = await agent.post(f"/api/messages/{inbound['id']}/reaction", {"emoji": "👍"})
    assert (early.status, early.body["error"]["code"]) == (403, "FORBIDDEN")  # not theirs yet
    assert (await agent.post(f"/api/conversations/{conversation_id}/assign", {})).status == 200
    reacted = await agent.post(f"/api/messages/{inbound['id']}/reaction", {"emoji": "👍"})
    assert reacted.status == 200, reacted.body
    assert [(r["by"], r["emoji"]) for r in reacted.data["reactions"]] == [("business", "👍")]
    [sent] = [s for s in world.simulator.sent if s.type == "reaction"]
    assert sent.request["reaction"] == {"message_id": inbound["wa_message_id"], "emoji": "👍"}
    assert sent.request["to"] == CUSTOMER

    taken_back = await agent.post(f"/api/messages/{inbound['id']}/reaction", {"emoji": ""})
    assert taken_back.data["reactions"] == []
    after = await agent.get(f"/api/conversations/{conversation_id}/messages")
    assert [m["id"] for m in after.body["data"]["items"]] == [inbound["id"]]  # no message was added


async def test_every_kind_of_todays_traffic_lands_in_its_conversation_and_is_answered(
    world: World, tenant: TenantPeople, db: Database, owner: asyncpg.Connection
) -> None:
    # The simulator's customers as Meta sends them today: some by username only, messages in groups, edits,
    # deletions, reactions and the business app's echoes among the usual kinds.
    traffic = TrafficConfig(
        webhook_url=world.webhook_url,
        app_secret=WEBHOOK_SECRET.encode(),
        phone_number_id=world.phone_number_id,
        display_number="15550100",
        rate=100,
        customers=10,
        duration=1.5,
        seed=20,
    )
    generator = TrafficGenerator(traffic, counterpart=world.simulator)
    stats = await generator.run()
    assert stats.acknowledged == stats.sent == 150
    assert {"group", "edit", "reaction", "echo"} <= set(stats.kinds), stats.kinds
    assert (
        await owner.fetchval(
            "select count(*) from webhook_dead_letters where phone_number_id = $1", world.phone_number_id
        )
        == 0
    )

    async with tenant_tx(db, tenant.id) as conn:
        contacts = await conn.fetch("select id, wa_id, user_id, group_id from contacts")
        rows = await conn.fetch(
            "select m.kind, m.direction, m.details, c.contact_id "
            "from messages m join conversations c on c.id = m.conversation_id"
        )
    # One contact per customer (by number or, hiding it, by BSUID) and per group; nothing else.
    expected = {(None if c.hides_number else c.wa_id, c.bsuid) for c in generator.customers}
    people = {(c["wa_id"], c["user_id"]) for c in contacts if c["group_id"] is None}
    assert people <= expected
    groups = {c["id"] for c in contacts if c["group_id"] is not None}
    assert groups
    # Each group has its name: from a rename's group_settings_update, or asked of the Graph API.
    await world.console.app[group_names_key].drain()
    async with tenant_tx(db, tenant.id) as conn:
        named = await conn.fetch("select group_id, profile_name from contacts where group_id is not null")
    subjects = {g: world.simulator.groups.get(g) for g in (r["group_id"] for r in named)}
    assert all(subjects[r["group_id"]] is not None and r["profile_name"] for r in named), named
    # Edits, deletions and reactions changed messages instead of joining the history.
    assert not {r["kind"] for r in rows} & {"edit", "revoke", "reaction"}
    assert all((r["contact_id"] in groups) == ("participant" in (r["details"] or {})) for r in rows)
    assert any(r["direction"] == "outbound" and (r["details"] or {}).get("from_app") for r in rows)

    # The agent answers a group, a customer known only by username, and one with a number.
    supervisor = await world.browsers.signed_in(tenant.supervisor)
    listed = (await supervisor.get("/api/conversations?status=waiting&limit=100")).data["items"]
    picks = {
        "group": next(c for c in listed if c["contact"]["group_id"]),
        "username": next(c for c in listed if c["contact"]["wa_id"] is None and not c["contact"]["group_id"]),
        "number": next(c for c in listed if c["contact"]["wa_id"]),
    }
    for kind, conversation in picks.items():
        assert (await supervisor.post(f"/api/conversations/{conversation['id']}/assign", {})).status == 200
        reply = await supervisor.post(f"/api/conversations/{conversation['id']}/messages", {"text": f"Hello, {kind}"})
        assert reply.status == 201, reply.body
        [sent] = [s for s in world.simulator.sent if s.wamid == reply.data["wa_message_id"]]
        contact = conversation["contact"]
        if kind == "group":
            assert (sent.request["recipient_type"], sent.request["to"]) == ("group", contact["group_id"])
        elif kind == "username":
            assert "to" not in sent.request
            assert sent.request["recipient"].startswith("ZZ.")
        else:
            assert sent.request["to"] == contact["wa_id"]


async def test_media_goes_by_link_as_well_as_by_id(world: World, tenant: TenantPeople) -> None:
    # Meta's messages reference, media: `image: {link, caption}` instead of `{id}`; WhatsApp fetches the file.
    await _customer_writes(world, "Send me the catalogue?")
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id = await _waiting_conversation(agent)
    assert (await agent.post(f"/api/conversations/{conversation_id}/assign", {})).status == 200
    link = "https://cdn.example.com/catalogue/2026.pdf"
    media = {"kind": "document", "link": link, "filename": "catalogue.pdf", "caption": "Our 2026 catalogue"}
    sent_reply = await agent.post(f"/api/conversations/{conversation_id}/messages", {"media": media})
    assert sent_reply.status == 201, sent_reply.body
    assert (sent_reply.data["status"], sent_reply.data["media"]["link"]) == ("sent", link)
    [sent] = [s for s in world.simulator.sent if s.wamid == sent_reply.data["wa_message_id"]]
    assert sent.request["document"] == {"link": link, "caption": "Our 2026 catalogue", "filename": "catalogue.pdf"}
    both = await agent.post(f"/api/conversations/{conversation_id}/messages", {"media": {**media, "id": "123"}})
    assert (both.status, both.body["error"]["code"]) == (400, "VALIDATION_ERROR")


async def test_the_agent_asks_with_reply_buttons_and_a_list_and_the_answer_comes_back(
    world: World, tenant: TenantPeople
) -> None:
    # Meta's messages reference, interactive: `type: button` (up to 3 reply buttons) and `type: list`; the
    # customer's tap comes back as an interactive message with `button_reply` quoting ours.
    await _customer_writes(world, "I want to change my delivery")
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id = await _waiting_conversation(agent)
    assert (await agent.post(f"/api/conversations/{conversation_id}/assign", {})).status == 200
    buttons = {
        "body": "When suits you?",
        "buttons": [{"id": "am", "title": "Morning"}, {"id": "pm", "title": "Afternoon"}],
    }
    asked = await agent.post(f"/api/conversations/{conversation_id}/messages", {"interactive": buttons})
    assert asked.status == 201, asked.body
    assert (asked.data["kind"], asked.data["text"], asked.data["status"]) == ("interactive", "When suits you?", "sent")
    [sent] = [s for s in world.simulator.sent if s.wamid == asked.data["wa_message_id"]]
    assert sent.request["interactive"] == {
        "type": "button",
        "body": {"text": "When suits you?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "am", "title": "Morning"}},
                {"type": "reply", "reply": {"id": "pm", "title": "Afternoon"}},
            ]
        },
    }
    menu = {
        "body": "Pick a store",
        "list": {
            "button": "Stores",
            "sections": [{"title": "São Paulo", "rows": [{"id": "sp1", "title": "Paulista"}]}],
        },
    }
    listed = await agent.post(f"/api/conversations/{conversation_id}/messages", {"interactive": menu})
    assert listed.status == 201, listed.body
    [sent_list] = [s for s in world.simulator.sent if s.wamid == listed.data["wa_message_id"]]
    assert sent_list.request["interactive"]["action"]["sections"][0]["rows"] == [{"id": "sp1", "title": "Paulista"}]
    too_many = {"body": "?", "buttons": [{"id": str(n), "title": f"Option {n}"} for n in range(4)]}
    refused = await agent.post(f"/api/conversations/{conversation_id}/messages", {"interactive": too_many})
    assert (refused.status, refused.body["error"]["code"]) == (400, "VALIDATION_ERROR")

    answer = message_object(
        CUSTOMER, "interactive", {"type": "button_reply", "button_reply": {"id": "pm", "title": "Afternoon"}}
    )
    answer["context"] = {"from": "15550100", "id": asked.data["wa_message_id"]}
    async with ClientSession() as http:
        body = messages_envelope(world.phone_number_id, "15550100", CUSTOMER, "Customer", answer)
        assert (await post_webhook(http, world.webhook_url, body)).status == 200
    history = await agent.get(f"/api/conversations/{conversation_id}/messages")
    newest = history.body["data"]["items"][0]
    assert (newest["kind"], newest["text"], newest["details"]["interactive"]["id"]) == (
        "interactive",
        "Afternoon",
        "pm",
    )
    assert newest["reply_to_wa_message_id"] == asked.data["wa_message_id"]
