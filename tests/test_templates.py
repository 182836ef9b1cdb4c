"""Message templates end to end: listed from the simulator's business account (every page), kept per channel,
served to whoever sees the conversation, and template replies checked against them before anything is
stored or reaches the simulator, which receives exactly the components Meta documents."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.simulation.envelopes import DEFAULT_WABA_ID
from tests.api import Api, TenantPeople
from tests.conftest import TestDatabase
from tests.webhooks import World, connect_number, new_phone_number_id, simulated_world

CUSTOMER = "5511977776666"
APPROVED = [
    ("appointment_reminder", "en_US"),
    ("appointment_reminder", "pt_BR"),
    ("invoice_ready", "en_US"),
    ("order_shipped", "en_US"),
    ("order_update", "en_US"),
    ("welcome_offer", "en_US"),
]


@pytest.fixture
async def world(database: TestDatabase, db: Database, tenant: TenantPeople) -> AsyncIterator[World]:
    # Three templates a page: the console must follow the cursors to see them all.
    async with simulated_world(database, db, tenant, seed=11, simulator={"template_page_limit": 3}) as world:
        yield world


async def _conversation(world: World, api: Api) -> str:
    await world.customer_writes(CUSTOMER, "hello")
    listed = await api.get("/api/conversations?status=waiting")
    [conversation] = listed.data["items"]
    return str(conversation["id"])


def _template_sends(world: World) -> list[dict[str, Any]]:
    return [sent.request["template"] for sent in world.simulator.sent if sent.type == "template"]


async def test_a_conversations_templates_are_its_numbers_approved_ones_from_every_page(
    world: World, tenant: TenantPeople
) -> None:
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id = await _conversation(world, agent)
    answer = await agent.get(f"/api/conversations/{conversation_id}/templates")
    data = answer.data
    assert [(t["name"], t["language"]) for t in data["templates"]] == APPROVED
    assert (data["waba_id"], data["stale"], data["unavailable"], data["channel_id"]) == (
        DEFAULT_WABA_ID,
        False,
        None,
        str(world.channel_id),
    )
    assert data["fetched_at"] is not None
    assert data["age_seconds"] == 0
    # Eight templates, three a page: three requests, each after the last one's cursor.
    listings = world.simulator.template_listings
    assert [listing.limit for listing in listings] == [3, 3, 3]
    assert listings[0].after is None
    assert None not in [listing.after for listing in listings[1:]]
    assert {listing.token for listing in listings} == {"test-token"}

    by_name = {(t["name"], t["language"]): t for t in data["templates"]}
    reminder = by_name[("appointment_reminder", "en_US")]
    assert reminder["parameter_format"] == "NAMED"
    assert reminder["body"]["parameters"] == [
        {"name": "first_name", "example": "Ana"},
        {"name": "date", "example": "May 3 at 10:00"},
    ]
    assert reminder["header"] == {"format": "TEXT", "kind": "text", "text": "Appointment reminder", "parameters": []}
    shipped = by_name[("order_shipped", "en_US")]
    assert (shipped["header"]["format"], shipped["header"]["kind"]) == ("IMAGE", "image")
    assert shipped["footer"] == "Fi.V Demo Shop"
    assert [(b["index"], b["type"], b["parameter"]) for b in shipped["buttons"]] == [
        (0, "URL", {"name": "1", "example": "https://shop.example.com/track/A1234"}),
        (1, "PHONE_NUMBER", None),
    ]
    offer = by_name[("welcome_offer", "en_US")]
    assert offer["header"]["parameters"] == [{"name": "1", "example": "Ana"}]
    assert offer["buttons"][0]["parameter"] == {"name": "coupon_code", "example": "WELCOME10"}
    assert all(t["sendable"] and t["status"] == "APPROVED" for t in data["templates"])


async def test_the_list_is_kept_refreshed_on_demand_and_a_kept_copy_answers_when_meta_fails(
    world: World, tenant: TenantPeople
) -> None:
    supervisor = await world.browsers.signed_in(tenant.supervisor)
    conversation_id = await _conversation(world, supervisor)
    path = f"/api/conversations/{conversation_id}/templates"
    first = (await supervisor.get(path)).data
    fetched = len(world.simulator.template_listings)
    assert (await supervisor.get(path)).data["templates"] == first["templates"]
    assert len(world.simulator.template_listings) == fetched  # kept: WhatsApp was not asked again

    assert (await supervisor.get(f"{path}?refresh=true")).data["stale"] is False
    assert len(world.simulator.template_listings) == 2 * fetched

    world.simulator.fail_next(190, target="templates")  # the token refused: no retry helps
    stale = (await supervisor.get(f"{path}?refresh=true")).data
    assert stale["stale"] is True
    assert "access token" in stale["message"]
    assert stale["templates"] == first["templates"]
    assert stale["age_seconds"] is not None


async def test_without_a_kept_copy_a_failure_is_an_error(world: World, tenant: TenantPeople) -> None:
    admin = await world.browsers.signed_in(tenant.admin)
    path = f"/api/channels/{world.channel_id}/templates"
    world.simulator.fail_next(100, target="templates")
    refused = await admin.get(path)
    assert (refused.status, refused.code) == (409, "CONFLICT")
    assert refused.body["error"]["details"] == {"whatsapp_code": 100}
    world.simulator.fail_next(131000, times=10, target="templates")
    unreachable = await admin.get(path)
    assert (unreachable.status, unreachable.code) == (503, "UNAVAILABLE")
    assert "templates" in unreachable.body["error"]["message"]


async def test_who_sees_which_templates(world: World, tenant: TenantPeople, db: Database) -> None:
    admin = await world.browsers.signed_in(tenant.admin)
    conversation_id = await _conversation(world, admin)
    # Not a member of the conversation's queue, and it is not theirs: it does not exist for them.
    outsider = await world.browsers.signed_in(tenant.other_agent)
    assert (await outsider.get(f"/api/conversations/{conversation_id}/templates")).status == 404
    assert (await outsider.get(f"/api/conversations/{uuid.uuid4()}/templates")).status == 404

    # A channel's own list is for admins, with every status.
    supervisor = await world.browsers.signed_in(tenant.supervisor)
    assert (await supervisor.get(f"/api/channels/{world.channel_id}/templates")).code == "FORBIDDEN"
    everything = (await admin.get(f"/api/channels/{world.channel_id}/templates")).data["templates"]
    statuses = {(t["name"], t["status"]) for t in everything}
    assert {("spring_sale", "REJECTED"), ("payment_due", "PENDING")} <= statuses
    assert len(everything) == len(APPROVED) + 2

    # A number without a business account lists nothing, and says why.
    bare = await connect_number(
        db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=new_phone_number_id()
    )
    answer = (await admin.get(f"/api/channels/{bare}/templates")).data
    assert (answer["templates"], answer["unavailable"], answer["waba_id"]) == ([], "no_waba_id", None)
    assert "waba_id" in answer["message"]


async def test_a_named_template_goes_with_its_parameter_names(world: World, tenant: TenantPeople) -> None:
    admin = await world.browsers.signed_in(tenant.admin)
    conversation_id = await _conversation(world, admin)
    sent = await admin.post(
        f"/api/conversations/{conversation_id}/messages",
        {
            "template": {
                "name": "appointment_reminder",
                "language": "pt_BR",
                "parameters": {"date": "3 de maio", "first_name": "Ana"},
            }
        },
    )
    assert sent.status == 201, sent.body
    message = sent.data
    assert (message["kind"], message["status"]) == ("template", "sent")
    assert message["text"] == "Lembrete de consulta\n\nOlá Ana, lembramos da sua consulta em 3 de maio."
    assert message["details"]["template"] == {
        "name": "appointment_reminder",
        "language": "pt_BR",
        "parameters": {"date": "3 de maio", "first_name": "Ana"},
    }
    [template] = _template_sends(world)
    assert template == {
        "name": "appointment_reminder",
        "language": {"code": "pt_BR"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "parameter_name": "first_name", "text": "Ana"},
                    {"type": "text", "parameter_name": "date", "text": "3 de maio"},
                ],
            }
        ],
    }


async def test_header_media_body_and_buttons_are_sent_as_meta_documents(world: World, tenant: TenantPeople) -> None:
    admin = await world.browsers.signed_in(tenant.admin)
    conversation_id = await _conversation(world, admin)
    path = f"/api/conversations/{conversation_id}/messages"
    shipped = await admin.post(
        path,
        {
            "template": {
                "name": "order_shipped",
                "language": "en_US",
                "parameters": ["Ana", "#1234"],
                "header": {"kind": "image", "link": "https://shop.example.com/parcel.jpg"},
                "buttons": [{"index": 0, "parameter": "A1234"}],
            }
        },
    )
    assert shipped.status == 201, shipped.body
    assert shipped.data["text"] == "Good news, Ana! Order #1234 has shipped.\n\nFi.V Demo Shop"
    assert shipped.data["details"]["header_kind"] == "image"
    offer = await admin.post(
        path,
        {
            "template": {
                "name": "welcome_offer",
                "language": "en_US",
                "parameters": ["10%"],
                "header": {"text": "Ana"},
                "buttons": [{"index": 0, "parameter": "WELCOME10"}],
            }
        },
    )
    assert offer.status == 201, offer.body
    assert offer.data["text"] == "Welcome, Ana!\n\nUse the code below for 10% off your first order."
    assert [t["components"] for t in _template_sends(world)] == [
        [
            {
                "type": "header",
                "parameters": [{"type": "image", "image": {"link": "https://shop.example.com/parcel.jpg"}}],
            },
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#1234"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A1234"}]},
        ],
        [
            {"type": "header", "parameters": [{"type": "text", "text": "Ana"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "10%"}]},
            {
                "type": "button",
                "sub_type": "copy_code",
                "index": "0",
                "parameters": [{"type": "coupon_code", "coupon_code": "WELCOME10"}],
            },
        ],
    ]


@pytest.mark.parametrize(
    ("template", "field", "message"),
    [
        ({"name": "no_such_thing", "language": "en_US"}, "body.template.name", "no such template"),
        ({"name": "appointment_reminder", "language": "es"}, "body.template.language", "en_US, pt_BR"),
        ({"name": "spring_sale", "language": "en_US", "parameters": ["50%"]}, "body.template.name", "REJECTED"),
        ({"name": "payment_due", "language": "en_US"}, "body.template.name", "PENDING"),
        (
            {"name": "appointment_reminder", "language": "en_US", "parameters": {"first_name": "Ana"}},
            "body.template.parameters.date",
            "missing",
        ),
        (
            {"name": "appointment_reminder", "language": "en_US", "parameters": {"first_name": "Ana", "date": " "}},
            "body.template.parameters.date",
            "blank",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": ["Ana", "#1", "extra"]},
            "body.template.parameters.3",
            "not a parameter",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": {"name": "Ana"}},
            "body.template.parameters",
            "positional",
        ),
        (
            {
                "name": "order_shipped",
                "language": "en_US",
                "parameters": ["Ana", "#1"],
                "buttons": [{"index": 0, "parameter": "A1"}],
            },
            "body.template.header",
            "missing: a image header",
        ),
        (
            {
                "name": "order_shipped",
                "language": "en_US",
                "parameters": ["Ana", "#1"],
                "header": {"kind": "image", "id": "123"},
            },
            "body.template.buttons[index=0]",
            "missing",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": ["Ana", "#1"], "header": {"text": "x"}},
            "body.template.header",
            "takes no value",
        ),
    ],
)
async def test_a_template_that_does_not_fit_is_refused_before_anything_is_stored_or_sent(
    template: dict[str, Any], field: str, message: str, world: World, tenant: TenantPeople, db: Database
) -> None:
    admin = await world.browsers.signed_in(tenant.admin)
    conversation_id = await _conversation(world, admin)
    answer = await admin.post(f"/api/conversations/{conversation_id}/messages", {"template": template})
    assert (answer.status, answer.code) == (422, "TEMPLATE_MISMATCH"), answer.body
    problems = {p["field"]: p["message"] for p in answer.body["error"]["details"]}
    assert message in problems[field], problems
    assert _template_sends(world) == []
    assert world.simulator.rejections == []
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select count(*) from messages where direction = 'outbound'") == 0


async def test_a_number_without_a_business_account_sends_no_template(
    world: World, tenant: TenantPeople, owner: Any
) -> None:
    admin = await world.browsers.signed_in(tenant.admin)
    conversation_id = await _conversation(world, admin)
    cleared = await admin.patch(f"/api/channels/{world.channel_id}", {"waba_id": None})
    assert cleared.data["waba_id"] is None
    answer = await admin.post(
        f"/api/conversations/{conversation_id}/messages",
        {"template": {"name": "order_update", "language": "en_US", "parameters": ["Ana", "#1"]}},
    )
    assert (answer.status, answer.body["error"]["details"]) == (409, {"reason": "no_waba_id"})
    assert _template_sends(world) == []


async def test_a_failed_template_is_sent_again_as_it_was_checked(world: World, tenant: TenantPeople) -> None:
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id = await _conversation(world, agent)
    assert (await agent.post(f"/api/conversations/{conversation_id}/assign", {})).status == 200
    world.simulator.fail_next(131026)
    body = {
        "template": {
            "name": "appointment_reminder",
            "language": "en_US",
            "parameters": {"first_name": "Ana", "date": "May 3"},
        }
    }
    failed = await agent.post(f"/api/conversations/{conversation_id}/messages", body)
    assert failed.status == 201, failed.body
    assert (failed.data["status"], failed.data["error"]["code"]) == ("failed", 131026)
    again = await agent.post(f"/api/messages/{failed.data['id']}/retry")
    assert again.status == 200, again.body
    assert (again.data["id"], again.data["status"]) == (failed.data["id"], "sent")
    assert again.data["text"] == "Appointment reminder\n\nHi Ana, this is a reminder of your appointment on May 3."
    [sent] = _template_sends(world)
    assert sent["components"] == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": "Ana"},
                {"type": "text", "parameter_name": "date", "text": "May 3"},
            ],
        }
    ]


async def test_the_business_account_id_is_set_checked_and_cleared_by_admins(world: World, tenant: TenantPeople) -> None:
    admin = await world.browsers.signed_in(tenant.admin)
    path = f"/api/channels/{world.channel_id}"
    assert (await admin.get(path)).data["waba_id"] == DEFAULT_WABA_ID
    for bad in ("12a45678", "1234", "1" * 33, ""):
        assert (await admin.patch(path, {"waba_id": bad})).code == "VALIDATION_ERROR", bad
    assert (await admin.patch(path, {"waba_id": " 123456789 "})).data["waba_id"] == "123456789"
    assert (await admin.patch(path, {"display_number": "+1 555 0101"})).data["waba_id"] == "123456789"
    assert (await admin.patch(path, {"waba_id": None})).data["waba_id"] is None
