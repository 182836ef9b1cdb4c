"""Queues and their members through the API: roles, agents' sight, conflicts, bad input, other tenants."""

from __future__ import annotations

import uuid

from fiv_console.db.pool import Database, tenant_tx
from tests.api import Browsers, TenantPeople


async def _count(db: Database, tenant: TenantPeople, sql: str) -> int:
    async with tenant_tx(db, tenant.id) as conn:
        return int(await conn.fetchval(sql))


async def test_roles_on_queues(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    supervisor = await browsers.signed_in(tenant.supervisor)
    agent = await browsers.signed_in(tenant.agent)

    assert (await supervisor.post("/api/queues", {"name": "Sales"})).code == "FORBIDDEN"
    assert (await agent.post("/api/queues", {"name": "Sales"})).code == "FORBIDDEN"
    created = await admin.post("/api/queues", {"name": " Sales ", "priority": 10, "sla_seconds": 60})
    assert created.status == 201
    sales = created.data
    assert (sales["name"], sales["priority"], sales["sla_seconds"], sales["active"]) == ("Sales", 10, 60, True)

    everything = await supervisor.get("/api/queues?sort=-priority")
    assert [q["id"] for q in everything.data] == [sales["id"], str(tenant.queue_id)]
    assert everything.body["pagination"] == {"page": 1, "limit": 25, "total": 2, "hasNext": False}
    # The agent is a member of the tenant's first queue only: Sales is not theirs to see.
    own = await agent.get("/api/queues")
    assert [q["id"] for q in own.data] == [str(tenant.queue_id)]
    assert own.body["pagination"]["total"] == 1
    assert (await agent.get(f"/api/queues/{tenant.queue_id}")).status == 200
    assert (await agent.get(f"/api/queues/{sales['id']}")).code == "NOT_FOUND"
    assert (await agent.get(f"/api/queues/{tenant.queue_id}/members")).code == "FORBIDDEN"

    # Supervisors run the queues (priority, SLA, open or closed); creating one is for admins.
    assert (await supervisor.patch(f"/api/queues/{sales['id']}", {"priority": 10})).data["priority"] == 10
    assert (await agent.patch(f"/api/queues/{tenant.queue_id}", {"priority": 1})).code == "FORBIDDEN"
    changed = await admin.patch(f"/api/queues/{sales['id']}", {"name": "Sales EU", "active": False})
    assert (changed.data["name"], changed.data["priority"], changed.data["active"]) == ("Sales EU", 10, False)
    assert [q["id"] for q in (await supervisor.get("/api/queues?active=false")).data] == [sales["id"]]
    assert [q["id"] for q in (await admin.get("/api/queues?q=eu")).data] == [sales["id"]]
    first = await admin.get("/api/queues?limit=1&page=2")
    assert first.body["pagination"] == {"page": 2, "limit": 1, "total": 2, "hasNext": False}

    actions = {e["action"] for e in (await admin.get("/api/audit-log?limit=100")).data}
    assert {"queue.created", "queue.changed"} <= actions


async def test_staff_manage_members_and_agents_see_their_new_queue(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    supervisor = await browsers.signed_in(tenant.supervisor)
    newcomer = await browsers.signed_in(tenant.other_agent)
    path = f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}"
    assert (await newcomer.get("/api/queues")).data == []

    assert (await newcomer.put(path, {})).code == "FORBIDDEN"
    joined = await supervisor.put(path, {"max_concurrent_override": 2})
    assert joined.status == 200
    assert (joined.data["user_id"], joined.data["role"], joined.data["max_concurrent_override"]) == (
        str(tenant.other_agent.id),
        "agent",
        2,
    )
    members = await supervisor.get(f"/api/queues/{tenant.queue_id}/members")
    assert {m["user_id"] for m in members.data} == {str(tenant.agent.id), str(tenant.other_agent.id)}
    assert members.body["pagination"]["total"] == 2
    assert [q["id"] for q in (await newcomer.get("/api/queues")).data] == [str(tenant.queue_id)]

    # PUT replaces the membership: without an override the agent's own capacity applies again.
    assert (await admin.put(path, {})).data["max_concurrent_override"] is None
    assert (await admin.delete(path)).data["user_id"] == str(tenant.other_agent.id)
    assert (await admin.delete(path)).code == "NOT_FOUND"
    assert (await newcomer.get(f"/api/queues/{tenant.queue_id}")).code == "NOT_FOUND"
    assert (await admin.get(f"/api/queues/{uuid.uuid4()}/members")).code == "NOT_FOUND"
    assert (await admin.put(f"/api/queues/{tenant.queue_id}/members/{uuid.uuid4()}", {})).code == "NOT_FOUND"


async def test_queue_names_are_unique_ignoring_case(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    sales = (await admin.post("/api/queues", {"name": "Sales"})).data
    duplicate = await admin.post("/api/queues", {"name": "SALES"})
    assert duplicate.status == 409
    assert duplicate.code == "CONFLICT"
    support = (await admin.get(f"/api/queues/{tenant.queue_id}")).data
    assert (await admin.patch(f"/api/queues/{tenant.queue_id}", {"name": "sales"})).code == "CONFLICT"
    assert (await admin.get(f"/api/queues/{tenant.queue_id}")).data == support
    # Renaming a queue to its own name in another case is not a conflict with itself.
    assert (await admin.patch(f"/api/queues/{sales['id']}", {"name": "sAles"})).data["name"] == "sAles"


async def test_bad_queue_input_is_a_400_and_writes_nothing(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    bodies = [
        {"name": ""},
        {"name": "   "},
        {"name": "N" * 101},
        {"name": "nul\u0000byte"},
        {"name": "Q", "priority": "high"},
        {"name": "Q", "priority": 1001},
        {"name": "Q", "sla_seconds": 0},
        {"name": "Q", "tenant_id": str(uuid.uuid4())},
        {"name": ["Q"]},
        {},
    ]
    for body in bodies:
        answer = await admin.post("/api/queues", body)
        assert answer.status == 400, body
        assert answer.code == "VALIDATION_ERROR"
        assert answer.body["error"]["details"][0]["field"].startswith("body"), answer.body
    for change in ({"name": "x" * 500}, {"active": "perhaps"}, {"sla_seconds": 10**12}, {"color": "red"}):
        assert (await admin.patch(f"/api/queues/{tenant.queue_id}", change)).status == 400, change
    member = f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}"
    for membership in ({"max_concurrent_override": 0}, {"max_concurrent_override": "two"}, {"role": "admin"}):
        assert (await admin.put(member, membership)).status == 400, membership
    assert (await admin.put(member, data=b"", headers={"Content-Type": "application/json"})).status == 400
    for query in ("sort=password_hash", "limit=101", "active=perhaps", "q=" + "x" * 101, "q=%00", "page=0"):
        answer = await admin.get(f"/api/queues?{query}")
        assert answer.status == 400, query
        assert answer.body["error"]["details"][0]["field"].startswith("query."), answer.body
    assert (await admin.get("/api/queues/not-a-uuid")).code == "VALIDATION_ERROR"

    assert await _count(db, tenant, "select count(*) from queues") == 1
    assert await _count(db, tenant, "select count(*) from queue_members") == 1
    assert (await admin.get(f"/api/queues/{tenant.queue_id}")).data["sla_seconds"] == 300


async def test_another_tenants_queues_and_users_are_not_found(
    browsers: Browsers, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    theirs = other_tenant.queue_id
    assert (await admin.get(f"/api/queues/{theirs}")).code == "NOT_FOUND"
    assert (await admin.patch(f"/api/queues/{theirs}", {"name": "Taken over"})).code == "NOT_FOUND"
    assert (await admin.get(f"/api/queues/{theirs}/members")).code == "NOT_FOUND"
    assert (await admin.put(f"/api/queues/{theirs}/members/{tenant.agent.id}", {})).code == "NOT_FOUND"
    assert (await admin.delete(f"/api/queues/{theirs}/members/{other_tenant.agent.id}")).code == "NOT_FOUND"
    # Their agent into our queue: the composite foreign key refuses it, and that is a 404 too, not a 500.
    assert (await admin.put(f"/api/queues/{tenant.queue_id}/members/{other_tenant.agent.id}", {})).code == ("NOT_FOUND")
    assert all(q["id"] != str(theirs) for q in (await admin.get("/api/queues")).data)
    async with tenant_tx(db, other_tenant.id) as conn:
        assert await conn.fetchval("select name from queues where id = $1", theirs) != "Taken over"
        assert await conn.fetchval("select count(*) from queue_members") == 1


async def test_an_agent_api_token_sees_no_queue(browsers: Browsers, tenant: TenantPeople) -> None:
    """An agent token belongs to no person, so it is a member of nothing: it sees none, never all."""
    admin = await browsers.signed_in(tenant.admin)
    secret = (await admin.post("/api/tokens", {"name": "bot", "role": "agent"})).data["secret"]
    bot = await browsers.new(bearer=secret)
    listed = await bot.get("/api/queues")
    assert (listed.data, listed.body["pagination"]["total"]) == ([], 0)
    assert (await bot.get(f"/api/queues/{tenant.queue_id}")).code == "NOT_FOUND"


async def test_queues_need_a_sign_in(browsers: Browsers, tenant: TenantPeople) -> None:
    anonymous = await browsers.new()
    queue, member = f"/api/queues/{tenant.queue_id}", f"/api/queues/{tenant.queue_id}/members/{tenant.agent.id}"
    calls = [
        ("GET", "/api/queues"),
        ("POST", "/api/queues"),
        ("GET", queue),
        ("PATCH", queue),
        ("GET", f"{queue}/members"),
        ("PUT", member),
        ("DELETE", member),
    ]
    for method, path in calls:
        answer = await anonymous.call(method, path, json={"name": "X"} if method != "GET" else None)
        assert (answer.status, answer.code) == (401, "UNAUTHENTICATED"), (method, path)


async def test_business_hours_and_the_out_of_hours_message_are_set_checked_and_cleared(
    browsers: Browsers, tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    url = f"/api/queues/{tenant.queue_id}"
    hours = {"mon": [["09:00", "18:00"]], "sat": [["10:00", "14:00"]]}
    changed = await admin.patch(url, {"business_hours": hours, "out_of_hours_message": " We open at 9. "})
    assert (changed.data["business_hours"], changed.data["out_of_hours_message"]) == (hours, "We open at 9.")
    # Another change leaves them as they are; null clears them.
    assert (await admin.patch(url, {"priority": 3})).data["business_hours"] == hours
    cleared = await admin.patch(url, {"business_hours": None, "out_of_hours_message": None})
    assert (cleared.data["business_hours"], cleared.data["out_of_hours_message"]) == (None, None)

    refused = await admin.patch(url, {"business_hours": {"mon": [["18:00", "09:00"]]}})
    assert refused.code == "VALIDATION_ERROR"
    assert "end after it starts" in str(refused.body["error"])
    assert (await admin.patch(url, {"business_hours": {"funday": [["09:00", "10:00"]]}})).code == "VALIDATION_ERROR"
    assert (await admin.patch(url, {"out_of_hours_message": ""})).code == "VALIDATION_ERROR"
    created = await admin.post("/api/queues", {"name": "Night", "business_hours": {"fri": [["20:00", "24:00"]]}})
    assert created.data["business_hours"] == {"fri": [["20:00", "24:00"]]}
