"""API tokens over their life: expiry, the record of their last use, who made them and whether that person is
still an enabled admin, and the audit log naming the token for what it did."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.api import PASSWORD, Api, Browsers, Person, TenantPeople


def _in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


async def _token(admin: Api, name: str, role: str = "admin", **fields: Any) -> tuple[str, str]:
    """(id, secret) of a new token."""
    created = await admin.post("/api/tokens", {"name": name, "role": role, **fields})
    assert created.status == 201, created.body
    return created.data["id"], created.data["secret"]


async def _listed(admin: Api, token_id: str) -> dict[str, Any]:
    listing = await admin.get("/api/tokens?limit=100")
    (token,) = [t for t in listing.data if t["id"] == token_id]
    return token  # type: ignore[no-any-return]


async def test_an_expired_token_is_refused_like_an_unknown_one(
    browsers: Browsers, tenant: TenantPeople, owner: asyncpg.Connection
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    expires_at = _in(timedelta(days=30))
    token_id, secret = await _token(admin, "expiring", "supervisor", expires_at=expires_at)
    assert datetime.fromisoformat((await _listed(admin, token_id))["expires_at"]) == datetime.fromisoformat(expires_at)
    integration = await browsers.new(bearer=secret)
    assert (await integration.get("/api/users")).status == 200

    # Thirty days later (the row is moved back in time, creation included, as the clock would have moved on).
    await owner.execute(
        "update api_tokens set created_at = created_at - interval '31 days', expires_at = now() - interval '1 second' "
        "where id = $1",
        uuid.UUID(token_id),
    )
    expired = await integration.get("/api/users")
    unknown = await (await browsers.new(bearer="fivt_" + "x" * 43)).get("/api/users")
    assert expired.status == unknown.status == 401
    assert expired.body == unknown.body
    assert (await integration.get("/api/me")).status == 401
    # A token without an expiry works until revoked.
    _, forever = await _token(admin, "forever", "agent")
    assert (await (await browsers.new(bearer=forever)).get("/api/me")).status == 200


async def test_an_expiry_must_be_in_the_future_and_bounded(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    for expires_at in (_in(-timedelta(hours=1)), _in(timedelta(seconds=5)), _in(timedelta(days=400)), naive, "soon"):
        answer = await admin.post("/api/tokens", {"name": "bad expiry", "role": "agent", "expires_at": expires_at})
        assert answer.status == 400, expires_at
        assert answer.body["error"]["details"][0]["field"] == "body.expires_at"
    assert all(t["name"] != "bad expiry" for t in (await admin.get("/api/tokens?limit=100")).data)
    a_year = {"name": "a year", "role": "agent", "expires_at": _in(timedelta(days=365))}
    assert (await admin.post("/api/tokens", a_year)).status == 201
    assert (await admin.post("/api/tokens", {"name": "null", "role": "agent", "expires_at": None})).status == 201


async def test_the_last_use_is_recorded_at_most_once_a_minute_even_when_the_call_is_refused(
    browsers: Browsers, tenant: TenantPeople, owner: asyncpg.Connection
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    token_id, secret = await _token(admin, "bot", "agent")
    assert (await _listed(admin, token_id))["last_used_at"] is None
    integration = await browsers.new(bearer=secret)

    before = datetime.now(UTC)
    # An agent's token may not list users: refused, but it did authenticate, so it counts as a use.
    assert (await integration.get("/api/users")).status == 403
    first = datetime.fromisoformat((await _listed(admin, token_id))["last_used_at"])
    assert before - timedelta(seconds=5) < first <= datetime.now(UTC) + timedelta(seconds=5)

    assert (await integration.get("/api/me")).status == 200
    assert datetime.fromisoformat((await _listed(admin, token_id))["last_used_at"]) == first

    await owner.execute(
        "update api_tokens set last_used_at = last_used_at - interval '2 minutes' where id = $1", uuid.UUID(token_id)
    )
    assert (await integration.get("/api/me")).status == 200
    assert datetime.fromisoformat((await _listed(admin, token_id))["last_used_at"]) > first


async def test_recording_a_use_never_fails_or_holds_up_the_call(
    browsers: Browsers, tenant: TenantPeople, owner: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    token_id, secret = await _token(admin, "reader", "supervisor")
    integration = await browsers.new(bearer=secret)
    # The write cannot happen (here a trigger refuses it; in life, a full disk or a read-only standby).
    await owner.execute(
        """
        create function refuse_token_use() returns trigger language plpgsql as $$
        begin raise exception 'no writes today'; end $$
        """
    )
    try:
        await owner.execute(
            f"create trigger refuse_token_use before update on api_tokens for each row "
            f"when (old.id = '{uuid.UUID(token_id)}') execute function refuse_token_use()"
        )
        assert (await integration.get("/api/users")).status == 200
        (warning,) = [r for r in caplog.records if r.name == "fiv_console.accounts.tokens"]
        assert warning.levelname == "WARNING"
        assert warning.token_id == token_id  # type: ignore[attr-defined]
        assert secret not in caplog.text
    finally:
        await owner.execute("drop function refuse_token_use() cascade")
    assert (await _listed(admin, token_id))["last_used_at"] is None

    # Another transaction holds the token's row (a revoke in flight, a long report): the call does not wait.
    async with owner.transaction():
        await owner.execute("select 1 from api_tokens where id = $1 for update", uuid.UUID(token_id))
        answer = await asyncio.wait_for(integration.get("/api/users"), timeout=10)
        assert answer.status == 200
    assert (await integration.get("/api/users")).status == 200
    assert (await _listed(admin, token_id))["last_used_at"] is not None


async def test_a_departed_admins_token_shows_it_and_its_writes_are_audited_with_its_id(
    browsers: Browsers, tenant: TenantPeople
) -> None:
    """The finding: an admin made a token, was demoted, then disabled; the token still created an admin user,
    and nothing showed it."""
    admin = await browsers.signed_in(tenant.admin)
    email = f"departing-{uuid.uuid4().hex[:8]}@a.example"
    departing = {"email": email, "name": "Departing", "role": "admin", "password": PASSWORD}
    departing_id = (await admin.post("/api/users", departing)).data["id"]
    token_id, secret = await _token(
        await browsers.signed_in(Person(uuid.UUID(departing_id), email, "admin", tenant.admin.workspace)), "crm"
    )

    listed = await _listed(admin, token_id)
    assert listed["creator"] == {
        "id": departing_id,
        "name": "Departing",
        "email": email,
        "role": "admin",
        "disabled": False,
    }
    assert listed["creator_active_admin"] is True
    assert listed["created_by_token"] is None

    assert (await admin.patch(f"/api/users/{departing_id}", {"role": "supervisor"})).status == 200
    demoted = await _listed(admin, token_id)
    assert demoted["creator_active_admin"] is False
    assert demoted["creator"]["role"] == "supervisor"
    assert (await admin.patch(f"/api/users/{departing_id}", {"disabled": True})).status == 200
    disabled = await _listed(admin, token_id)
    assert disabled["creator_active_admin"] is False
    assert disabled["creator"]["disabled"] is True

    # Tokens belong to the tenant on purpose: it still works, and what it does names it.
    integration = await browsers.new(bearer=secret)
    made = await integration.post(
        "/api/users",
        {
            "email": f"made-{uuid.uuid4().hex[:8]}@a.example",
            "name": "Made",
            "role": "admin",
            "password": "long enough!",
        },
    )
    assert made.status == 201
    child = await integration.post("/api/tokens", {"name": "crm child", "role": "agent"})
    assert child.status == 201
    assert child.data["creator"] is None
    assert child.data["created_by_token"] == {"id": token_id, "name": "crm"}
    assert child.data["creator_active_admin"] is False
    assert (await _listed(admin, child.data["id"]))["created_by_token"] == {"id": token_id, "name": "crm"}

    audit = await admin.get(f"/api/audit-log?actor_id={token_id}")
    by_action = {entry["action"]: entry for entry in audit.data}
    assert set(by_action) == {"user.created", "token.created"}
    user_created, token_created = by_action["user.created"], by_action["token.created"]
    assert user_created["target_id"] == made.data["id"]
    assert user_created["details"] == {"role": "admin"}
    assert token_created["target_id"] == child.data["id"]
    for entry in (user_created, token_created):
        assert (entry["actor_kind"], entry["actor_id"], entry["actor_name"]) == ("token", token_id, "crm")
    by_tokens = await admin.get("/api/audit-log?actor_kind=token&limit=100")
    assert {e["id"] for e in by_tokens.data} == {user_created["id"], token_created["id"]}
    people = await admin.get("/api/audit-log?action=user.disabled")
    assert [(e["actor_kind"], e["actor_id"], e["actor_name"]) for e in people.data] == [
        ("user", str(tenant.admin.id), "Admin")
    ]
