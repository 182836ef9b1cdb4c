"""The application shell: /health, request ids, the `/api` error envelope, and start-up refusals."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from fiv_console.app import create_app
from fiv_console.db.startup import StartupError
from fiv_console.db.urls import APP_ROLE, with_database
from fiv_console.errors import Conflict, NotFound
from fiv_console.keys import assignment_key
from fiv_console.observability.health import check_event_loop
from fiv_console.observability.logging import JsonFormatter
from fiv_console.observability.loop_lag import SAMPLE_SECONDS, LoopLag
from fiv_console.serving import free_port
from tests.conftest import TestDatabase, migrate_database

Client = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


def _app_with_test_routes(database: TestDatabase, **overrides: object) -> web.Application:
    app = create_app(database.settings(**overrides))

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    async def conflict(request: web.Request) -> web.Response:
        raise Conflict("already there", details={"field": "email"})

    async def missing(request: web.Request) -> web.Response:
        raise NotFound("no such thing")

    app.router.add_get("/api/test/boom", boom)
    app.router.add_get("/api/test/conflict", conflict)
    app.router.add_get("/api/test/missing", missing)
    return app


@pytest.fixture
def json_logs() -> Iterator[list[dict[str, object]]]:
    """Log records as the JSON lines the server writes."""
    lines: list[dict[str, object]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(JsonFormatter().format(record)))

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


async def test_health_is_ok_with_the_database(database: TestDatabase, aiohttp_client: Client) -> None:
    client = await aiohttp_client(create_app(database.settings()))
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"] == {"status": "disabled"}
    assert body["failed"] == []


async def test_health_names_the_database_when_it_is_down_and_recovers(
    fresh_database: TestDatabase, aiohttp_client: Client
) -> None:
    await migrate_database(fresh_database.owner_url)
    client = await aiohttp_client(create_app(fresh_database.settings()))
    assert (await client.get("/health")).status == 200

    # From the maintenance database: a database cannot refuse connections to itself.
    owner = await asyncpg.connect(with_database(fresh_database.owner_url, "postgres"))
    try:
        await owner.execute(f'alter database "{fresh_database.name}" allow_connections false')
        await owner.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and usename = $2",
            fresh_database.name,
            APP_ROLE,
        )
        response = await client.get("/health")
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "down"
        assert body["failed"] == ["database"]
        assert body["checks"]["database"]["status"] == "down"

        await owner.execute(f'alter database "{fresh_database.name}" allow_connections true')
        # Back without a restart of the server, though not always on the very next request: in a full CI run
        # on a loaded machine that one still timed out once (the cause is not pinned down; see the note).
        for _ in range(20):
            response = await client.get("/health")
            if response.status == 200:
                break
            await asyncio.sleep(0.5)
        assert response.status == 200, await response.text()
    finally:
        await owner.execute(f'alter database "{fresh_database.name}" allow_connections true')
        await owner.close()


async def test_health_checks_redis_when_configured(
    database: TestDatabase, redis_url: str, aiohttp_client: Client
) -> None:
    client = await aiohttp_client(create_app(database.settings(redis_url=redis_url)))
    body = await (await client.get("/health")).json()
    assert body["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"


async def test_health_is_degraded_not_down_when_redis_is_unreachable(
    database: TestDatabase, aiohttp_client: Client
) -> None:
    client = await aiohttp_client(create_app(database.settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")))
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "degraded"
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"]["status"] == "ok"


async def test_health_reports_the_assignment_loop_and_the_event_loop(
    database: TestDatabase, aiohttp_client: Client
) -> None:
    app = create_app(database.settings())
    client = await aiohttp_client(app)
    body = await (await client.get("/health")).json()
    assert body["status"] == "ok"
    assert body["checks"]["assignment"] == {"status": "ok"}
    assert body["checks"]["event_loop"]["status"] == "ok"
    assert set(body["event_loop"]) == {"lag_ms", "worst_lag_ms_last_minute"}

    await app[assignment_key].run_once()
    swept = (await (await client.get("/health")).json())["assignment"]["last_sweep_at"]
    assert datetime.now(UTC) - datetime.fromisoformat(swept) < timedelta(seconds=5)

    # A loop that has not finished a sweep for a long while (here: started long ago, never swept since).
    app[assignment_key].started_at -= timedelta(minutes=5)
    app[assignment_key].last_sweep_at = None
    response = await client.get("/health")
    body = await response.json()
    assert (response.status, body["status"], body["failed"]) == (200, "degraded", ["assignment"])
    assert body["checks"]["assignment"]["error"].startswith("no sweep finished for 3")


async def test_a_stalled_event_loop_shows_in_health(database: TestDatabase, aiohttp_client: Client) -> None:
    app = create_app(database.settings())
    client = await aiohttp_client(app)
    # The stall under test (nothing else may run meanwhile): the sampler, mid-sleep, wakes at least 1 s late.
    time.sleep(1.0 + SAMPLE_SECONDS)  # noqa: ASYNC251
    await asyncio.sleep(2 * SAMPLE_SECONDS)
    body = await (await client.get("/health")).json()
    assert body["event_loop"]["worst_lag_ms_last_minute"] >= 1000
    late = LoopLag()
    late.record(1.5)
    assert check_event_loop(late).status == "down"


async def test_a_given_request_id_is_echoed_and_logged(
    database: TestDatabase, aiohttp_client: Client, json_logs: list[dict[str, object]]
) -> None:
    client = await aiohttp_client(create_app(database.settings()))
    response = await client.get("/health", headers={"X-Request-ID": "req-123.abc"})
    assert response.headers["X-Request-ID"] == "req-123.abc"
    access = [line for line in json_logs if line["logger"] == "fiv_console.access"]
    assert access[-1]["request_id"] == "req-123.abc"
    assert access[-1]["status"] == 200
    assert access[-1]["path"] == "/health"


async def test_a_missing_or_unsafe_request_id_is_replaced(database: TestDatabase, aiohttp_client: Client) -> None:
    client = await aiohttp_client(create_app(database.settings()))
    generated = (await client.get("/health")).headers["X-Request-ID"]
    assert len(generated) == 32
    unsafe = await client.get("/health", headers={"X-Request-ID": 'x" injected {"level":"error"}'})
    assert unsafe.headers["X-Request-ID"] not in ("", 'x" injected {"level":"error"}')
    assert len(unsafe.headers["X-Request-ID"]) == 32


async def test_an_unexpected_error_is_an_envelope_without_a_trace_and_is_logged(
    database: TestDatabase, aiohttp_client: Client, json_logs: list[dict[str, object]]
) -> None:
    client = await aiohttp_client(_app_with_test_routes(database))
    response = await client.get("/api/test/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status == 500
    assert response.headers["X-Request-ID"] == "boom-1"
    body = await response.json()
    assert body["success"] is False
    assert body["data"] is None
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert "boom-1" in body["error"]["message"]
    text = json.dumps(body)
    assert "secret internals" not in text
    assert "Traceback" not in text
    errors = [line for line in json_logs if line["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "boom-1"
    assert "secret internals" in str(errors[0]["exc"])
    assert errors[0]["path"] == "/api/test/boom"


async def test_domain_errors_and_unknown_routes_use_the_envelope(
    database: TestDatabase, aiohttp_client: Client
) -> None:
    client = await aiohttp_client(_app_with_test_routes(database))
    conflict = await client.get("/api/test/conflict")
    assert conflict.status == 409
    assert await conflict.json() == {
        "success": False,
        "data": None,
        "error": {"code": "CONFLICT", "message": "already there", "details": {"field": "email"}},
    }
    missing = await client.get("/api/test/missing")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "NOT_FOUND"
    unknown = await client.get("/api/no/such/route")
    assert unknown.status == 404
    assert (await unknown.json())["error"]["code"] == "NOT_FOUND"
    wrong_method = await client.post("/api/test/missing")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in wrong_method.headers["Allow"]


async def test_outside_api_errors_are_not_enveloped(database: TestDatabase, aiohttp_client: Client) -> None:
    client = await aiohttp_client(create_app(database.settings()))
    response = await client.get("/no-such-page")
    assert response.status == 404
    assert response.content_type != "application/json"


async def test_a_body_over_the_limit_is_refused(database: TestDatabase, aiohttp_client: Client) -> None:
    app = create_app(database.settings())

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    app.router.add_post("/api/test/echo", echo)
    client = await aiohttp_client(app)
    response = await client.post("/api/test/echo", data=io.BytesIO(b"x" * (5 * 1024 * 1024)))
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_the_server_refuses_a_role_that_bypasses_rls(database: TestDatabase) -> None:
    app = create_app(database.settings(database_app_url=database.owner_url))
    runner = web.AppRunner(app)
    with pytest.raises(StartupError, match="row-level security would not hold"):
        await runner.setup()
    await runner.cleanup()


async def test_the_server_refuses_a_database_that_needs_migrating(fresh_database: TestDatabase) -> None:
    await migrate_database(fresh_database.owner_url)
    owner = await asyncpg.connect(fresh_database.owner_url)
    try:
        await owner.execute(
            "delete from schema_migrations where version = (select max(version) from schema_migrations)"
        )
    finally:
        await owner.close()
    runner = web.AppRunner(create_app(fresh_database.settings()))
    with pytest.raises(StartupError, match="run `fiv-console migrate`"):
        await runner.setup()
    await runner.cleanup()


async def test_the_login_page_renders_with_its_stylesheet_and_security_headers(
    database: TestDatabase, aiohttp_client: Client
) -> None:
    client = await aiohttp_client(create_app(database.settings()))
    page = await client.get("/login")
    assert page.status == 200
    html = await page.text()
    assert '<link rel="stylesheet" href="/static/console.css">' in html
    assert "<script>" not in html
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    stylesheet = await client.get("/static/console.css")
    assert stylesheet.status == 200
    assert stylesheet.content_type == "text/css"
    assert stylesheet.headers["X-Content-Type-Options"] == "nosniff"
    health = await client.get("/health")
    assert health.headers["X-Frame-Options"] == "DENY"
