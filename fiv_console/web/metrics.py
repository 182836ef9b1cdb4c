"""`GET /metrics`: the Prometheus text format, behind `METRICS_TOKEN` when it is set."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CollectorRegistry

from fiv_console.keys import database_key, hub_key, loop_lag_key, metrics_registry_key, settings_key
from fiv_console.observability.metrics import InstanceCollector, InstanceState, exposition


def instance_registry(app: web.Application) -> CollectorRegistry:
    """The app's scrape-time state, read from its live objects (those not started yet read as zero)."""

    def load() -> tuple[int, int]:
        return app[hub_key].load() if hub_key in app else (0, 0)

    def pool_size() -> int:
        return app[database_key].pool.get_size() if database_key in app else 0

    def pool_idle() -> int:
        return app[database_key].pool.get_idle_size() if database_key in app else 0

    state = InstanceState(
        sockets=lambda: load()[0],
        queued_frames=lambda: load()[1],
        pool_size=pool_size,
        pool_idle=pool_idle,
        pool_waiting=lambda: app[database_key].acquires.under_way if database_key in app else 0,
        loop_lag_seconds=lambda: app[loop_lag_key].last_seconds if loop_lag_key in app else 0.0,
    )
    registry = CollectorRegistry()
    registry.register(InstanceCollector(state))
    return registry


# The text format every Prometheus reads (prometheus-client's newest default names a later version).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def get_metrics(request: web.Request) -> web.Response:
    token = request.app[settings_key].metrics_token
    if token is not None:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPUnauthorized(text="a bearer token is needed", headers={"WWW-Authenticate": "Bearer"})
    body = exposition(request.app[metrics_registry_key])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
