"""Users, agents' status, tokens and the audit log through the API: who may do what, and bad input."""

from __future__ import annotations

import uuid

from tests.api import Browsers, TenantPeople


async def test_roles_on_users(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    supervisor = await browsers.signed_in(tenant.supervisor)
    agent = await browsers.signed_in(tenant.agent)
    new_user = {"email": "fresh@a.example", "name": "Fresh", "role": "agent", "password": "long enough!"}

    listed = await supervisor.get("/api/users?role=agent&limit=10")
    assert listed.status == 200
    assert {u["id"] for u in listed.data} == {str(tenant.agent.id), str(tenant.other_agent.id)}
    assert listed.body["pagination"] == {"page": 1, "limit": 10, "total": 2, "hasNext": False}
    assert (await agent.get("/api/users")).status == 403
    assert (await agent.get(f"/api/users/{tenant.agent.id}")).status == 403

    assert (await supervisor.post("/api/users", new_user)).status == 403
    created = await admin.post("/api/users", new_user)
    assert created.status == 201
    assert created.data["email"] == "fresh@a.example"
    assert "password" not in created.data

    assert (await supervisor.patch(f"/api/users/{tenant.agent.id}", {"name": "X"})).status == 403
    renamed = await admin.patch(f"/api/users/{tenant.agent.id}", {"name": "Renamed", "max_concurrent": 5})
    assert renamed.data["name"] == "Renamed"
    assert renamed.data["max_concurrent"] == 5
    assert (await supervisor.get(f"/api/users/{tenant.agent.id}")).data["name"] == "Renamed"


async def test_users_pagination_and_search(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    first = await admin.get("/api/users?limit=3&page=1")
    second = await admin.get("/api/users?limit=3&page=2")
    assert first.body["pagination"] == {"page": 1, "limit": 3, "total": 4, "hasNext": True}
    assert second.body["pagination"] == {"page": 2, "limit": 3, "total": 4, "hasNext": False}
    assert len({u["id"] for u in first.data + second.data}) == 4
    # `_` and `%` are literal in search, not wildcards.
    assert (await admin.get("/api/users?q=%25")).data == []
    found = await admin.get(f"/api/users?q={tenant.supervisor.email[:12].upper()}")
    assert [u["id"] for u in found.data] == [str(tenant.supervisor.id)]


async def test_bad_input_is_a_field_level_400_and_writes_nothing(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    cases = [
        {"email": "not-an-email", "name": "N", "role": "agent", "password": "long enough!"},
        {"email": "ok@a.example", "name": "N", "role": "boss", "password": "long enough!"},
        {"email": "ok@a.example", "name": "N", "role": "agent", "password": "short"},
        {"email": "ok@a.example", "name": "N" * 5000, "role": "agent", "password": "long enough!"},
        {"email": "ok@a.example", "name": "N", "role": "agent", "password": "long enough!", "is_root": True},
        {"email": 42, "name": "N", "role": "agent", "password": "long enough!"},
    ]
    for body in cases:
        answer = await admin.post("/api/users", body)
        assert answer.status == 400, body
        assert answer.code == "VALIDATION_ERROR"
        assert answer.body["error"]["details"][0]["field"].startswith("body.")
        assert "long enough" not in str(answer.body)
    not_json = await admin.post("/api/users", data=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status == 400
    form = await admin.post("/api/users", data={"email": "ok@a.example"})
    assert form.status == 400
    assert (await admin.get("/api/users?limit=101")).status == 400
    assert (await admin.get("/api/users?sort=password_hash")).status == 400
    assert (await admin.get("/api/users?page=1&page=2")).status == 400
    assert (await admin.get("/api/users/not-a-uuid")).status == 400
    assert all(u["email"] != "ok@a.example" for u in (await admin.get("/api/users?limit=100")).data)


async def test_a_duplicate_email_is_a_conflict(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    answer = await admin.post(
        "/api/users", {"email": tenant.agent.email.upper(), "name": "Dup", "role": "agent", "password": "long enough!"}
    )
    assert answer.status == 409
    assert answer.code == "CONFLICT"


async def test_admins_cannot_lock_themselves_out(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    assert (await admin.patch(f"/api/users/{tenant.admin.id}", {"disabled": True})).status == 403
    assert (await admin.patch(f"/api/users/{tenant.admin.id}", {"role": "agent"})).status == 403
    assert (await admin.get("/api/me")).status == 200


async def test_agents_choose_their_status(browsers: Browsers, tenant: TenantPeople) -> None:
    agent = await browsers.signed_in(tenant.agent)
    assert (await agent.get("/api/agents/me/status")).data["status"] == "offline"
    assert (await agent.put("/api/agents/me/status", {"status": "away"})).data["status"] == "away"
    assert (await agent.put("/api/agents/me/status", {"status": "busy"})).status == 400
    supervisor = await browsers.signed_in(tenant.supervisor)
    assert (await supervisor.get(f"/api/users/{tenant.agent.id}")).data["status"] == "away"


async def test_tokens_and_audit_log_are_for_admins(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    supervisor = await browsers.signed_in(tenant.supervisor)
    agent = await browsers.signed_in(tenant.agent)
    for api in (supervisor, agent):
        assert (await api.get("/api/tokens")).status == 403
        assert (await api.post("/api/tokens", {"name": "x", "role": "agent"})).status == 403
        assert (await api.get("/api/audit-log")).status == 403
    assert (await admin.get("/api/tokens")).status == 200
    assert (await admin.get("/api/audit-log?action=login.succeeded")).status == 200
    assert (await admin.delete(f"/api/tokens/{uuid.uuid4()}")).status == 404


async def test_another_tenants_ids_are_not_found(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    foreign_user = other_tenant.agent.id
    assert (await admin.get(f"/api/users/{foreign_user}")).status == 404
    assert (await admin.patch(f"/api/users/{foreign_user}", {"name": "Mine now"})).status == 404
    other_admin = await browsers.signed_in(other_tenant.admin)
    token = await other_admin.post("/api/tokens", {"name": "theirs", "role": "agent"})
    assert (await admin.delete(f"/api/tokens/{token.data['id']}")).status == 404
    assert (await other_admin.get(f"/api/users/{foreign_user}")).data["name"] != "Mine now"


async def test_text_with_a_nul_character_is_refused_not_a_server_error(
    browsers: Browsers, tenant: TenantPeople
) -> None:
    """PostgreSQL text cannot hold U+0000: it must be a 400 at the boundary, never a 500 from the database."""
    anonymous = await browsers.new()
    assert (await anonymous.post("/api/auth/login", {"email": "a\u0000@b.example", "password": "x"})).status == 400
    admin = await browsers.signed_in(tenant.admin)
    assert (await admin.patch(f"/api/users/{tenant.agent.id}", {"name": "bad\u0000name"})).status == 400
    assert (await admin.get("/api/users?q=%00")).status == 400
    assert (await admin.get("/api/audit-log?action=%00")).status == 400
    assert (await admin.post("/api/tokens", {"name": "t\u0000", "role": "agent"})).status == 400
