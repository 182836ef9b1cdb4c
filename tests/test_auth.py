"""Signing in and out: sessions, fixation, CSRF, throttling, revocation, and tokens."""

from __future__ import annotations

import statistics
import time

from tests.api import PASSWORD, Browsers, TenantPeople


async def test_login_sets_a_session_and_me_answers(browsers: Browsers, tenant: TenantPeople) -> None:
    api = await browsers.new()
    answer = await api.sign_in(tenant.agent.email.upper(), PASSWORD, workspace=f" {tenant.workspace.upper()} ")
    assert answer.status == 200
    data = answer.data
    assert data["user"]["id"] == str(tenant.agent.id)
    assert data["role"] == "agent"
    assert data["workspace"] == tenant.workspace
    assert len(data["csrf_token"]) >= 32
    assert "password_hash" not in str(data)
    cookie = answer.headers["Set-Cookie"]
    assert "fiv_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    me = await api.get("/api/me")
    assert me.data["user"]["email"] == tenant.agent.email
    assert me.data["workspace"] == tenant.workspace
    assert me.data["csrf_token"] == data["csrf_token"]


async def test_unknown_email_and_wrong_password_get_the_same_answer(browsers: Browsers, tenant: TenantPeople) -> None:
    api = await browsers.new()
    wrong_password = await api.login(tenant.agent, "not the password")
    unknown_email = await api.sign_in("nobody-at-all@nowhere.example", "not the password", workspace=tenant.workspace)
    assert wrong_password.status == unknown_email.status == 401
    assert wrong_password.body == unknown_email.body
    assert "Set-Cookie" not in wrong_password.headers


async def test_unknown_email_and_wrong_password_take_the_same_time(browsers: Browsers, tenant: TenantPeople) -> None:
    api = await browsers.new()

    async def timed(email: str) -> float:
        started = time.perf_counter()
        assert (await api.sign_in(email, "not the password", workspace=tenant.workspace)).status == 401
        return time.perf_counter() - started

    wrong = [await timed(tenant.supervisor.email) for _ in range(4)]
    unknown = [await timed(f"ghost-{i}@nowhere.example") for i in range(4)]
    # Both verify one Argon2 hash (tens of ms); without the dummy hash, unknown emails answer in ~1 ms.
    assert statistics.median(unknown) > 0.5 * statistics.median(wrong)


async def test_a_login_issues_a_new_session_not_the_planted_one(browsers: Browsers, tenant: TenantPeople) -> None:
    """Session fixation: a cookie an attacker planted before login is worth nothing after it."""
    attacker = await browsers.new()
    await attacker.login(tenant.other_agent)
    planted = attacker.client.session.cookie_jar.filter_cookies(attacker.client.make_url("/"))["fiv_session"].value
    await attacker.post("/api/auth/logout")

    victim = await browsers.new()
    victim.client.session.cookie_jar.update_cookies({"fiv_session": planted})
    assert (await victim.login(tenant.agent)).status == 200
    fresh = victim.client.session.cookie_jar.filter_cookies(victim.client.make_url("/"))["fiv_session"].value
    assert fresh != planted

    replay = await browsers.new()
    replay.client.session.cookie_jar.update_cookies({"fiv_session": planted})
    assert (await replay.get("/api/me")).status == 401


async def test_not_signed_in_is_401(browsers: Browsers) -> None:
    api = await browsers.new()
    answer = await api.get("/api/me")
    assert answer.status == 401
    assert answer.code == "UNAUTHENTICATED"


