"""Meta's webhook handshake, and the signature check the intake will use."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from fiv_console.app import create_app
from fiv_console.whatsapp.signature import signature_matches
from tests.conftest import TestDatabase

TOKEN = "verify-me-please"


Client = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


async def _client(
    aiohttp_client: Client, database: TestDatabase, **settings: object
) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(create_app(database.settings(**settings)))


async def test_the_handshake_answers_the_bare_challenge(database: TestDatabase, aiohttp_client: Client) -> None:
    client = await _client(aiohttp_client, database, whatsapp_verify_token=TOKEN)
    query = {"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "1158201444"}
    answer = await client.get("/webhooks/whatsapp", params=query)
    assert answer.status == 200
    assert answer.content_type == "text/plain"
    assert await answer.text() == "1158201444"


async def test_the_handshake_refuses_anything_else(database: TestDatabase, aiohttp_client: Client) -> None:
    client = await _client(aiohttp_client, database, whatsapp_verify_token=TOKEN)
    good = {"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "42"}
    for changed in (
        {"hub.verify_token": "wrong"},
        {"hub.verify_token": ""},
        {"hub.mode": "unsubscribe"},
        {"hub.challenge": "<script>alert(1)</script>"},
        {"hub.challenge": ""},
    ):
        answer = await client.get("/webhooks/whatsapp", params={**good, **changed})
        assert answer.status == 403, changed
        assert "42" not in await answer.text()
    unconfigured = await _client(aiohttp_client, database, whatsapp_verify_token=None)
    assert (await unconfigured.get("/webhooks/whatsapp", params=good)).status == 403


def test_the_signature_of_metas_test_vector() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    vector = "sha256=02fe0c96d28c59ddb7cf81eff0ca05809b360ba73b63c28210b5906a0a107d1f"
    assert signature_matches(b"app_secret_123", body, vector)
    assert signature_matches(b"app_secret_123", body, vector.upper().replace("SHA256=", "sha256="))
    assert not signature_matches(b"another_secret", body, vector)
    assert not signature_matches(b"app_secret_123", body + b" ", vector)
    assert not signature_matches(b"app_secret_123", body, None)
    assert not signature_matches(b"app_secret_123", body, vector.removeprefix("sha256="))
    assert not signature_matches(b"app_secret_123", body, "sha1=" + vector.removeprefix("sha256="))
    assert not signature_matches(b"app_secret_123", body, "sha256=zz")
    assert not signature_matches(b"", body, vector)


def test_the_signature_is_over_the_raw_bytes_with_escapes() -> None:
    """Meta signs `\\u00e9` as sent; the same text re-encoded as UTF-8 is a different body."""
    sent = b'{"text":"caf\\u00e9 \\ud83d\\ude00"}'
    header = "sha256=" + hmac.new(b"s3cret", sent, hashlib.sha256).hexdigest()
    assert signature_matches(b"s3cret", sent, header)
    assert not signature_matches(b"s3cret", '{"text":"café 😀"}'.encode(), header)
