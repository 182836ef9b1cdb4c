"""`GET /metrics` (issue #17, point 1): the Prometheus text format parses, has every family, moves with
traffic, names route templates (never ids), reports the conversations waiting per queue only where some wait, and
asks for `METRICS_TOKEN` when one is set."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from fiv_console.app import create_app
from fiv_console.db.pool import Database, create_database, tenant_tx
from fiv_console.keys import waiting_lines_key
from fiv_console.observability.waiting import WaitingLines
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
    "fiv_waiting_conversations",
    "fiv_oldest_wait_seconds",
    "fiv_queue_waiting_conversations",
    "fiv_queue_oldest_wait_seconds",
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


def _of_tenant(values: dict[str, dict[tuple[tuple[str, str], ...], float]], family: str, slug: str) -> dict[str, float]:
    """The family's samples for the tenant, by queue name."""
    return {
        dict(key[1:])["queue"]: value
        for key, value in values.get(family, {}).items()
        if dict(key[1:]).get("tenant") == slug
    }


async def test_waiting_per_queue_shows_only_queues_where_someone_waits(
    database: TestDatabase, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    async with tenant_tx(db, tenant.id) as conn:
        queue = await conn.fetchval("select name from queues where id = $1", tenant.queue_id)
    app = create_app(database.settings())
    # Every scrape reads again: the test sees each change at once, not a few seconds later.
    app[waiting_lines_key] = WaitingLines(max_age=0.0)
    server = TestServer(app)
    await server.start_server()
    try:
        async with people_of(server) as browsers:
            await customer_writes(server, phone_number_id, "Hello, anyone?")
            await customer_writes(server, phone_number_id, "Me too", customer="5511900000002")
            waiting = await _scrape(server)
            assert _of_tenant(waiting, "fiv_queue_waiting_conversations", tenant.workspace) == {queue: 2}
            oldest = _of_tenant(waiting, "fiv_queue_oldest_wait_seconds", tenant.workspace)
            assert list(oldest) == [queue]
            assert 0 <= oldest[queue] < 60
            assert _total(waiting, "fiv_waiting_conversations", "fiv_waiting_conversations") >= 2
            assert _total(waiting, "fiv_oldest_wait_seconds", "fiv_oldest_wait_seconds") >= oldest[queue]
            # A tenant with nothing waiting is no series at all.
            for family in ("fiv_queue_waiting_conversations", "fiv_queue_oldest_wait_seconds"):
                assert _of_tenant(waiting, family, other_tenant.workspace) == {}

            agent = await browsers.signed_in(tenant.agent)
            console = await open_console(agent)
            await console.send({"type": "presence", "status": "online"})
            await console.event("conversation.assigned", within=10)
            await console.event("conversation.assigned", within=10)
            await console.close()
            answered = await _scrape(server)
        for family in ("fiv_queue_waiting_conversations", "fiv_queue_oldest_wait_seconds"):
            assert _of_tenant(answered, family, tenant.workspace) == {}, family
        # The deployment-wide figures are always there, without labels.
        assert list(answered["fiv_waiting_conversations"]) == [(("sample", "fiv_waiting_conversations"),)]
    finally:
        await server.close()


async def test_waiting_per_queue_is_left_out_while_the_database_does_not_answer(
    database: TestDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    gone = await create_database(database.app_url, min_size=1, max_size=1, acquire_timeout=1, command_timeout=5)
    await gone.pool.close()
    lines = WaitingLines(max_age=0.0)
    with caplog.at_level(logging.WARNING, logger="fiv_console.observability.waiting"):
        for _ in range(3):
            await lines.refresh(gone)
            assert list(lines.collect()) == []
    # Once a minute at most, however often it is scraped.
    assert len([r for r in caplog.records if "waiting per queue" in r.getMessage()]) == 1
