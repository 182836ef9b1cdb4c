"""`GET /metrics`: the Prometheus text format, behind `METRICS_TOKEN` when it is set. The deployment's
waiting lines are read (or taken from the last few seconds' read) before the exposition."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from fiv_console.keys import (
    database_key,
    hub_key,
    loop_lag_key,
    metrics_registry_key,
    settings_key,
    waiting_lines_key,
)
from fiv_console.observability.metrics import InstanceCollector, InstanceState, exposition


class _WaitingLinesOfApp(Collector):
    """The waiting lines the app holds (read by the handler just before the exposition)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        if waiting_lines_key in self._app:
            yield from self._app[waiting_lines_key].collect()


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
    registry.register(_WaitingLinesOfApp(app))
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
    if database_key in request.app and waiting_lines_key in request.app:
        await request.app[waiting_lines_key].refresh(request.app[database_key])
    body = exposition(request.app[metrics_registry_key])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
