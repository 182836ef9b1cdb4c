"""The OpenAPI 3.1 document of the REST API, built from the route table and its own pydantic models.

Nothing is written here per operation: every `Operation` of `registry.operations()` brings its path, roles,
inputs and answer, so an operation is documented the moment it is routed, and the document cannot drift
from what the server validates. Schemas are pydantic's JSON schemas (draft 2020-12, the dialect OpenAPI 3.1
adopts): inputs in validation mode, answers in serialization mode, all generated in one pass so a model
whose two modes differ gets two names (`Name-Input`, `Name-Output`) instead of one silently overwriting the
other.

Served at `GET /api/openapi.json` (the bare document, not wrapped in the envelope: it is what OpenAPI tools
load) and readable at `GET /api/docs`, a page rendered in the browser by `static/api-docs.js`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, Literal

import aiohttp_jinja2
import orjson
from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from fiv_console import __version__
from fiv_console.accounts.users import ROLES
from fiv_console.constants import CSRF_HEADER, SESSION_COOKIE
from fiv_console.web.api import registry
from fiv_console.web.api.routing import MAX_LIMIT, NoInput, Operation

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Pagination(BaseModel):
    """Where a page of a list sits in the whole list."""

    page: int | None = Field(default=None, ge=1, description="Absent on lists paged by a cursor.")
    limit: int = Field(ge=1, le=MAX_LIMIT)
    total: int = Field(ge=0)
    hasNext: bool  # camelCase: the envelope's published spelling (README)
    totalIsAtLeast: bool | None = Field(
        default=None, description="Present where totals are capped: true when `total` is the cap, not a count."
    )


class Problem(BaseModel):
    """What went wrong: a stable code for programs, a message for people, field-level details when known."""

    code: str = Field(
        description="VALIDATION_ERROR, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, METHOD_NOT_ALLOWED, "
        "REQUEST_TIMEOUT, CONFLICT, PAYLOAD_TOO_LARGE, RATE_LIMITED, INTERNAL_ERROR or UNAVAILABLE"
    )
    message: str
    details: Any = Field(
        default=None,
        description="For VALIDATION_ERROR, a list of {field, message, type}; absent when there is nothing to add.",
    )


class ErrorAnswer(BaseModel):
    """The envelope of every failed `/api` call."""

    success: Literal[False]
    data: None
    error: Problem


# Shared error answers, referenced from the operations they can happen to.
_ERROR_RESPONSES: dict[str, str] = {
    "ValidationError": "VALIDATION_ERROR: a path id, the query string or the body is not valid; nothing was done.",
    "Unauthenticated": "UNAUTHENTICATED: not signed in, or the session or API token has ended.",
    "Forbidden": f"FORBIDDEN: the caller's role may not do this, or a cookie-authenticated change lacks {CSRF_HEADER}.",
    "NotFound": "NOT_FOUND: no such id in the caller's tenant (another tenant's ids are never told apart).",
    "Error": (
        "Any other failure, in the same envelope: REQUEST_TIMEOUT 408 (the body came too slowly), CONFLICT 409, "
        "PAYLOAD_TOO_LARGE 413, TEMPLATE_MISMATCH 422 (a template send that does not fit its template), "
        "RATE_LIMITED 429 and "
        "UNAVAILABLE 503 (both with Retry-After), INTERNAL_ERROR 500 (quote the X-Request-ID)."
    ),
}

_DESCRIPTION = f"""The REST API of Fi.V Console.

Every answer is an envelope: `{{"success": true, "data": ...}}`, with `pagination` (`page`, `limit`, `total`,
`hasNext`) on lists, or `{{"success": false, "data": null, "error": {{"code", "message", "details"?}}}}`.
Lists take `page` and `limit` (at most {MAX_LIMIT}).

