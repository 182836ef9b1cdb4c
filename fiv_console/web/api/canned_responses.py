"""Canned responses over the API: everyone signed in lists and reads them (the composer needs them);
supervisors and admins write them."""

from __future__ import annotations

from pydantic import Field

from fiv_console.messages import canned_responses
from fiv_console.messages.canned_responses import CannedResponse, CannedResponseCreate, CannedResponseUpdate
from fiv_console.text import NO_NUL
from fiv_console.web.api.routing import (
    ANYONE_SIGNED_IN,
    STAFF,
    ApiCall,
    Created,
    NoInput,
    Page,
    PageQuery,
    RouteTable,
)

routes = RouteTable()


class CannedResponseQuery(PageQuery):
    q: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=NO_NUL, description="Part of the shortcut or title."
    )


@routes.route(
    "GET", "/api/canned-responses", roles=ANYONE_SIGNED_IN, summary="List canned responses", tag="canned-responses",
    query=CannedResponseQuery, response=list[CannedResponse], paginated=True,
)  # fmt: skip
async def list_canned_responses(call: ApiCall[NoInput, CannedResponseQuery]) -> Page[CannedResponse]:
    query = call.query
    items, total = await canned_responses.list_canned_responses(
        call.conn, search=query.q, limit=query.limit, offset=query.offset
    )
    return Page(items, total, query)


@routes.route(
    "POST", "/api/canned-responses", roles=STAFF, summary="Create a canned response", tag="canned-responses",
    body=CannedResponseCreate, response=CannedResponse, status=201,
)  # fmt: skip
async def create_canned_response(call: ApiCall[CannedResponseCreate, NoInput]) -> Created[CannedResponse]:
    return Created(
        await canned_responses.create_canned_response(
            call.conn, tenant_id=call.caller.tenant_id, data=call.body, created_by=call.caller.user_id
        )
    )


@routes.route(
    "GET", "/api/canned-responses/{canned_response_id}", roles=ANYONE_SIGNED_IN, summary="One canned response",
    tag="canned-responses", response=CannedResponse,
)  # fmt: skip
async def get_canned_response(call: ApiCall[NoInput, NoInput]) -> CannedResponse:
    return await canned_responses.get_canned_response(call.conn, canned_response_id=call.ids["canned_response_id"])


@routes.route(
    "PATCH", "/api/canned-responses/{canned_response_id}", roles=STAFF, summary="Change a canned response",
    tag="canned-responses", body=CannedResponseUpdate, response=CannedResponse,
)  # fmt: skip
async def update_canned_response(call: ApiCall[CannedResponseUpdate, NoInput]) -> CannedResponse:
    return await canned_responses.update_canned_response(
        call.conn, canned_response_id=call.ids["canned_response_id"], data=call.body
    )


@routes.route(
    "DELETE", "/api/canned-responses/{canned_response_id}", roles=STAFF, summary="Delete a canned response",
    tag="canned-responses", response=CannedResponse,
)  # fmt: skip
async def delete_canned_response(call: ApiCall[NoInput, NoInput]) -> CannedResponse:
    return await canned_responses.delete_canned_response(call.conn, canned_response_id=call.ids["canned_response_id"])
