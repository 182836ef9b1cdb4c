"""WhatsApp channels through the API: admins only, the access token write-only, conflicts, bad input."""

from __future__ import annotations

import random
import uuid
from typing import Any

from fiv_console.db.pool import Database, tenant_tx
from tests.api import Api, Browsers, TenantPeople

SECRET_TOKEN = "EAAGsecret" + uuid.uuid4().hex


def _number() -> str:
    return str(random.randrange(10**14, 10**15))


def _channel(tenant: TenantPeople, **fields: Any) -> dict[str, Any]:
    return {"phone_number_id": _number(), "display_number": "+1 555 0100", "default_queue_id": str(tenant.queue_id)} | (
        fields
    )


async def _create(api: Api, tenant: TenantPeople, **fields: Any) -> dict[str, Any]:
    answer = await api.post("/api/channels", _channel(tenant, **fields))
    assert answer.status == 201, answer.body
    created: dict[str, Any] = answer.data
    return created


async def test_channels_are_for_admins_only(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    channel = await _create(admin, tenant)
    path = f"/api/channels/{channel['id']}"
    for person in (tenant.supervisor, tenant.agent):
        api = await browsers.signed_in(person)
        assert (await api.get("/api/channels")).code == "FORBIDDEN"
        assert (await api.post("/api/channels", _channel(tenant))).code == "FORBIDDEN"
        assert (await api.get(path)).code == "FORBIDDEN"
        assert (await api.patch(path, {"active": False})).code == "FORBIDDEN"
    listed = await admin.get("/api/channels")
    assert [c["id"] for c in listed.data] == [channel["id"]]
    assert listed.body["pagination"]["total"] == 1
    changed = await admin.patch(path, {"display_number": "+1 555 0199", "active": False})
    assert (changed.data["display_number"], changed.data["active"]) == ("+1 555 0199", False)
    assert changed.data["phone_number_id"] == channel["phone_number_id"]
    assert (await admin.get("/api/channels?active=true")).data == []
    assert (await admin.get(path)).data == changed.data


async def test_the_access_token_is_written_never_read(browsers: Browsers, db: Database, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    answers = [await admin.post("/api/channels", _channel(tenant, access_token=SECRET_TOKEN))]
    channel = answers[0].data
    assert channel["has_access_token"] is True
    assert "access_token" not in channel
    path = f"/api/channels/{channel['id']}"
    answers.append(await admin.get(path))
    answers.append(await admin.get("/api/channels"))
    answers.append(await admin.patch(path, {"display_number": "+1 555 0111"}))
    answers.append(await admin.patch(path, {"access_token": SECRET_TOKEN + "v2"}))
    answers.append(await admin.patch(path, {"access_token": SECRET_TOKEN + " with a space"}))
    answers.append(await admin.get("/api/audit-log?limit=100"))
    for answer in answers:
        assert SECRET_TOKEN not in str(answer.body)
        assert SECRET_TOKEN not in str(answer.headers)
    assert answers[-2].code == "VALIDATION_ERROR"
    audit = answers[-1].data
    assert [e["details"] for e in audit if e["action"] == "channel.changed"] == [
        {"fields": ["access_token"]},
        {"fields": ["display_number"]},
    ]
    assert [e["details"]["has_access_token"] for e in audit if e["action"] == "channel.created"] == [True]
    async with tenant_tx(db, tenant.id) as conn:
        stored = await conn.fetchval("select access_token from channels where id = $1", uuid.UUID(channel["id"]))
    assert stored == SECRET_TOKEN + "v2"

    # Leaving the token out keeps it; null removes it.
    assert (await admin.patch(path, {"active": True})).data["has_access_token"] is True
    assert (await admin.patch(path, {"access_token": None})).data["has_access_token"] is False


async def test_a_number_is_connected_once_across_tenants(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    channel = await _create(admin, tenant)
    again = await admin.post("/api/channels", _channel(tenant, phone_number_id=channel["phone_number_id"]))
    assert (again.status, again.code) == (409, "CONFLICT")
    # The number decides a webhook's tenant, so another tenant cannot claim it either.
    theirs = await browsers.signed_in(other_tenant.admin)
    claimed = await theirs.post("/api/channels", _channel(other_tenant, phone_number_id=channel["phone_number_id"]))
    assert claimed.code == "CONFLICT"


async def test_bad_channel_input_is_a_400_and_writes_nothing(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    bodies = [
        _channel(tenant, phone_number_id="12ab"),
        _channel(tenant, phone_number_id="1" * 33),
        _channel(tenant, display_number=""),
        _channel(tenant, display_number="+1" * 100),
        _channel(tenant, display_number="+1\u00005"),
        _channel(tenant, default_queue_id="support"),
        _channel(tenant, access_token=""),
        _channel(tenant, access_token="line\r\nX-Injected: yes"),
        _channel(tenant, access_token="t" * 4097),
        _channel(tenant, access_token=12345),
        _channel(tenant, active="yes please"),
        _channel(tenant, access_token_hash="x"),
        {"display_number": "+1 555"},
    ]
    for body in bodies:
        answer = await admin.post("/api/channels", body)
        assert answer.status == 400, body
        assert answer.body["error"]["details"][0]["field"].startswith("body"), answer.body
        assert "X-Injected" not in str(answer.body)
    channel = await _create(admin, tenant)
    path = f"/api/channels/{channel['id']}"
    for change in ({"phone_number_id": _number()}, {"default_queue_id": 7}, {"display_number": None, "x": 1}):
        assert (await admin.patch(path, change)).status == 400, change
    assert (await admin.get("/api/channels?limit=0")).status == 400
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select count(*) from channels") == 1
    assert (await admin.get(path)).data == channel


async def test_another_tenants_channels_and_queues_are_not_found(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    theirs = await _create(await browsers.signed_in(other_tenant.admin), other_tenant)
    assert (await admin.get(f"/api/channels/{theirs['id']}")).code == "NOT_FOUND"
    assert (await admin.patch(f"/api/channels/{theirs['id']}", {"active": False})).code == "NOT_FOUND"
    assert (await admin.get("/api/channels")).data == []
    # A default queue of another tenant: the composite foreign key refuses it, answered as an unknown id.
    foreign_queue = str(other_tenant.queue_id)
    assert (await admin.post("/api/channels", _channel(tenant, default_queue_id=foreign_queue))).code == "NOT_FOUND"
    assert (await admin.post("/api/channels", _channel(tenant, default_queue_id=str(uuid.uuid4())))).code == (
        "NOT_FOUND"
    )
    ours = await _create(admin, tenant)
    moved = await admin.patch(f"/api/channels/{ours['id']}", {"default_queue_id": foreign_queue})
    assert moved.code == "NOT_FOUND"
    assert (await admin.get(f"/api/channels/{ours['id']}")).data == ours
    assert (await admin.get("/api/channels")).body["pagination"]["total"] == 1


async def test_channels_need_a_sign_in(browsers: Browsers, tenant: TenantPeople) -> None:
    anonymous = await browsers.new()
    path = f"/api/channels/{uuid.uuid4()}"
    for method, target in (("GET", "/api/channels"), ("POST", "/api/channels"), ("GET", path), ("PATCH", path)):
        answer = await anonymous.call(method, target, json=_channel(tenant) if method != "GET" else None)
        assert (answer.status, answer.code) == (401, "UNAUTHENTICATED"), (method, target)
