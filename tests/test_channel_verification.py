"""Connecting a number through the API: WhatsApp must confirm the access token may use that number.

Without it any tenant's admin could claim another company's number and receive its customers' messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from fiv_console.app import create_app
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.simulation.cloud_api import SimulatorConfig, SimulatorServer
from tests.api import Browsers, TenantPeople
from tests.conftest import WEBHOOK_SECRET, TestDatabase
from tests.webhooks import new_phone_number_id

GOOD_TOKEN = "token-of-the-number"


@pytest.fixture
async def ours() -> str:
    return new_phone_number_id()


@pytest.fixture
async def console(database: TestDatabase, ours: str) -> AsyncIterator[Browsers]:
    config = SimulatorConfig(
        app_secret=WEBHOOK_SECRET.encode(),
        display_numbers={ours: "15550100"},
        access_tokens=frozenset({GOOD_TOKEN}),
    )
    async with SimulatorServer(config) as simulator:
        settings = database.settings(whatsapp_graph_url=simulator.graph_url, whatsapp_verify_numbers=True)
        server = TestServer(create_app(settings))
        await server.start_server()
        browsers = Browsers(server)
        try:
            yield browsers
        finally:
            await browsers.close()
            await server.close()


def _channel(tenant: TenantPeople, phone_number_id: str, token: str | None) -> dict[str, object]:
    body: dict[str, object] = {
        "phone_number_id": phone_number_id,
        "display_number": "+1 555 0100",
        "default_queue_id": str(tenant.queue_id),
    }
    if token is not None:
        body["access_token"] = token
    return body


async def _channels(db: Database, tenant: TenantPeople) -> int:
    async with tenant_tx(db, tenant.id) as conn:
        return int(await conn.fetchval("select count(*) from channels"))


async def test_a_number_whatsapp_confirms_for_the_token_is_connected(
    console: Browsers, tenant: TenantPeople, ours: str
) -> None:
    admin = await console.signed_in(tenant.admin)
    answer = await admin.post("/api/channels", _channel(tenant, ours, GOOD_TOKEN))
    assert answer.status == 201, answer.body
    assert answer.body["data"]["phone_number_id"] == ours


@pytest.mark.parametrize(
    ("number", "token", "field"),
    [
        ("ours", "a-token-meta-refuses", "body.access_token"),
        ("someone else's", GOOD_TOKEN, "body.access_token"),
        ("ours", None, "body.access_token"),
    ],
)
async def test_a_number_whatsapp_does_not_confirm_is_refused_and_nothing_is_written(
    number: str, token: str | None, field: str, console: Browsers, tenant: TenantPeople, ours: str, db: Database
) -> None:
    admin = await console.signed_in(tenant.admin)
    phone_number_id = ours if number == "ours" else new_phone_number_id()
    answer = await admin.post("/api/channels", _channel(tenant, phone_number_id, token))
    assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), answer.body
    assert [d["field"] for d in answer.body["error"]["details"]] == [field]
    assert await _channels(db, tenant) == 0


async def test_whatsapp_out_of_reach_is_503(database: TestDatabase, tenant: TenantPeople, db: Database) -> None:
    # The default test settings point the Graph API at a port where nothing listens.
    server = TestServer(create_app(database.settings(whatsapp_verify_numbers=True)))
    await server.start_server()
    browsers = Browsers(server)
    try:
        admin = await browsers.signed_in(tenant.admin)
        answer = await admin.post("/api/channels", _channel(tenant, new_phone_number_id(), GOOD_TOKEN))
        assert (answer.status, answer.code) == (503, "UNAVAILABLE"), answer.body
    finally:
        await browsers.close()
        await server.close()
    assert await _channels(db, tenant) == 0
