"""Canned responses through the API: everyone reads, staff write, shortcuts unique per tenant."""

from __future__ import annotations

import uuid

from fiv_console.db.pool import Database, tenant_tx
from tests.api import Browsers, TenantPeople

GREETING = {"shortcut": "greeting", "title": "Hello", "body": "Hello! How can we help you today?\n"}


async def test_everyone_reads_and_staff_write(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    supervisor = await browsers.signed_in(tenant.supervisor)
    agent = await browsers.signed_in(tenant.agent)

    assert (await agent.post("/api/canned-responses", GREETING)).code == "FORBIDDEN"
    created = await supervisor.post("/api/canned-responses", GREETING)
    assert created.status == 201
    greeting = created.data
    assert (greeting["shortcut"], greeting["body"], greeting["created_by"]) == (
        "greeting",
        GREETING["body"],
        str(tenant.supervisor.id),
    )
    await admin.post("/api/canned-responses", {"shortcut": "bye_100", "title": "Goodbye", "body": "Bye!"})
    path = f"/api/canned-responses/{greeting['id']}"

    listed = await agent.get("/api/canned-responses")
    assert [c["shortcut"] for c in listed.data] == ["bye_100", "greeting"]
    assert listed.body["pagination"]["total"] == 2
    assert [c["shortcut"] for c in (await agent.get("/api/canned-responses?q=HELL")).data] == ["greeting"]
    assert [c["shortcut"] for c in (await agent.get("/api/canned-responses?q=e_1")).data] == ["bye_100"]
    assert (await agent.get("/api/canned-responses?q=e%25")).data == []
    assert (await agent.get(path)).data == greeting

    assert (await agent.patch(path, {"title": "Hi"})).code == "FORBIDDEN"
    assert (await agent.delete(path)).code == "FORBIDDEN"
    changed = await admin.patch(path, {"title": "Hi", "shortcut": "hi"})
    assert (changed.data["shortcut"], changed.data["title"], changed.data["body"]) == ("hi", "Hi", GREETING["body"])
    assert (await supervisor.delete(path)).data["id"] == greeting["id"]
    assert (await agent.get(path)).code == "NOT_FOUND"
    assert (await supervisor.delete(path)).code == "NOT_FOUND"


async def test_a_shortcut_is_unique_in_its_tenant_only(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    assert (await admin.post("/api/canned-responses", GREETING)).status == 201
    duplicate = await admin.post("/api/canned-responses", GREETING | {"title": "Another"})
    assert (duplicate.status, duplicate.code) == (409, "CONFLICT")
    other = (await admin.post("/api/canned-responses", GREETING | {"shortcut": "other"})).data
    assert (await admin.patch(f"/api/canned-responses/{other['id']}", {"shortcut": "greeting"})).code == "CONFLICT"
    theirs = await browsers.signed_in(other_tenant.admin)
    assert (await theirs.post("/api/canned-responses", GREETING)).status == 201


async def test_bad_canned_response_input_is_a_400_and_writes_nothing(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    bodies = [
        GREETING | {"shortcut": "Greeting"},
        GREETING | {"shortcut": "/greeting"},
        GREETING | {"shortcut": "g" * 33},
        GREETING | {"shortcut": ""},
        GREETING | {"title": "  "},
        GREETING | {"title": "t" * 101},
        GREETING | {"body": ""},
        GREETING | {"body": "b" * 4097},
        GREETING | {"body": "nul \u0000"},
        GREETING | {"body": {"text": "hi"}},
        GREETING | {"created_by": str(tenant.agent.id)},
        {"shortcut": "greeting"},
    ]
    for body in bodies:
        answer = await admin.post("/api/canned-responses", body)
        assert answer.status == 400, body
        assert answer.body["error"]["details"][0]["field"].startswith("body"), answer.body
    existing = (await admin.post("/api/canned-responses", GREETING)).data
    path = f"/api/canned-responses/{existing['id']}"
    for change in ({"shortcut": "has space"}, {"body": 1}, {"id": str(uuid.uuid4())}):
        assert (await admin.patch(path, change)).status == 400, change
    for query in ("q=" + "q" * 101, "q=%00", "sort=body", "limit=-1"):
        assert (await admin.get(f"/api/canned-responses?{query}")).code == "VALIDATION_ERROR", query
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select count(*) from canned_responses") == 1
    assert (await admin.get(path)).data == existing


async def test_another_tenants_canned_responses_are_not_found(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    theirs_api = await browsers.signed_in(other_tenant.supervisor)
    theirs = (await theirs_api.post("/api/canned-responses", GREETING)).data
    admin = await browsers.signed_in(tenant.admin)
    path = f"/api/canned-responses/{theirs['id']}"
    assert (await admin.get(path)).code == "NOT_FOUND"
    assert (await admin.patch(path, {"title": "Mine"})).code == "NOT_FOUND"
    assert (await admin.delete(path)).code == "NOT_FOUND"
    assert (await admin.get("/api/canned-responses")).data == []
    assert (await theirs_api.get(path)).data == theirs


async def test_canned_responses_need_a_sign_in(browsers: Browsers) -> None:
    anonymous = await browsers.new()
    path = f"/api/canned-responses/{uuid.uuid4()}"
    calls = (("GET", "/api/canned-responses"), ("POST", "/api/canned-responses"), ("GET", path))
    for method, target in (*calls, ("PATCH", path), ("DELETE", path)):
        answer = await anonymous.call(method, target, json=GREETING if method in ("POST", "PATCH") else None)
        assert (answer.status, answer.code) == (401, "UNAUTHENTICATED"), (method, target)