Sign in from a browser with `POST /api/auth/login`; the session lives in the `{SESSION_COOKIE}` cookie, and
every POST, PUT, PATCH and DELETE must carry the `{CSRF_HEADER}` header with the `csrf_token` of the login
answer (or of `GET /api/me`). Integrations use an API token (`POST /api/tokens`, admins) as
`Authorization: Bearer <token>`, with no CSRF header. Each operation names the roles that may call it
(`x-roles`)."""

_SECURITY_SCHEMES: dict[str, Any] = {
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": f"The browser session set by POST /api/auth/login. A POST, PUT, PATCH or DELETE with it "
        f"must also carry the {CSRF_HEADER} header (the `csrf` scheme).",
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "The session's csrf_token (from POST /api/auth/login or GET /api/me); needed with the "
        "session cookie on every POST, PUT, PATCH and DELETE.",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token created by an admin with POST /api/tokens; acts with the token's role and "
        "needs no CSRF token.",
    },
}


def build_document(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing `operations`."""
    operations = list(operations)
    _check_unique_ids(operations)
    refs, schemas = _schemas(operations)
    # Taken from the generated refs, not spelled out: a namesake model elsewhere would rename these.
    error_answer = refs[(("envelope", "ErrorAnswer"), "serialization")]
    paths: dict[str, dict[str, Any]] = {}
    tags: list[str] = []
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, refs, schemas)
        if operation.tag not in tags:
            tags.append(operation.tag)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Fi.V Console API", "version": __version__, "description": _DESCRIPTION},
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                name: _error_response(description, error_answer, retry_after=name == "Error")
                for name, description in _ERROR_RESPONSES.items()
            },
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }


def _check_unique_ids(operations: list[Operation]) -> None:
    seen: set[str] = set()
    for operation in operations:
        if operation.operation_id in seen:
            raise ValueError(f"two operations share the operationId {operation.operation_id!r} (the handler's name)")
        seen.add(operation.operation_id)


# What a schema is generated for: (what it is, which operation), e.g. ("body", "create_user").
_Key = tuple[str, str]


def _schemas(operations: list[Operation]) -> tuple[dict[tuple[_Key, JsonSchemaMode], Any], dict[str, Any]]:
    """Every input and answer schema, generated together so that shared models are named once."""
    inputs: list[tuple[_Key, JsonSchemaMode, TypeAdapter[Any]]] = [
        (("envelope", "Pagination"), "serialization", TypeAdapter(Pagination)),
        (("envelope", "ErrorAnswer"), "serialization", TypeAdapter(ErrorAnswer)),
    ]
    for operation in operations:
        if operation.body is not NoInput:
            inputs.append((("body", operation.operation_id), "validation", TypeAdapter(operation.body)))
        if operation.query is not NoInput:
            inputs.append((("query", operation.operation_id), "validation", TypeAdapter(operation.query)))
        if operation.response is not None:
            inputs.append((("response", operation.operation_id), "serialization", TypeAdapter(operation.response)))
    refs, top = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
    return refs, dict(top.get("$defs", {}))


def _operation(
    operation: Operation, refs: dict[tuple[_Key, JsonSchemaMode], Any], schemas: dict[str, Any]
) -> dict[str, Any]:
    op_id = operation.operation_id
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for name in operation.path_parameters
    ]
    if operation.query is not NoInput:
        parameters += _query_parameters(_resolve(refs[(("query", op_id), "validation")], schemas))
    described: dict[str, Any] = {
        "operationId": op_id,
        "summary": operation.summary,
        "description": _roles_sentence(operation),
        "tags": [operation.tag],
        "x-roles": _roles(operation),
        "security": _security(operation),
    }
    if operation.file_answer:
        parameters.append(_IF_NONE_MATCH)
    if parameters:
        described["parameters"] = parameters
    if operation.body is not NoInput:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(("body", op_id), "validation")]}},
        }
    if operation.upload:
        described["requestBody"] = _UPLOAD_BODY
    if operation.file_answer:
        success = _file_answers(operation)
    elif operation.stream_answer is not None:
        success = {
            str(operation.status): {
                "description": operation.summary,
                "content": {operation.stream_answer: {"schema": {"type": "string"}}},
            }
        }
    else:
        data = {"type": "null"} if operation.response is None else refs[(("response", op_id), "serialization")]
        pagination = refs[(("envelope", "Pagination"), "serialization")] if operation.paginated else None
        success = {
            str(operation.status): {
                "description": operation.summary,
                "content": {"application/json": {"schema": _success_envelope(data, pagination)}},
            }
        }
    described["responses"] = {**success, **_error_responses(operation)}
    return described


_UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary", "description": "With its content type."}},
                "required": ["file"],
                "additionalProperties": False,
            }
        }
    },
}
_IF_NONE_MATCH: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of a copy the client holds: 304 if it is still this file.",
    "schema": {"type": "string"},
}


def _file_answers(operation: Operation) -> dict[str, Any]:
    """A file in its own content type (errors are still envelopes), or 304 for the copy the client holds."""
    headers = {
        name: {"description": description, "schema": {"type": "string"}}
        for name, description in (
            ("Cache-Control", "How long the client may keep the file."),
            ("ETag", "Identifies the file, for If-None-Match."),
        )
    }
    return {
        str(operation.status): {
            "description": operation.summary,
            "headers": headers,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        "304": {"description": "Not Modified: the copy the client holds is this file.", "headers": headers},
    }


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].removeprefix(REF_TEMPLATE.removesuffix("{model}"))]
    return schema


def _query_parameters(model_schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(model_schema.get("required", []))
    parameters = []
    for name, schema in model_schema.get("properties", {}).items():
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        schema = _without_null(schema)
        if "description" in schema:
            parameter["description"] = schema.pop("description")
        parameter["schema"] = schema
        parameters.append(parameter)
    return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is left out rather than sent as null (a query string cannot carry null)."""
    options = schema.get("anyOf")
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    if rest.get("default", ...) is None:
        del rest["default"]
    if options is None:
        return rest
    non_null = [option for option in options if option != {"type": "null"}]
    if len(non_null) == 1:
        return {**rest, **non_null[0]}
    return {**rest, "anyOf": non_null}


def _roles(operation: Operation) -> list[str]:
    if operation.roles is None:
        return []
    return [role for role in ROLES if role in operation.roles]


def _roles_sentence(operation: Operation) -> str:
    if operation.roles is None:
        return "Public: no sign-in needed."
    return "Roles: " + ", ".join(_roles(operation)) + "."


def _security(operation: Operation) -> list[dict[str, list[str]]]:
    if operation.roles is None:
        return []
    session: dict[str, list[str]] = {"session": []}
    if operation.method not in _SAFE_METHODS:
        session["csrf"] = []
    return [session, {"bearer": []}]


def _success_envelope(data: dict[str, Any], pagination: dict[str, Any] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"success": {"const": True}, "data": data}
    required = ["success", "data"]
    if pagination is not None:
        properties["pagination"] = pagination
        required.append("pagination")
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _error_responses(operation: Operation) -> dict[str, Any]:
    # The route table guarantees these; anything else an operation may answer is under `default`.
    names = {"400": "ValidationError"}
    if operation.roles is not None:
        names |= {"401": "Unauthenticated", "403": "Forbidden"}
    if operation.path_parameters:
        names["404"] = "NotFound"
    names["default"] = "Error"
    return {status: {"$ref": f"#/components/responses/{name}"} for status, name in names.items()}


def _error_response(description: str, error_answer: dict[str, Any], *, retry_after: bool) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": error_answer}}}
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again (with RATE_LIMITED and UNAVAILABLE).",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


@functools.cache
def _document_json() -> bytes:
    """Built on first use: the route table is fixed once the modules are imported."""
    return orjson.dumps(build_document(registry.operations()))


async def get_document(request: web.Request) -> web.Response:
    """`GET /api/openapi.json`: public, like any API reference."""
    return web.Response(body=_document_json(), content_type="application/json")


@aiohttp_jinja2.template("api_docs.html")
async def docs_page(request: web.Request) -> dict[str, Any]:
    """`GET /api/docs`: the page is static; `static/api-docs.js` renders the document into it."""
    return {}
