"""Session lifetime: the idle limit and the absolute limit, read from the signed cookie's own times."""

from __future__ import annotations

import json
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography import fernet

from fiv_console.web.sessions import RememberingCookieStorage, session_cipher
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


async def test_a_remembered_cookie_is_refused_once_past_its_age(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage remembers what a cookie decrypted to, and still refuses it once it is older than its
    max age, as decrypting it again would; a cookie changed by a byte is never taken for a remembered one."""
    cipher = fernet.Fernet(fernet.Fernet.generate_key())
    storage = RememberingCookieStorage(cipher, max_age=3600, cookie_name=COOKIE)
    now = int(time.time())
    content = {"created": now, "session": {"uid": "someone"}}
    sealed = cipher.encrypt_at_time(json.dumps(content).encode(), now - 3600 + 30).decode()

    def request(cookie: str) -> web.Request:
        return make_mocked_request("GET", "/api/me", headers={"Cookie": f"{COOKIE}={cookie}"})

    for _ in range(2):  # decrypted, then remembered
        session = await storage.load_session(request(sealed))
        assert (session.new, dict(session)) == (False, {"uid": "someone"})
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    assert (await storage.load_session(request(tampered))).new
    monkeypatch.setattr(time, "time", lambda: now + 31.0)
    late = await storage.load_session(request(sealed))
    assert (late.new, dict(late)) == (True, {})
