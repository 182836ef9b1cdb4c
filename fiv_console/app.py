"""`create_app(settings)`: the application's routes, middleware and resources, in start-up order."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web
from redis.asyncio import Redis

from fiv_console.access import STAFF_ROLES
from fiv_console.accounts.rate_limit import LocalRateLimiter, RedisRateLimiter
from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.bus.base import Bus
from fiv_console.bus.local import LocalBus
from fiv_console.bus.redis import RedisBus
from fiv_console.db.startup import StartupError, close_server_database, open_server_database
from fiv_console.keys import (
    assignment_key,
    bus_key,
    database_key,
    graph_client_key,
    group_names_key,
    hub_key,
    in_flight_key,
    instance_id_key,
    intake_key,
    loop_lag_key,
    metrics_registry_key,
    rate_limiter_key,
    redis_key,
    settings_key,
    template_cache_key,
    typing_throttle_key,
    upkeep_key,
    waiting_lines_key,
)
from fiv_console.messages.group_names import GroupNames
from fiv_console.messages.intake import Intake
from fiv_console.messages.sending import Dispatcher, TypingThrottle
from fiv_console.observability.loop_lag import LoopLag
from fiv_console.observability.waiting import WaitingLines
from fiv_console.realtime import wire
from fiv_console.realtime.hub import Hub
from fiv_console.realtime.upkeep import Upkeep, run_retention
from fiv_console.resources import STATIC_DIR, TEMPLATES_DIR
from fiv_console.settings import Settings
from fiv_console.web import admin_pages, anonymous_bodies, forwarded, metrics, openapi, pages, webhooks, ws
from fiv_console.web.api import registry as api_registry
from fiv_console.web.health import get_health
from fiv_console.web.in_flight import InFlight
from fiv_console.web.middleware import add_security_headers, api_error_middleware, request_context_middleware
from fiv_console.web.sessions import setup_sessions
from fiv_console.whatsapp.client import GraphClient, RetryPolicy, TokenBuckets
from fiv_console.whatsapp.signature import SIGNATURE_HEADER
from fiv_console.whatsapp.template_cache import TemplateCache

log = logging.getLogger(__name__)

# Webhook bodies may reach 3 MB (Meta's limit); the margin covers JSON escaping. Signed-in callers' JSON
# bodies share the same limit.
CLIENT_MAX_SIZE = 4 * 1024 * 1024
WEBHOOK_MAX_BODY = CLIENT_MAX_SIZE
# An email, a password of at most 1,024 characters and a workspace: a few KiB, and under this even when every
# character is \u-escaped as a surrogate pair (12 bytes each).
SIGN_IN_MAX_BODY = 16 * 1024


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The pool, once the role is known to be held by row-level security and the schema is current."""
    settings = app[settings_key]
    db = await open_server_database(settings, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size)
    app[database_key] = db
    try:
        yield
    finally:
        await close_server_database(db)


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """A Redis client when REDIS_URL is set; connections are made lazily, so Redis may start later."""
    url = app[settings_key].redis_url
    assert url is not None
    client: Redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
    app[redis_key] = client
    app[rate_limiter_key] = RedisRateLimiter(client)
    try:
        yield
    finally:
        await client.aclose()


