"""Contacts through the API: search, agents' sight (contacts of conversations they can see), renames."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from fiv_console.db.pool import Connection, Database, tenant_tx
from tests.api import Browsers, TenantPeople

_CHANNEL_SQL = """
insert into channels (tenant_id, phone_number_id, display_number, default_queue_id) values ($1, $2, '+1 555', $3)
returning id
"""
_CONTACT_SQL = "insert into contacts (tenant_id, wa_id, profile_name, name) values ($1, $2, $3, $4) returning id"
_CONVERSATION_SQL = """
insert into conversations (tenant_id, channel_id, contact_id, queue_id, agent_id, status, assigned_at)
values ($1, $2, $3, $4, $5, $6, case when $6 = 'assigned' then now() end)
"""


@dataclass(frozen=True)
class Contacts:
    """Tenant A's contacts, by what the agent (a member of the tenant's first queue only) may see."""

    waiting_in_agents_queue: uuid.UUID
    assigned_to_agent: uuid.UUID
    assigned_to_colleague: uuid.UUID
    waiting_elsewhere: uuid.UUID
    without_conversation: uuid.UUID


async def _contact(
    conn: Connection, tenant_id: uuid.UUID, wa_id: str, profile: str | None, name: str | None
) -> uuid.UUID:
    contact_id: uuid.UUID = await conn.fetchval(_CONTACT_SQL, tenant_id, wa_id, profile, name)
    return contact_id


async def _seed(db: Database, tenant: TenantPeople) -> Contacts:
    async with tenant_tx(db, tenant.id) as conn:
        elsewhere = await conn.fetchval(
            "insert into queues (tenant_id, name) values ($1, 'Elsewhere') returning id", tenant.id
        )
        channel = await conn.fetchval(_CHANNEL_SQL, tenant.id, str(random.randrange(10**14, 10**15)), tenant.queue_id)
        made = Contacts(
            waiting_in_agents_queue=await _contact(conn, tenant.id, "5511900000001", "Ana 100%", None),
            assigned_to_agent=await _contact(conn, tenant.id, "5511900000002", "bruno_b", "Bruno Barros"),
            assigned_to_colleague=await _contact(conn, tenant.id, "5511900000003", "Carla", None),
            waiting_elsewhere=await _contact(conn, tenant.id, "4930000000004", None, "Dieter"),
            without_conversation=await _contact(conn, tenant.id, "4930000000005", "Eva", None),
        )
        for contact, queue, agent, status in (
            (made.waiting_in_agents_queue, tenant.queue_id, None, "waiting"),
            (made.assigned_to_agent, elsewhere, tenant.agent.id, "assigned"),
            (made.assigned_to_colleague, tenant.queue_id, tenant.other_agent.id, "assigned"),
            (made.waiting_elsewhere, elsewhere, None, "waiting"),
        ):
            await conn.execute(_CONVERSATION_SQL, tenant.id, channel, contact, queue, agent, status)
    return made


async def test_staff_list_and_search_every_contact(browsers: Browsers, db: Database, tenant: TenantPeople) -> None:
    seeded = await _seed(db, tenant)
    supervisor = await browsers.signed_in(tenant.supervisor)
    everyone = await supervisor.get("/api/contacts")
    # By the name the team gave, else the profile name: what the console shows.
    assert [c["name"] or c["profile_name"] for c in everyone.data] == [
        "Ana 100%",
        "Bruno Barros",
        "Carla",
        "Dieter",
        "Eva",
    ]
    assert everyone.body["pagination"]["total"] == 5

    async def found(query: str) -> list[str]:
        answer = await supervisor.get(f"/api/contacts?{query}")
        return [c["id"] for c in answer.data]

    assert await found("q=barros") == [str(seeded.assigned_to_agent)]
    assert await found("q=BRUNO_") == [str(seeded.assigned_to_agent)]
    assert await found("q=49300") == [str(seeded.waiting_elsewhere), str(seeded.without_conversation)]
    # `%` and `_` are themselves in a search, never wildcards.
    assert await found("q=%25") == [str(seeded.waiting_in_agents_queue)]
    assert await found("q=a_a") == []
    assert await found("sort=name&limit=2&page=3") == [str(seeded.without_conversation)]
    admin = await browsers.signed_in(tenant.admin)
    assert (await admin.get(f"/api/contacts/{seeded.without_conversation}")).data["wa_id"] == "4930000000005"


async def test_agents_see_and_rename_only_contacts_in_their_sight(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    seeded = await _seed(db, tenant)
    agent = await browsers.signed_in(tenant.agent)
    visible = {str(seeded.waiting_in_agents_queue), str(seeded.assigned_to_agent)}
    listed = await agent.get("/api/contacts?limit=100")
    assert {c["id"] for c in listed.data} == visible
    assert listed.body["pagination"]["total"] == 2
    assert (await agent.get("/api/contacts?q=carla")).data == []

    renamed = await agent.patch(f"/api/contacts/{seeded.waiting_in_agents_queue}", {"name": " Ana Souza "})
    assert renamed.data["name"] == "Ana Souza"
    assert renamed.data["profile_name"] == "Ana 100%"
    assert (await agent.get(f"/api/contacts/{seeded.assigned_to_agent}")).status == 200
    for hidden in (seeded.assigned_to_colleague, seeded.waiting_elsewhere, seeded.without_conversation):
        assert (await agent.get(f"/api/contacts/{hidden}")).code == "NOT_FOUND"
        assert (await agent.patch(f"/api/contacts/{hidden}", {"name": "Mine"})).code == "NOT_FOUND"
    supervisor = await browsers.signed_in(tenant.supervisor)
    assert all(c["name"] != "Mine" for c in (await supervisor.get("/api/contacts")).data)


async def test_staff_rename_and_clear_names(browsers: Browsers, db: Database, tenant: TenantPeople) -> None:
    seeded = await _seed(db, tenant)
    supervisor = await browsers.signed_in(tenant.supervisor)
    path = f"/api/contacts/{seeded.assigned_to_agent}"
    assert (await supervisor.patch(path, {"name": "Bruno B."})).data["name"] == "Bruno B."
    cleared = await supervisor.patch(path, {"name": None})
    assert (cleared.data["name"], cleared.data["profile_name"]) == (None, "bruno_b")
    assert [c["id"] for c in (await supervisor.get("/api/contacts?sort=-updated_at&limit=1")).data] == [
        str(seeded.assigned_to_agent)
    ]
    # Contacts come from WhatsApp only: there is no create.
    assert (await supervisor.post("/api/contacts", {"wa_id": "1"})).status == 405


async def test_bad_contact_input_is_a_400_and_writes_nothing(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    seeded = await _seed(db, tenant)
    admin = await browsers.signed_in(tenant.admin)
    path = f"/api/contacts/{seeded.waiting_elsewhere}"
    for body in (
        {},
        {"name": ""},
        {"name": "n" * 201},
        {"name": "a\u0000b"},
        {"name": 42},
        {"name": "Ok", "wa_id": "999"},
        ["name"],
    ):
        answer = await admin.patch(path, body)
        assert answer.status == 400, body
        assert answer.body["error"]["details"][0]["field"].startswith("body"), answer.body
    for query in ("sort=wa_id; drop table contacts", "q=", "q=%00", "limit=1000", "name=x"):
        answer = await admin.get(f"/api/contacts?{query}")
        assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), query
    assert (await admin.get("/api/contacts/123")).status == 400
    assert (await admin.get(path)).data["name"] == "Dieter"


async def test_another_tenants_contacts_are_not_found(
    browsers: Browsers, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    theirs = await _seed(db, other_tenant)
    admin = await browsers.signed_in(tenant.admin)
    assert (await admin.get(f"/api/contacts/{theirs.without_conversation}")).code == "NOT_FOUND"
    assert (await admin.patch(f"/api/contacts/{theirs.without_conversation}", {"name": "Mine"})).code == "NOT_FOUND"
    assert (await admin.get("/api/contacts")).data == []
    async with tenant_tx(db, other_tenant.id) as conn:
        assert await conn.fetchval("select name from contacts where id = $1", theirs.without_conversation) is None


async def test_contacts_need_a_sign_in(browsers: Browsers) -> None:
    anonymous = await browsers.new()
    path = f"/api/contacts/{uuid.uuid4()}"
    for method, target in (("GET", "/api/contacts"), ("GET", path), ("PATCH", path)):
        answer = await anonymous.call(method, target, json={"name": "X"} if method == "PATCH" else None)
        assert (answer.status, answer.code) == (401, "UNAUTHENTICATED"), (method, target)


async def test_a_rename_is_announced_to_those_who_follow_the_contacts_conversations(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    """Open consoles show the contact's name in the list and the header: they learn the new one at once."""
    seeded = await _seed(db, tenant)
    supervisor = await browsers.signed_in(tenant.supervisor)
    async with tenant_tx(db, tenant.id) as conn:
        before = await conn.fetchval("select coalesce(max(seq), 0) from events")
    assert (await supervisor.patch(f"/api/contacts/{seeded.assigned_to_agent}", {"name": "Bruno B."})).status == 200
    assert (await supervisor.patch(f"/api/contacts/{seeded.without_conversation}", {"name": "Eva E."})).status == 200
    again = await supervisor.patch(f"/api/contacts/{seeded.assigned_to_agent}", {"name": "Bruno B."})
    assert (again.status, again.data["name"]) == (200, "Bruno B.")  # the same name: nothing to tell
    async with tenant_tx(db, tenant.id) as conn:
        announced = await conn.fetch(
            "select type, audience_user_ids, payload from events where seq > $1 order by seq", before
        )
    [event] = announced  # the contact without an open conversation is shown nowhere live
    assert event["type"] == "conversation.updated"
    assert event["audience_user_ids"] == [tenant.agent.id]
    assert event["payload"]["conversation"]["contact"]["name"] == "Bruno B."
