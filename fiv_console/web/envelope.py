"""The `/api` answer envelope: `{success, data, error?, pagination?}`, serialized with orjson."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

_STATUS_BY_CODE = {
    "VALIDATION_ERROR": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "REQUEST_TIMEOUT": 408,
    "CONFLICT": 409,
    "WINDOW_CLOSED": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "TEMPLATE_MISMATCH": 422,
    "RATE_LIMITED": 429,
    "INTERNAL_ERROR": 500,
    "UNAVAILABLE": 503,
}
# For a bare HTTP status, the general code: a 409 is a CONFLICT unless a domain error says more.
_CODE_BY_STATUS = {status: code for code, status in reversed(_STATUS_BY_CODE.items())}


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_fragment(value: Any) -> orjson.Fragment:
    """`value` (dicts, lists, text, numbers, timezone-aware times) written once, to be placed in an answer as
    it is: how a route answers rows it built in a model's shape, without validating and dumping the models.
    Times in UTC end in `Z`, as pydantic writes them."""
    return orjson.Fragment(orjson.dumps(value, option=orjson.OPT_UTC_Z))


def json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, default=_default),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def ok(data: Any, *, status: int = 200, pagination: Mapping[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if pagination is not None:
        body["pagination"] = pagination
    return json_response(body, status=status)


def status_for(code: str) -> int:
    return _STATUS_BY_CODE.get(code, 500)


def code_for(status: int) -> str:
    return _CODE_BY_STATUS.get(status, "VALIDATION_ERROR" if 400 <= status < 500 else "INTERNAL_ERROR")


def error(
    code: str,
    message: str,
    *,
    details: Any = None,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    problem: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        problem["details"] = details
    return json_response(
        {"success": False, "data": None, "error": problem},
        status=status if status is not None else status_for(code),
        headers=headers,
    )
