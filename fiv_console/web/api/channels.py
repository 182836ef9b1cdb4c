"""WhatsApp channels over the API, for admins only: list, connect, read and change a tenant's numbers.

A channel's access token can be set, replaced or removed here but is never returned; answers carry
`has_access_token` instead, and the audit entries name the fields changed, never their values. Connecting a
number asks WhatsApp first whether its access token may use it (`WHATSAPP_VERIFY_NUMBERS`), since the
number decides which tenant receives its customers' messages.
"""

from __future__ import annotations

from fiv_console.keys import graph_client_key, settings_key
from fiv_console.routing import channels
from fiv_console.routing.channels import Channel, ChannelCreate, ChannelUpdate
from fiv_console.web.api.routing import ADMIN, ApiCall, Created, NoInput, Page, PageQuery, RouteTable
from fiv_console.whatsapp import number_verification

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
    "POST", "/api/channels", roles=ADMIN,
    summary="Connect a WhatsApp number (its access token is checked with WhatsApp first)", tag="channels",
    body=ChannelCreate, response=Channel, status=201, transaction=False,
)  # fmt: skip
async def create_channel(call: ApiCall[ChannelCreate, NoInput]) -> Created[Channel]:
    app = call.request.app
    if app[settings_key].whatsapp_verify_numbers:
        # Before the transaction: no pooled connection waits on WhatsApp.
        await number_verification.confirm(app[graph_client_key], call.body)
    async with call.transaction() as conn:
        channel = await channels.create_channel(conn, tenant_id=call.caller.tenant_id, data=call.body)
        details = {
            "phone_number_id": channel.phone_number_id,
            "display_number": channel.display_number,
            "default_queue_id": str(channel.default_queue_id),
            "has_access_token": channel.has_access_token,
            "waba_id": channel.waba_id,
        }
        await call.audit("channel.created", "channel", channel.id, details, conn=conn)
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
