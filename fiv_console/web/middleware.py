"""Request middleware: the request id and access log line, and turning errors into `/api` envelopes."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from fiv_console.errors import DomainError, RateLimited, Unavailable
from fiv_console.observability.context import request_id_var, tenant_id_var, user_id_var
from fiv_console.observability.metrics import HTTP_REQUESTS
from fiv_console.web import envelope

log = logging.getLogger(__name__)
access_log = logging.getLogger("fiv_console.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and plain, so it cannot forge log structure.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_RETRY_AFTER_SECONDS = "5"


def _request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _ACCEPTABLE_REQUEST_ID.match(given) else uuid.uuid4().hex


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (echoed back), reset the log context, and log one access line."""
    request_id = _request_id(request)
    request_id_var.set(request_id)
    tenant_id_var.set(None)
    user_id_var.set(None)
    started = time.perf_counter()
    status: int | None = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    except asyncio.CancelledError:
        status = None  # cut short by a stopping server: nothing was answered
        raise
    finally:
        elapsed = time.perf_counter() - started
        if status is not None:
            HTTP_REQUESTS.labels(request.method, _route_of(request), str(status)).observe(elapsed)
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "client": request.remote,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )


def _route_of(request: web.Request) -> str:
    """The route's template (`/api/conversations/{conversation_id}`), never the path itself: ids and
    made-up paths would make a series each."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


# No inline scripts or styles, nothing from other origins: data in a page can never run as code.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An `on_response_prepare` hook, so error pages and static files get the headers too."""
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _is_api(request: web.Request) -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


@web.middleware
async def api_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under `/api`, every failure is an envelope; an unexpected one is logged and told apart by id only."""
    if not _is_api(request):
        return await handler(request)
    try:
        return await handler(request)
    except Unavailable as exc:
        return envelope.error(exc.code, exc.message, headers={"Retry-After": _RETRY_AFTER_SECONDS})
    except RateLimited as exc:
        return envelope.error(exc.code, exc.message, headers={"Retry-After": str(math.ceil(exc.retry_after))})
    except DomainError as exc:
        return envelope.error(exc.code, exc.message, details=exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
        return envelope.error(envelope.code_for(exc.status), exc.reason, status=exc.status, headers=headers)
    except Exception:
        log.exception("unhandled error", extra={"method": request.method, "path": request.path})
        return envelope.error(
            "INTERNAL_ERROR",
            f"internal error; quote request id {request_id_var.get()} when reporting it",
        )