async def graph_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """One HTTP session for every Graph API call (cookies Meta might set are of no use and not kept), and the
    cache of channels' templates fetched through it, whose fetches still running are cancelled first."""
    settings = app[settings_key]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        client = app[graph_client_key] = GraphClient(
            session,
            settings.whatsapp_graph_url,
            retry=RetryPolicy(total_time=settings.whatsapp_send_timeout),
            buckets=TokenBuckets(rate=settings.whatsapp_rate_per_second),
        )
        cache = app[template_cache_key] = TemplateCache(client)
        try:
            yield
        finally:
            await cache.close()


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    """The bus (Redis when configured, else in-process), the hub of this instance's sockets, its upkeep,
    the event log's retention, the webhook intake that announces through the hub (with the fetcher of
    WhatsApp groups' names), and the assignment loop with the dispatcher of its automatic replies."""
    settings, db = app[settings_key], app[database_key]
    bus: Bus[wire.Message] = (
        RedisBus(app[redis_key], settings.redis_url, wire.CODEC) if settings.redis_url else LocalBus()
    )
    hub = Hub(db, bus)
    upkeep = Upkeep(db, hub, instance_id=app[instance_id_key], grace=settings.presence_grace_seconds)
    app[bus_key], app[hub_key], app[upkeep_key] = bus, hub, upkeep
    names = app[group_names_key] = GroupNames(db, app[graph_client_key], hub)
    app[intake_key] = Intake(db, hub, names=names)
    dispatcher = Dispatcher(db, app[graph_client_key], hub)
    assignment = app[assignment_key] = AssignmentLoop(
        db, hub, grace=settings.presence_grace_seconds, dispatcher=dispatcher
    )
    hub.listen(assignment.heard)
    tasks = [
        asyncio.create_task(upkeep.run(), name="presence-upkeep"),
        asyncio.create_task(assignment.run(), name="assignment-loop"),
        asyncio.create_task(
            run_retention(db, keep=timedelta(days=settings.event_retention_days)), name="event-retention"
        ),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await dispatcher.close()
        await names.close()
        await hub.close()
        await bus.close()


async def loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    """The event loop's lag, sampled for /health by a task of its own."""
    lag = app[loop_lag_key] = LoopLag()
    task = asyncio.create_task(lag.run(), name="loop-lag")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def close_sockets(app: web.Application) -> None:
    """On shutdown, before in-flight requests are awaited: open sockets would otherwise hold it up."""
    if hub_key in app:
        app[hub_key].close_sockets()


async def drain(app: web.Application) -> None:
    """The server is stopping (it no longer listens): console sockets close with 1012, responses close their
    connections, and this returns once every request in flight has finished. The loops and pools still run
    meanwhile, so a webhook still arriving is stored and answered."""
    in_flight = app[in_flight_key]
    in_flight.stopping = True
    await close_sockets(app)
    await in_flight.finished()


def create_app(settings: Settings) -> web.Application:
    if settings.secret_key is None:
        raise StartupError("SECRET_KEY is not set: sessions cannot be signed")
    in_flight = InFlight()
    # Bodies read before their sender has proven anything have guards of their own (`anonymous_bodies`).
    guards = {
        ("POST", "/webhooks/whatsapp"): anonymous_bodies.guard(
            settings, limit=WEBHOOK_MAX_BODY, required_header=SIGNATURE_HEADER, always_unavailable=True
        ),
        ("POST", "/api/auth/login"): anonymous_bodies.guard(settings, limit=SIGN_IN_MAX_BODY),
    }
    app = web.Application(
        middlewares=[
            in_flight.middleware(),
            # Before everything that reads the client's address or the scheme: they see the client's own.
            forwarded.middleware(settings.trusted_proxies),
            request_context_middleware,
            api_error_middleware,
            pages.not_found_page_middleware,
            anonymous_bodies.middleware(guards),
        ],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[settings_key] = settings
    app[in_flight_key] = in_flight
    app[instance_id_key] = uuid.uuid4()
    app[rate_limiter_key] = LocalRateLimiter()
    app[typing_throttle_key] = TypingThrottle()
    app[metrics_registry_key] = metrics.instance_registry(app)
    app[waiting_lines_key] = WaitingLines()
    setup_sessions(app, settings)
    app.cleanup_ctx.append(loop_lag_ctx)
    app.cleanup_ctx.append(database_ctx)
    if settings.redis_url:
        app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(graph_client_ctx)
    app.cleanup_ctx.append(realtime_ctx)
    app.on_shutdown.append(close_sockets)
    app.on_response_prepare.append(add_security_headers)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    app.router.add_static("/static/", STATIC_DIR, name="static")
    app[aiohttp_jinja2.static_root_key] = "/static"
    app.router.add_get("/", pages.console)
    app.router.add_get("/login", pages.login)
    admin_pages.install(app)
    app.router.add_get("/wallboard", pages.page("wallboard.html", roles=STAFF_ROLES))
    app.router.add_get("/reports", pages.page("reports.html", roles=STAFF_ROLES))
    app.router.add_get("/health", get_health)
    app.router.add_get("/metrics", metrics.get_metrics)
    app.router.add_get("/ws", ws.websocket)
    app.router.add_get("/webhooks/whatsapp", webhooks.verify_subscription)
    app.router.add_post("/webhooks/whatsapp", webhooks.receive)
    api_registry.install(app)
    app.router.add_get("/api/openapi.json", openapi.get_document)
    app.router.add_get("/api/docs", openapi.docs_page)
    return app
