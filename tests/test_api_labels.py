"""Labels through the API: everyone reads, staff write, names unique per tenant ignoring case."""

from __future__ import annotations

import uuid

from fiv_console.db.pool import Database, tenant_tx
from tests.api import Browsers, TenantPeople


async def test_everyone_reads_and_staff_write(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    supervisor = await browsers.signed_in(tenant.supervisor)
    agent = await browsers.signed_in(tenant.agent)

    assert (await agent.post("/api/labels", {"name": "VIP"})).code == "FORBIDDEN"
    created = await supervisor.post("/api/labels", {"name": " VIP ", "color": "#ffd700"})
    assert created.status == 201
    vip = created.data
    assert (vip["name"], vip["color"]) == ("VIP", "#ffd700")
    assert (await admin.post("/api/labels", {"name": "billing"})).data["color"] == "#607d8b"
    path = f"/api/labels/{vip['id']}"

    listed = await agent.get("/api/labels")
    assert [label["name"] for label in listed.data] == ["billing", "VIP"]
    assert listed.body["pagination"] == {"page": 1, "limit": 25, "total": 2, "hasNext": False}
    assert [label["name"] for label in (await agent.get("/api/labels?q=vi")).data] == ["VIP"]
    assert (await agent.get(path)).data == vip

    assert (await agent.patch(path, {"color": "#000000"})).code == "FORBIDDEN"
    assert (await agent.delete(path)).code == "FORBIDDEN"
    changed = await admin.patch(path, {"color": "#000000"})
    assert (changed.data["name"], changed.data["color"]) == ("VIP", "#000000")
    assert (await supervisor.delete(path)).data["id"] == vip["id"]
    assert (await agent.get(path)).code == "NOT_FOUND"
    assert (await admin.delete(path)).code == "NOT_FOUND"


async def test_label_names_are_unique_ignoring_case(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    assert (await admin.post("/api/labels", {"name": "Urgent"})).status == 201
    duplicate = await admin.post("/api/labels", {"name": "URGENT"})
    assert (duplicate.status, duplicate.code) == (409, "CONFLICT")
    other = (await admin.post("/api/labels", {"name": "Later"})).data
    assert (await admin.patch(f"/api/labels/{other['id']}", {"name": "urgent"})).code == "CONFLICT"
    assert (await admin.patch(f"/api/labels/{other['id']}", {"name": "LATER"})).data["name"] == "LATER"
    theirs = await browsers.signed_in(other_tenant.admin)
    assert (await theirs.post("/api/labels", {"name": "urgent"})).status == 201


async def test_bad_label_input_is_a_400_and_writes_nothing(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    bodies = [
        {"name": ""},
        {"name": "n" * 51},
        {"name": "a\u0000b"},
        {"name": "VIP", "color": "gold"},
        {"name": "VIP", "color": "#FFD700"},
        {"name": "VIP", "color": "#ffd70"},
        {"name": True},
        {"name": "VIP", "conversation_id": str(uuid.uuid4())},
        {"color": "#ffd700"},
    ]
    for body in bodies:
        answer = await admin.post("/api/labels", body)
        assert answer.status == 400, body
        assert answer.body["error"]["details"][0]["field"].startswith("body"), answer.body
    label = (await admin.post("/api/labels", {"name": "VIP"})).data
    for change in ({"name": " "}, {"color": 255}, {"tenant_id": str(tenant.id)}):
        assert (await admin.patch(f"/api/labels/{label['id']}", change)).status == 400, change
    for query in ("q=%00", "limit=abc", "sort=name_key"):
        assert (await admin.get(f"/api/labels?{query}")).code == "VALIDATION_ERROR", query
    # Half an emoji (JSON escapes a lone surrogate so; no database could store it) and bytes that are not UTF-8.
    for raw in (b'{"name": "VIP \\ud83d"}', b'{"\\udc00": 1}', b'{"name": "caf\xe9"}'):
        answer = await admin.post("/api/labels", data=raw, headers={"Content-Type": "application/json"})
        assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), raw
        assert answer.body["error"]["message"] == "the body is not valid JSON"
    # A query string is read as UTF-8 with what is not replaced.
    assert (await admin.get("/api/labels?q=%ED%A0%80%FF")).data == []
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select count(*) from labels") == 1
    assert (await admin.get(f"/api/labels/{label['id']}")).data == label


async def test_another_tenants_labels_are_not_found(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    theirs_api = await browsers.signed_in(other_tenant.admin)
    theirs = (await theirs_api.post("/api/labels", {"name": "Theirs"})).data
    admin = await browsers.signed_in(tenant.admin)
    path = f"/api/labels/{theirs['id']}"
    assert (await admin.get(path)).code == "NOT_FOUND"
    assert (await admin.patch(path, {"name": "Mine"})).code == "NOT_FOUND"
    assert (await admin.delete(path)).code == "NOT_FOUND"
    assert (await admin.get("/api/labels")).data == []
    assert (await theirs_api.get(path)).data == theirs


async def test_labels_need_a_sign_in(browsers: Browsers) -> None:
    anonymous = await browsers.new()
    path = f"/api/labels/{uuid.uuid4()}"
    for method, target in (("GET", "/api/labels"), ("POST", "/api/labels"), ("GET", path), ("PATCH", path)):
        answer = await anonymous.call(method, target, json={"name": "X"} if method != "GET" else None)
        assert (answer.status, answer.code) == (401, "UNAUTHENTICATED"), (method, target)
    assert (await anonymous.delete(path)).status == 401
