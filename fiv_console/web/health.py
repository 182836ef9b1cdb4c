"""`GET /health`: 200 when the database answers (Redis down, a stuck assignment loop or a late event loop only
degrade), 503 naming what failed."""

from __future__ import annotations

from aiohttp import web

from fiv_console.keys import assignment_key, database_key, loop_lag_key, redis_key
from fiv_console.observability.health import health
from fiv_console.web.envelope import json_response


async def get_health(request: web.Request) -> web.Response:
    app = request.app
    result = await health(
        app[database_key], app.get(redis_key), assignment=app.get(assignment_key), lag=app.get(loop_lag_key)
    )
    return json_response(
        result.model_dump(mode="json", exclude_none=True), status=503 if result.status == "down" else 200
    )
