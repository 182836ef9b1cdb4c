"""`GET /metrics` (issue #17, point 1): the Prometheus text format parses, has every family, moves with
traffic, names route templates (never ids), and asks for `METRICS_TOKEN` when one is set."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from fiv_console.app import create_app
from fiv_console.db.pool import Database
from tests.api import TenantPeople
from tests.conftest import TestDatabase, people_of
from tests.sockets import open_console
from tests.webhooks import customer_writes, number_of

FAMILIES = {
    "fiv_http_request_duration_seconds",
    "fiv_events_appended",
    "fiv_bus_published",
    "fiv_bus_reconnects",
    "fiv_socket_frames_sent",
    "fiv_socket_closed_slow",
    "fiv_webhook_messages",
    "fiv_webhook_statuses",
    "fiv_webhook_duplicates",
    "fiv_webhook_dead_letters",
    "fiv_graph_calls",
    "fiv_graph_errors",
    "fiv_assignment_assigned",
    "fiv_assignment_wake_to_assigned_seconds",
    "fiv_console_sockets",
    "fiv_console_socket_queued_frames",
    "fiv_db_pool_connections",
    "fiv_db_pool_in_use",
    "fiv_db_pool_waiting",
    "fiv_event_loop_lag_seconds",
    "process_resident_memory_bytes",
}


async def _scrape(server: TestServer, **headers: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/metrics"), headers=headers) as answer:
        assert answer.status == 200, await answer.text()
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await answer.text()
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        samples = values.setdefault(family.name, {})
        for sample in family.samples:
            samples[(("sample", sample.name), *sorted(sample.labels.items()))] = sample.value
    return values


def _total(values: dict[str, dict[tuple[tuple[str, str], ...], float]], family: str, sample: str) -> float:
    return sum(v for key, v in values.get(family, {}).items() if key[0] == ("sample", sample))


async def test_metrics_have_every_family_and_move_with_traffic(
    database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    server = TestServer(create_app(database.settings()))
    await server.start_server()
    try:
        async with people_of(server) as browsers:
            before = await _scrape(server)
            assert set(before) >= FAMILIES, FAMILIES - set(before)

            agent = await browsers.signed_in(tenant.agent)
            console = await open_console(agent)
            await console.send({"type": "presence", "status": "online"})
            await customer_writes(server, phone_number_id, "Hello, anyone?")
            await console.event("conversation.assigned", within=10)
            await asyncio.sleep(0.2)
            after = await _scrape(server)
            await console.close()

        assert _total(after, "fiv_webhook_messages", "fiv_webhook_messages_total") == (
            _total(before, "fiv_webhook_messages", "fiv_webhook_messages_total") + 1
        )
        for family, sample in (
            ("fiv_events_appended", "fiv_events_appended_total"),
            ("fiv_bus_published", "fiv_bus_published_total"),
            ("fiv_socket_frames_sent", "fiv_socket_frames_sent_total"),
            ("fiv_assignment_assigned", "fiv_assignment_assigned_total"),
        ):
            assert _total(after, family, sample) > _total(before, family, sample), family
        assert _total(after, "fiv_console_sockets", "fiv_console_sockets") == 1
        assert _total(after, "fiv_db_pool_connections", "fiv_db_pool_connections") >= 1
        # Requests are labelled by their route's template, not by the ids in their path.
        routes = {dict(key[1:]).get("route") for key in after["fiv_http_request_duration_seconds"]}
        assert "/api/auth/login" in routes
        assert "/webhooks/whatsapp" in routes
        assert not any(route and tenant.agent.id.hex in route.replace("-", "") for route in routes)
    finally:
        await server.close()


async def test_metrics_ask_for_the_token_when_one_is_set(database: TestDatabase) -> None:
    server = TestServer(create_app(database.settings(metrics_token="scrape-me-please")))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                async with http.get(server.make_url("/metrics"), headers=headers) as answer:
                    assert answer.status == 401
                    assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "fiv_console_sockets" in await _scrape(server, Authorization="Bearer scrape-me-please")
    finally:
        await server.close()
