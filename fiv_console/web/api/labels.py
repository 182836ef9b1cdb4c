"""Labels over the API: everyone signed in lists and reads them; supervisors and admins write them.
(Putting labels on conversations is part of the conversations resource.)"""

from __future__ import annotations

from pydantic import Field

from fiv_console.conversations import labels
from fiv_console.conversations.labels import Label, LabelCreate, LabelUpdate
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


class LabelQuery(PageQuery):
    q: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL, description="Part of the name.")


@routes.route(
    "GET", "/api/labels", roles=ANYONE_SIGNED_IN, summary="List labels", tag="labels", query=LabelQuery,
    response=list[Label], paginated=True,
)  # fmt: skip
async def list_labels(call: ApiCall[NoInput, LabelQuery]) -> Page[Label]:
    query = call.query
    items, total = await labels.list_labels(call.conn, search=query.q, limit=query.limit, offset=query.offset)
    return Page(items, total, query)


@routes.route(
    "POST", "/api/labels", roles=STAFF, summary="Create a label", tag="labels", body=LabelCreate, response=Label,
    status=201,
)  # fmt: skip
async def create_label(call: ApiCall[LabelCreate, NoInput]) -> Created[Label]:
    return Created(await labels.create_label(call.conn, tenant_id=call.caller.tenant_id, data=call.body))


@routes.route(
    "GET", "/api/labels/{label_id}", roles=ANYONE_SIGNED_IN, summary="One label", tag="labels", response=Label
)
async def get_label(call: ApiCall[NoInput, NoInput]) -> Label:
    return await labels.get_label(call.conn, label_id=call.ids["label_id"])


@routes.route(
    "PATCH", "/api/labels/{label_id}", roles=STAFF, summary="Change a label", tag="labels", body=LabelUpdate,
    response=Label,
)  # fmt: skip
async def update_label(call: ApiCall[LabelUpdate, NoInput]) -> Label:
    return await labels.update_label(call.conn, label_id=call.ids["label_id"], data=call.body)


@routes.route(
    "DELETE", "/api/labels/{label_id}", roles=STAFF,
    summary="Delete a label (it comes off every conversation)", tag="labels", response=Label,
)  # fmt: skip
async def delete_label(call: ApiCall[NoInput, NoInput]) -> Label:
    return await labels.delete_label(call.conn, label_id=call.ids["label_id"])
