"""Queues and their members over the API.

Everyone signed in lists and reads queues, agents only the queues they are members of (any other queue is
a 404 to them). Supervisors run the queues: they change a queue's priority, SLA target and whether it is
open, and who serves it; creating a queue is for admins.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from fiv_console.access import sight_of
from fiv_console.realtime import wire
from fiv_console.routing import queues
from fiv_console.routing.queues import MembershipChange, Queue, QueueCreate, QueueMember, QueueSort, QueueUpdate
from fiv_console.text import NO_NUL
from fiv_console.web.api.routing import (
    ADMIN,
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


class QueueQuery(PageQuery):
    active: bool | None = None
    q: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL, description="Part of the name.")
    member_id: UUID | None = Field(default=None, description="Only the queues this user is a member of.")
    sort: QueueSort = "name"


@routes.route(
    "GET", "/api/queues", roles=ANYONE_SIGNED_IN, summary="List queues (agents: their own)", tag="queues",
    query=QueueQuery, response=list[Queue], paginated=True,
)  # fmt: skip
async def list_queues(call: ApiCall[NoInput, QueueQuery]) -> Page[Queue]:
    query = call.query
    items, total = await queues.list_queues(
        call.conn,
        sight=sight_of(call.caller.role, call.caller.user_id),
        active=query.active,
        search=query.q,
        member_id=query.member_id,
        sort=query.sort,
        limit=query.limit,
        offset=query.offset,
    )
    return Page(items, total, query)


@routes.route(
    "POST", "/api/queues", roles=ADMIN, summary="Create a queue", tag="queues", body=QueueCreate, response=Queue,
    status=201,
)  # fmt: skip
async def create_queue(call: ApiCall[QueueCreate, NoInput]) -> Created[Queue]:
    queue = await queues.create_queue(call.conn, tenant_id=call.caller.tenant_id, data=call.body)
    await call.audit("queue.created", "queue", queue.id, {"name": queue.name})
    return Created(queue)


@routes.route(
    "GET", "/api/queues/{queue_id}", roles=ANYONE_SIGNED_IN, summary="One queue", tag="queues", response=Queue
)
async def get_queue(call: ApiCall[NoInput, NoInput]) -> Queue:
    return await queues.get_queue(
        call.conn, queue_id=call.ids["queue_id"], sight=sight_of(call.caller.role, call.caller.user_id)
    )


@routes.route(
    "PATCH", "/api/queues/{queue_id}", roles=STAFF, summary="Change a queue", tag="queues", body=QueueUpdate,
    response=Queue,
)  # fmt: skip
async def update_queue(call: ApiCall[QueueUpdate, NoInput]) -> Queue:
    queue = await queues.update_queue(call.conn, queue_id=call.ids["queue_id"], data=call.body)
    await call.audit("queue.changed", "queue", queue.id, {"fields": sorted(call.body.model_fields_set)})
    queues.announce_changed(call.events, queue)
    return queue


@routes.route(
    "GET", "/api/queues/{queue_id}/members", roles=STAFF, summary="Members of a queue", tag="queues",
    query=PageQuery, response=list[QueueMember], paginated=True,
)  # fmt: skip
async def list_queue_members(call: ApiCall[NoInput, PageQuery]) -> Page[QueueMember]:
    items, total = await queues.list_members(
        call.conn, queue_id=call.ids["queue_id"], limit=call.query.limit, offset=call.query.offset
    )
    return Page(items, total, call.query)


@routes.route(
    "PUT", "/api/queues/{queue_id}/members/{user_id}", roles=STAFF,
    summary="Make a user a member of a queue, or change their capacity in it (send `{}` for none)",
    tag="queues", body=MembershipChange, response=QueueMember,
)  # fmt: skip
async def set_queue_member(call: ApiCall[MembershipChange, NoInput]) -> QueueMember:
    member = await queues.set_member(
        call.conn,
        tenant_id=call.caller.tenant_id,
        queue_id=call.ids["queue_id"],
        user_id=call.ids["user_id"],
        data=call.body,
    )
    details = {"user_id": str(member.user_id), "max_concurrent_override": member.max_concurrent_override}
    await call.audit("queue.member_set", "queue", member.queue_id, details)
    queues.announce_membership(call.events, queue_id=member.queue_id, user_id=member.user_id, member=member)
    call.notify(wire.AccessChanged(member.user_id))
    return member


@routes.route(
    "DELETE", "/api/queues/{queue_id}/members/{user_id}", roles=STAFF, summary="Remove a member from a queue",
    tag="queues", response=QueueMember,
)  # fmt: skip
async def remove_queue_member(call: ApiCall[NoInput, NoInput]) -> QueueMember:
    member = await queues.remove_member(call.conn, queue_id=call.ids["queue_id"], user_id=call.ids["user_id"])
    await call.audit("queue.member_removed", "queue", member.queue_id, {"user_id": str(member.user_id)})
    queues.announce_membership(call.events, queue_id=member.queue_id, user_id=member.user_id, member=None)
    call.notify(wire.AccessChanged(member.user_id))
    return member
