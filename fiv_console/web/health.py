"""`GET /health`: 200 when the database answers (Redis down only degrades), 503 naming what failed."""

from __future__ import annotations

from aiohttp import web

from fiv_console.keys import database_key, redis_key
from fiv_console.observability.health import health
from fiv_console.web.envelope import json_response


async def get_health(request: web.Request) -> web.Response:
    result = await health(request.app[database_key], request.app.get(redis_key))
    return json_response(
        result.model_dump(mode="json", exclude_none=True), status=503 if result.status == "down" else 200
    )
