"""Session lifetime: the idle limit and the absolute limit, read from the signed cookie's own times."""

from __future__ import annotations

import json
import time

import pytest

from fiv_console.web.sessions import session_cipher
from tests.api import Api, Browsers, TenantPeople
from tests.conftest import TestDatabase

COOKIE = "fiv_session"


def _rewrite_session(api: Api, database: TestDatabase, **changes: int) -> None:
    """Re-encrypt the browser's own session cookie with some of its times moved into the past."""
    cipher = session_cipher(database.settings())
    jar = api.client.session.cookie_jar
    sealed = jar.filter_cookies(api.client.make_url("/"))[COOKIE].value
    content = json.loads(cipher.decrypt(sealed.encode()))
    content["session"].update(changes)
    jar.update_cookies({COOKIE: cipher.encrypt(json.dumps(content).encode()).decode()}, api.client.make_url("/"))


@pytest.mark.parametrize(
    ("field", "age_seconds"),
    [("seen", 120 * 60 + 5), ("iat", 12 * 3600 + 5)],
    ids=["idle-too-long", "older-than-the-absolute-limit"],
)
async def test_an_expired_session_is_signed_out(
    browsers: Browsers, tenant: TenantPeople, database: TestDatabase, field: str, age_seconds: int
) -> None:
    api = await browsers.signed_in(tenant.agent)
    _rewrite_session(api, database, **{field: int(time.time()) - age_seconds})
    answer = await api.get("/api/me")
    assert answer.status == 401
    assert "expired" in answer.body["error"]["message"]


async def test_a_session_within_its_limits_stays(
    browsers: Browsers, tenant: TenantPeople, database: TestDatabase
) -> None:
    api = await browsers.signed_in(tenant.agent)
    _rewrite_session(api, database, seen=int(time.time()) - 60 * 60, iat=int(time.time()) - 11 * 3600)
    assert (await api.get("/api/me")).status == 200


async def test_a_forged_or_tampered_cookie_is_nobody(browsers: Browsers, tenant: TenantPeople) -> None:
    api = await browsers.signed_in(tenant.agent)
    jar = api.client.session.cookie_jar
    sealed = jar.filter_cookies(api.client.make_url("/"))[COOKIE].value
    jar.update_cookies(
        {COOKIE: sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")}, api.client.make_url("/")
    )
    assert (await api.get("/api/me")).status == 401
