"""API tokens over their life: an optional expiry, and the record of their last use."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.api import Api, Browsers, TenantPeople


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
        (warning,) = [r for r in caplog.records if r.name == "fiv_console.tokens"]
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
