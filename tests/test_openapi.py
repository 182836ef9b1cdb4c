"""The OpenAPI document: valid OpenAPI 3.1, one entry per routed operation with what its table entry says,
served publicly at /api/openapi.json, and readable at /api/docs under the same Content-Security-Policy."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel, ConfigDict, RootModel, computed_field

from fiv_console.web.api.registry import operations
from fiv_console.web.api.routing import ADMIN, ApiCall, NoInput, Operation, PageQuery, RouteTable
from fiv_console.web.openapi import build_document
from tests.api import Browsers

DOCUMENT = build_document(operations())
SCHEMAS = DOCUMENT["components"]["schemas"]


def _entry(operation: Operation) -> dict[str, Any]:
    return DOCUMENT["paths"][operation.path][operation.method.lower()]  # type: ignore[no-any-return]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _success(operation: Operation) -> dict[str, Any]:
    response = _entry(operation)["responses"][str(operation.status)]
    return response["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    errors = [error.message for error in OpenAPIV31SpecValidator(DOCUMENT).iter_errors()]
    assert errors == []


def test_every_operation_appears_with_its_method_path_and_id() -> None:
    routed = {(op.method.lower(), op.path) for op in operations()}
    documented = {(method, path) for path, item in DOCUMENT["paths"].items() for method in item}
    assert documented == routed
    ids = [op.operation_id for op in operations()]
    assert sorted(_entry(op)["operationId"] for op in operations()) == sorted(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("operation", operations(), ids=[op.operation_id for op in operations()])
def test_each_entry_says_what_the_route_table_says(operation: Operation) -> None:
    entry = _entry(operation)
    assert entry["summary"] == operation.summary
    assert entry["tags"] == [operation.tag]

    if operation.roles is None:
        assert entry["security"] == []
        assert entry["x-roles"] == []
        assert "no sign-in" in entry["description"]
    else:
        assert set(entry["x-roles"]) == operation.roles
        assert all(role in entry["description"] for role in operation.roles)
        schemes = [set(requirement) for requirement in entry["security"]]
        needs_csrf = operation.method not in ("GET", "HEAD")
        assert schemes == [{"session", "csrf"} if needs_csrf else {"session"}, {"bearer"}]

    parameters = entry.get("parameters", [])
    path_parameters = [p for p in parameters if p["in"] == "path"]
    assert [p["name"] for p in path_parameters] == operation.path_parameters
    assert all(p["required"] and p["schema"] == {"type": "string", "format": "uuid"} for p in path_parameters)

    query_fields = {} if operation.query is NoInput else operation.query.model_fields
    query_parameters = {p["name"]: p for p in parameters if p["in"] == "query"}
    assert set(query_parameters) == {field.alias or name for name, field in query_fields.items()}
    for name, field in query_fields.items():
        parameter = query_parameters[field.alias or name]
        assert parameter["required"] == field.is_required()
        # Absent means None: a query string has no null to send.
        assert "null" not in str(parameter["schema"])

    if operation.upload:
        form = entry["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["required"] == ["file"]
    elif operation.body is NoInput:
        assert "requestBody" not in entry
    else:
        body = entry["requestBody"]
        assert body["required"] is True
        schema = _resolve(body["content"]["application/json"]["schema"])
        if not issubclass(operation.body, RootModel):
            assert set(schema["properties"]) == {f.alias or n for n, f in operation.body.model_fields.items()}

    if operation.file_answer:
        file = entry["responses"][str(operation.status)]["content"]["*/*"]["schema"]
        assert file == {"type": "string", "format": "binary"}
        assert "304" in entry["responses"]
    elif operation.stream_answer is not None:
        document = entry["responses"][str(operation.status)]["content"][operation.stream_answer]["schema"]
        assert document == {"type": "string"}
    else:
        envelope = _success(operation)
        assert envelope["properties"]["success"] == {"const": True}
        assert envelope["additionalProperties"] is False
        if operation.paginated:
            assert "pagination" in envelope["required"]
        else:
            assert "pagination" not in envelope["properties"]
        if operation.response is None:
            assert envelope["properties"]["data"] == {"type": "null"}

    responses = entry["responses"]
    assert "default" in responses
    assert "400" in responses
    if operation.roles is not None:
        assert {"401", "403"} <= set(responses)
    if operation.path_parameters:
        assert "404" in responses


def test_creates_answer_201() -> None:
    creates = [op for op in operations() if op.status == 201]
    assert creates, "the table has no create operations"
    for operation in creates:
        assert set(_entry(operation)["responses"]) >= {"201"}
        assert "200" not in _entry(operation)["responses"]


def test_errors_share_one_envelope_schema() -> None:
    error = _resolve(DOCUMENT["components"]["responses"]["Error"]["content"]["application/json"]["schema"])
    assert error["required"] == ["success", "data", "error"]
    assert error["properties"]["success"]["const"] is False
    assert error["properties"]["data"]["type"] == "null"
    problem = _resolve(error["properties"]["error"])
    assert problem["required"] == ["code", "message"]
    assert "details" in problem["properties"]


def test_security_schemes_are_the_cookie_the_csrf_header_and_bearer() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["session"] == schemes["session"] | {"type": "apiKey", "in": "cookie", "name": "fiv_session"}
    assert schemes["csrf"] == schemes["csrf"] | {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"}
    assert schemes["bearer"] == schemes["bearer"] | {"type": "http", "scheme": "bearer"}


def test_no_secret_is_part_of_an_answer_schema() -> None:
    for operation in (op for op in operations() if not (op.file_answer or op.stream_answer)):
        for word in ("password", "password_hash", "token_hash", "access_token"):
            assert f'"{word}"' not in str(_success(operation)).replace("'", '"'), (operation.operation_id, word)
    answer_models = [name for name in SCHEMAS if not name.endswith("-Input")]
    for name in answer_models:
        properties = SCHEMAS[name].get("properties", {})
        assert not {"password_hash", "token_hash"} & set(properties), name


class Thing(BaseModel):
    """Differs between its input and output schemas: the computed field exists only in answers."""

    model_config = ConfigDict(extra="forbid")

    name: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def shout(self) -> str:
        return self.name.upper()


def _thing_table() -> RouteTable:
    def made_elsewhere() -> type[BaseModel]:
        class Thing(BaseModel):
            """Same class name, another model: both must survive in components."""

            when: datetime

        return Thing

    table = RouteTable()

    async def make_thing(call: ApiCall[Thing, NoInput]) -> Thing:
        return call.body

    async def list_other_things(call: ApiCall[NoInput, PageQuery]) -> None:
        return None

    table.route("POST", "/api/things", roles=ADMIN, summary="Make", tag="things", body=Thing, response=Thing)(
        make_thing
    )
    table.route(
        "GET", "/api/other-things", roles=ADMIN, summary="List", tag="things", query=PageQuery,
        response=list[made_elsewhere()], paginated=True,
    )(list_other_things)  # fmt: skip
    return table


def test_a_model_whose_input_and_output_differ_gets_two_schemas_and_namesakes_both_survive() -> None:
    document = build_document(_thing_table().operations)
    assert OpenAPIV31SpecValidator(document).is_valid()
    schemas = document["components"]["schemas"]
    post = document["paths"]["/api/things"]["post"]
    body_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    answer_ref = post["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]["$ref"]
    assert body_ref != answer_ref
    body, answer = (schemas[ref.rsplit("/", 1)[-1]] for ref in (body_ref, answer_ref))
    assert "shout" not in body["properties"]
    assert body["additionalProperties"] is False
    assert "shout" in answer["properties"]
    listed = document["paths"]["/api/other-things"]["get"]["responses"]["200"]["content"]["application/json"]
    item_ref = listed["schema"]["properties"]["data"]["items"]["$ref"]
    assert "when" in schemas[item_ref.rsplit("/", 1)[-1]]["properties"]
    assert item_ref not in (body_ref, answer_ref)


def test_a_resource_model_named_like_the_envelope_models_does_not_take_their_place() -> None:
    class Pagination(BaseModel):
        cursor: str

    class ErrorAnswer(BaseModel):
        reply: str

    table = RouteTable()

    async def list_pages(call: ApiCall[NoInput, PageQuery]) -> None:
        return None

    async def answer(call: ApiCall[NoInput, NoInput]) -> None:
        return None

    table.route("GET", "/api/pages", roles=ADMIN, summary="L", tag="x", response=list[Pagination], paginated=True)(
        list_pages
    )
    table.route("GET", "/api/answer", roles=ADMIN, summary="A", tag="x", response=ErrorAnswer)(answer)
    document = build_document(table.operations)
    assert OpenAPIV31SpecValidator(document).is_valid()
    schemas = document["components"]["schemas"]

    def target(ref: dict[str, Any]) -> dict[str, Any]:
        return schemas[ref["$ref"].rsplit("/", 1)[-1]]  # type: ignore[no-any-return]

    listed = document["paths"]["/api/pages"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "hasNext" in target(listed["properties"]["pagination"])["properties"]
    assert "cursor" in target(listed["properties"]["data"]["items"])["properties"]
    error = document["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    assert "error" in target(error)["properties"]


def test_two_operations_with_one_handler_name_are_refused() -> None:
    table = RouteTable()

    async def same(call: ApiCall[NoInput, NoInput]) -> None:
        return None

    table.route("GET", "/api/a", roles=ADMIN, summary="A", tag="x")(same)
    table.route("GET", "/api/b", roles=ADMIN, summary="B", tag="x")(same)
    with pytest.raises(ValueError, match="operationId 'same'"):
        build_document(table.operations)


async def test_the_document_is_served_publicly(browsers: Browsers) -> None:
    anonymous = await browsers.new()
    first = await anonymous.get("/api/openapi.json")
    assert first.status == 200
    assert first.headers["Content-Type"].startswith("application/json")
    assert first.body == DOCUMENT
    again = await anonymous.get("/api/openapi.json")
    assert again.body == first.body


async def test_the_docs_page_and_its_script_are_ours_and_under_the_policy(browsers: Browsers) -> None:
    anonymous = await browsers.new()
    page = await anonymous.get("/api/docs")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.body
    assert '<script type="module" src="/static/api-docs.js"></script>' in html
    assert "<script>" not in html
    assert "style=" not in html
    assert re.search(r"https?://", html) is None, "no CDN: the page works offline"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy

    script = await anonymous.get("/static/api-docs.js")
    assert script.status == 200
    assert script.headers["Content-Type"].startswith(("text/javascript", "application/javascript"))
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in script.headers
    assert 'fetch("/api/openapi.json"' in script.body
    assert "innerHTML" not in script.body
    assert "insertAdjacentHTML" not in script.body
