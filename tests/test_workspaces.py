"""Workspaces (issue #12, point 6): emails are unique per tenant, and sign-in names the tenant by its slug.

No answer may tell one tenant anything about another's people: an address taken elsewhere is free here, and
an unknown workspace is answered exactly like a wrong password.
"""

from __future__ import annotations

import statistics
import time
import uuid

import pytest
from aiohttp.test_utils import TestServer

from fiv_console.accounts.tenants import TenantCreate, create_tenant, slug_from_name
from fiv_console.db.pool import Database
from fiv_console.errors import Conflict
from fiv_console.keys import database_key
from tests.api import PASSWORD, Browsers, TenantPeople
from tests.conftest import people_of


def _user(email: str, password: str, role: str = "supervisor") -> dict[str, str]:
    return {"email": email, "name": "Shared Address", "role": role, "password": password}


async def test_the_same_email_in_two_tenants_signs_each_into_its_own(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    email = f"supervisor-{uuid.uuid4().hex[:8]}@b.example"
    admin_b = await browsers.signed_in(other_tenant.admin)
    theirs = await admin_b.post("/api/users", _user(email, "b's own password"))
    assert theirs.status == 201

    # A's admin adds the same address (in other capitals): nothing says it exists elsewhere.
    admin_a = await browsers.signed_in(tenant.admin)
    ours = await admin_a.post("/api/users", _user(email.upper(), "a's own password"))
    assert ours.status == 201, ours.body
    assert ours.data["tenant_id"] == str(tenant.id)
    assert ours.data["id"] != theirs.data["id"]

    for workspace, password, expected in (
        (tenant.workspace, "a's own password", ours.data),
        (other_tenant.workspace, "b's own password", theirs.data),
    ):
        person = await browsers.new()
        signed_in = await person.sign_in(email, password, workspace=workspace)
        assert signed_in.status == 200, signed_in.body
        assert (signed_in.data["user"]["id"], signed_in.data["tenant_id"]) == (expected["id"], expected["tenant_id"])
        assert signed_in.data["workspace"] == workspace
        me = await person.get("/api/me")
        assert (me.data["user"]["id"], me.data["workspace"]) == (expected["id"], workspace)
    # Each password opens its own workspace only.
    crossed = await (await browsers.new()).sign_in(email, "b's own password", workspace=tenant.workspace)
    assert crossed.status == 401


async def test_a_duplicate_is_a_conflict_only_within_the_tenant(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin_a = await browsers.signed_in(tenant.admin)
    # B's supervisor's address is free in A; A cannot reserve it for B either.
    assert (await admin_a.post("/api/users", _user(other_tenant.supervisor.email, "long enough!"))).status == 201
    again = await admin_a.post("/api/users", _user(other_tenant.supervisor.email.upper(), "long enough!"))
    assert (again.status, again.code) == (409, "CONFLICT")
    assert other_tenant.workspace not in str(again.body)
    admin_b = await browsers.signed_in(other_tenant.admin)
    fresh = f"new-hire-{uuid.uuid4().hex[:8]}@b.example"
    assert (await admin_a.post("/api/users", _user(fresh, "long enough!"))).status == 201
    assert (await admin_b.post("/api/users", _user(fresh, "long enough!"))).status == 201


async def test_an_admin_learns_nothing_of_another_tenants_people(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin_a = await browsers.signed_in(tenant.admin)
    assert (await admin_a.post("/api/users", _user(other_tenant.supervisor.email, "squatter's pass"))).status == 201
    listed = await admin_a.get("/api/users?limit=100")
    assert {user["tenant_id"] for user in listed.data} == {str(tenant.id)}
    searched = await admin_a.get(f"/api/users?q={other_tenant.supervisor.email}")
    assert [user["tenant_id"] for user in searched.data] == [str(tenant.id)]
    assert (await admin_a.get(f"/api/users/{other_tenant.supervisor.id}")).status == 404
    # B's supervisor still signs into B, as B's supervisor, with their own password.
    real = await browsers.new()
    assert (await real.login(other_tenant.supervisor)).data["user"]["id"] == str(other_tenant.supervisor.id)
    squatter = await browsers.new()
    wrong_door = await squatter.sign_in(
        other_tenant.supervisor.email, "squatter's pass", workspace=other_tenant.workspace
    )
    assert wrong_door.status == 401


async def test_an_unknown_workspace_is_answered_like_a_wrong_password(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    api = await browsers.new()
    wrong_password = await api.login(tenant.agent, "not the password")
    unknown_workspace = await api.sign_in(tenant.agent.email, PASSWORD, workspace=f"nowhere-{uuid.uuid4().hex[:8]}")
    other_workspace = await api.sign_in(tenant.agent.email, PASSWORD, workspace=other_tenant.workspace)
    for answer in (wrong_password, unknown_workspace, other_workspace):
        assert answer.status == 401
        assert answer.body == {
            "success": False,
            "data": None,
            "error": {"code": "UNAUTHENTICATED", "message": "the workspace, email or password is wrong"},
        }
        assert "Set-Cookie" not in answer.headers

    async def timed(workspace: str, email: str) -> float:
        started = time.perf_counter()
        assert (await api.sign_in(email, "not the password", workspace=workspace)).status == 401
        return time.perf_counter() - started

    known = [await timed(tenant.workspace, tenant.supervisor.email) for _ in range(4)]
    unknown = [await timed(f"nowhere-{i}-{uuid.uuid4().hex[:6]}", tenant.supervisor.email) for i in range(4)]
    # Both verify one Argon2 hash; an unknown workspace that skipped it would answer in about a millisecond.
    assert statistics.median(unknown) > 0.5 * statistics.median(known)


async def test_a_workspace_is_required_where_there_are_several(browsers: Browsers, tenant: TenantPeople) -> None:
    api = await browsers.new()
    missing = await api.sign_in(tenant.agent.email, PASSWORD, workspace=None)
    assert (missing.status, missing.code) == (400, "VALIDATION_ERROR")
    assert missing.body["error"]["details"] == [{"field": "body.workspace", "message": "required"}]
    malformed = await api.sign_in(tenant.agent.email, PASSWORD, workspace="not a slug!")
    assert (malformed.status, malformed.body["error"]["details"][0]["field"]) == (400, "body.workspace")


async def test_a_single_tenant_deployment_signs_in_without_a_workspace(
    single_tenant: tuple[TestServer, TenantPeople],
) -> None:
    server, people = single_tenant
    async with people_of(server) as browsers:
        page = await (await browsers.new()).client.get("/login")
        assert 'id="login-workspace"' not in await page.text()

        plain = await browsers.new()
        signed_in = await plain.sign_in(people.agent.email, PASSWORD, workspace=None)
        assert signed_in.status == 200, signed_in.body
        assert signed_in.data["workspace"] == people.workspace
        wrong = await plain.sign_in(people.agent.email, "not the password", workspace=None)
        assert (wrong.status, wrong.body["error"]["message"]) == (401, "the email or password is wrong")
        # Naming the workspace still works, and naming another one does not.
        assert (await (await browsers.new()).login(people.agent)).status == 200
        elsewhere = await (await browsers.new()).sign_in(people.agent.email, PASSWORD, workspace="elsewhere")
        assert elsewhere.status == 401

        # A second tenant arrives: from now on the workspace is asked for.
        await create_tenant(server.app[database_key], TenantCreate(name="Second Company"))
        again = await (await browsers.new()).sign_in(people.agent.email, PASSWORD, workspace=None)
        assert (again.status, again.code) == (400, "VALIDATION_ERROR")
        page = await (await browsers.new()).client.get("/login")
        assert 'id="login-workspace"' in await page.text()


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme", "acme"),
        ("  Café Lisboa, Lda. ", "cafe-lisboa-lda"),
        ("ÅNGSTRÖM & Søn", "angstrom-s-n"),
        ("東京", "workspace"),
        ("x" * 39 + " tail", "x" * 39),
    ],
)
def test_a_slug_is_made_from_the_name(name: str, slug: str) -> None:
    assert slug_from_name(name) == slug


async def test_a_chosen_workspace_that_is_taken_is_a_conflict(db: Database) -> None:
    slug = f"taken-{uuid.uuid4().hex[:8]}"
    first = await create_tenant(db, TenantCreate(name="First", slug=slug.upper()))
    assert first.slug == slug
    with pytest.raises(Conflict, match=f"the workspace {slug} is taken"):
        await create_tenant(db, TenantCreate(name="Second", slug=slug))
    # Made from a name, it is numbered instead.
    named = await create_tenant(db, TenantCreate(name=slug))
    assert named.slug == f"{slug}-2"