async def test_a_cookie_change_without_the_csrf_token_is_refused(browsers: Browsers, tenant: TenantPeople) -> None:
    api = await browsers.signed_in(tenant.agent)
    refused = await api.put("/api/agents/me/status", {"status": "online"}, csrf=False)
    assert refused.status == 403
    assert refused.code == "FORBIDDEN"
    wrong = await api.put("/api/agents/me/status", {"status": "online"}, csrf=False, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status == 403
    assert (await api.get("/api/agents/me/status")).data["status"] == "offline"
    accepted = await api.put("/api/agents/me/status", {"status": "online"})
    assert accepted.status == 200
    assert accepted.data["status"] == "online"


async def test_logout_ends_every_session_of_the_user(browsers: Browsers, tenant: TenantPeople) -> None:
    laptop = await browsers.signed_in(tenant.agent)
    phone = await browsers.signed_in(tenant.agent)
    colleague = await browsers.signed_in(tenant.other_agent)
    assert (await laptop.post("/api/auth/logout")).status == 200
    assert (await laptop.get("/api/me")).status == 401
    assert (await phone.get("/api/me")).status == 401
    assert (await colleague.get("/api/me")).status == 200


async def test_password_change_ends_other_sessions_and_keeps_this_one(browsers: Browsers, tenant: TenantPeople) -> None:
    here = await browsers.signed_in(tenant.agent)
    elsewhere = await browsers.signed_in(tenant.agent)
    wrong = await here.post("/api/me/password", {"current_password": "nope", "new_password": "a brand new secret"})
    assert wrong.status == 400
    assert (await elsewhere.get("/api/me")).status == 200
    changed = await here.post("/api/me/password", {"current_password": PASSWORD, "new_password": "a brand new secret"})
    assert changed.status == 200
    here.csrf = changed.data["csrf_token"]
    assert (await here.get("/api/me")).status == 200
    assert (await elsewhere.get("/api/me")).status == 401
    relogin = await browsers.new()
    assert (await relogin.login(tenant.agent)).status == 401
    assert (await relogin.login(tenant.agent, "a brand new secret")).status == 200


async def test_disable_role_change_and_password_reset_end_sessions(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    for change in ({"role": "supervisor"}, {"password": "reset by the admin"}, {"disabled": True}):
        victim = await browsers.new()
        # The password reset comes second, so from the third change on the new password is in force.
        login = await victim.login(tenant.agent, "reset by the admin" if "disabled" in change else PASSWORD)
        assert login.status == 200, (change, login.body)
        assert (await admin.patch(f"/api/users/{tenant.agent.id}", change)).status == 200
        assert (await victim.get("/api/me")).status == 401, change
    assert (await (await browsers.new()).login(tenant.agent, "reset by the admin")).status == 401


async def test_api_tokens_authenticate_without_csrf_and_stop_when_revoked(
    browsers: Browsers, tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    created = await admin.post("/api/tokens", {"name": "crm", "role": "supervisor"})
    assert created.status == 201
    secret = created.data["secret"]
    assert secret.startswith("fivt_")
    listed = await admin.get("/api/tokens")
    assert "secret" not in listed.data[0]
    integration = await browsers.new(bearer=secret)
    me = await integration.get("/api/me")
    assert me.data == {
        "user": None,
        "role": "supervisor",
        "tenant_id": str(tenant.id),
        "workspace": tenant.workspace,
        "tenant_name": me.data["tenant_name"],
        "time_zone": "UTC",
        "agents_can_take_waiting": True,
        "csrf_token": None,
    }
    assert (await integration.get("/api/users")).status == 200
    assert (await integration.post("/api/users", {"email": "x@y.example"})).status == 403
    assert (await admin.delete(f"/api/tokens/{created.data['id']}")).status == 200
    assert (await integration.get("/api/me")).status == 401
    malformed = await browsers.new(bearer="not-a-token")
    assert (await malformed.get("/api/me")).status == 401


async def test_sign_in_and_changes_are_audited(browsers: Browsers, tenant: TenantPeople) -> None:
    await (await browsers.new()).login(tenant.agent, "wrong")
    admin = await browsers.signed_in(tenant.admin)
    created = await admin.post(
        "/api/users", {"email": "new-agent@a.example", "name": "New", "role": "agent", "password": "long enough"}
    )
    assert created.status == 201
    await admin.patch(f"/api/users/{created.data['id']}", {"role": "supervisor"})
    await admin.patch(f"/api/users/{created.data['id']}", {"disabled": True})
    token = await admin.post("/api/tokens", {"name": "t", "role": "agent"})
    await admin.delete(f"/api/tokens/{token.data['id']}")
    await admin.post("/api/auth/logout")
    auditor = await browsers.signed_in(tenant.admin)
    actions = {entry["action"] for entry in (await auditor.get("/api/audit-log?limit=100")).data}
    assert {
        "login.failed",
        "login.succeeded",
        "user.created",
        "user.role_changed",
        "user.disabled",
        "token.created",
        "token.revoked",
        "logout",
    } <= actions


async def test_an_authorization_header_of_another_scheme_leaves_the_session_in_charge(
    browsers: Browsers, tenant: TenantPeople
) -> None:
    """A proxy may add its own Basic credentials; only `Bearer` means an API token."""
    api = await browsers.signed_in(tenant.agent)
    assert (await api.get("/api/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})).status == 200
    assert (await api.get("/api/me", headers={"Authorization": "Bearer "})).status == 401
    assert (await api.get("/api/me", headers={"Authorization": "bearer fivt_nope"})).status == 401


async def test_guessing_the_current_password_is_throttled(browsers: Browsers, tenant: TenantPeople) -> None:
    api = await browsers.signed_in(tenant.agent)
    guesses = [
        (
            await api.post("/api/me/password", {"current_password": f"guess {i}", "new_password": "whatever it is"})
        ).status
        for i in range(10)
    ]
    assert guesses == [400] * 10
    throttled = await api.post("/api/me/password", {"current_password": PASSWORD, "new_password": "whatever it is"})
    assert throttled.status == 429
    assert (await api.get("/api/me")).status == 200
