"""One walk over every API operation that takes an id: another tenant's ids are always 404 NOT_FOUND.

The ids are real rows of tenant B; the caller is tenant A's admin, who may do anything in A. The request
bodies are the smallest valid ones, built from each operation's own body model, so the answer is about the
id and not about validation. A new operation joins the walk by itself; one whose body cannot be built
fails here until it can.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.web.api.registry import operations
from fiv_console.web.api.routing import NoInput, Operation
from tests.api import Browsers, TenantPeople
from tests.tenant_rows import TABLE_OF_ID, seed_every_table

ID_OPERATIONS = [op for op in operations() if op.path_parameters]


def _foreign_id(name: str, ids: dict[str, Any]) -> str:
    table = TABLE_OF_ID.get(name.removesuffix("_id"))
    assert table is not None, f"the walk does not know which table `{name}` names: add it to TABLE_OF_ID"
    return str(ids[table])


def _sample(schema: dict[str, Any], defs: dict[str, Any], name: str, ids: dict[str, Any]) -> Any:
    """The smallest value a JSON schema accepts (enough for the required fields of our models)."""
    if "$ref" in schema:
        return _sample(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name, ids)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [option for option in schema[key] if option.get("type") != "null"]
            return _sample(options[0], defs, name, ids)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "uuid":
            return _foreign_id(name, ids)
        if schema.get("format") == "email" or name == "email":
            return f"walk-{uuid.uuid4().hex[:8]}@walk.example"
        if "pattern" in schema:
            return {"phone_number_id": "9" * 12, "shortcut": "walk", "color": "#123456"}.get(name, "x")
        return "x" * max(int(schema.get("minLength", 1)), 10 if name.endswith("password") else 1)
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "object":
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        return {field: _sample(properties[field], defs, field, ids) for field in required}
    if kind == "array":
        return []
    raise AssertionError(f"no sample for `{name}`: {schema}")


def _body(operation: Operation, ids: dict[str, Any]) -> Any:
    if operation.body is NoInput:
        return None
    schema = operation.body.model_json_schema()
    return _sample(schema, schema.get("$defs", {}), operation.operation_id, ids)


@pytest.mark.parametrize("operation", ID_OPERATIONS, ids=[op.operation_id for op in ID_OPERATIONS])
async def test_another_tenants_id_is_not_found(
    operation: Operation, browsers: Browsers, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    async with tenant_tx(db, other_tenant.id) as conn:
        foreign = await seed_every_table(conn, other_tenant.id)
    admin = await browsers.signed_in(tenant.admin)
    path = operation.path
    for name in operation.path_parameters:
        path = path.replace("{" + name + "}", _foreign_id(name, foreign))
    answer = await admin.call(operation.method, path, json=_body(operation, foreign))
    assert answer.status == 404, (operation.method, path, answer.body)
    assert answer.code == "NOT_FOUND"
    assert answer.body["data"] is None


def test_the_walk_covers_every_resource_with_an_id() -> None:
    walked = {op.path.split("/")[2] for op in ID_OPERATIONS}
    assert {
        "users",
        "tokens",
        "queues",
        "channels",
        "contacts",
        "conversations",
        "canned-responses",
        "labels",
    } <= walked
