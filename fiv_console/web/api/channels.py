"""WhatsApp channels over the API, for admins only: list, connect, read and change a tenant's numbers.

A channel's access token can be set, replaced or removed here but is never returned; answers carry
`has_access_token` instead, and the audit entries name the fields changed, never their values.
"""

from __future__ import annotations

from fiv_console import channels
from fiv_console.channels import Channel, ChannelCreate, ChannelUpdate
from fiv_console.web.api.routing import ADMIN, ApiCall, Created, NoInput, Page, PageQuery, RouteTable

routes = RouteTable()


class ChannelQuery(PageQuery):
    active: bool | None = None


@routes.route(
    "GET", "/api/channels", roles=ADMIN, summary="List WhatsApp channels", tag="channels", query=ChannelQuery,
    response=list[Channel], paginated=True,
)  # fmt: skip
async def list_channels(call: ApiCall[NoInput, ChannelQuery]) -> Page[Channel]:
    query = call.query
    items, total = await channels.list_channels(call.conn, active=query.active, limit=query.limit, offset=query.offset)
    return Page(items, total, query)


@routes.route(
    "POST", "/api/channels", roles=ADMIN, summary="Connect a WhatsApp number", tag="channels", body=ChannelCreate,
    response=Channel, status=201,
)  # fmt: skip
async def create_channel(call: ApiCall[ChannelCreate, NoInput]) -> Created[Channel]:
    channel = await channels.create_channel(call.conn, tenant_id=call.caller.tenant_id, data=call.body)
    details = {
        "phone_number_id": channel.phone_number_id,
        "display_number": channel.display_number,
        "default_queue_id": str(channel.default_queue_id),
        "has_access_token": channel.has_access_token,
    }
    await call.audit("channel.created", "channel", channel.id, details)
    return Created(channel)


@routes.route("GET", "/api/channels/{channel_id}", roles=ADMIN, summary="One channel", tag="channels", response=Channel)
async def get_channel(call: ApiCall[NoInput, NoInput]) -> Channel:
    return await channels.get_channel(call.conn, channel_id=call.ids["channel_id"])


@routes.route(
    "PATCH", "/api/channels/{channel_id}", roles=ADMIN,
    summary="Change a channel (`access_token: null` removes the token)", tag="channels", body=ChannelUpdate,
    response=Channel,
)  # fmt: skip
async def update_channel(call: ApiCall[ChannelUpdate, NoInput]) -> Channel:
    channel = await channels.update_channel(call.conn, channel_id=call.ids["channel_id"], data=call.body)
    await call.audit("channel.changed", "channel", channel.id, {"fields": sorted(call.body.model_fields_set)})
    return channel
