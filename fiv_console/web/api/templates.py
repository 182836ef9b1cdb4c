"""Message templates: a conversation's (its channel's approved ones, for whoever sees the conversation) and a
channel's (all of them, whatever their status, for admins).

Both run without the call's transaction (`transaction=False`): the channel is read in a short one of its own,
then the list comes from the per-process cache, fetched from WhatsApp if not kept, with no connection held
meanwhile. `?refresh=true` fetches again at once. A channel without a business account id or token answers
an empty list that says why (`unavailable`), not an error: the picker shows the reason.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fiv_console.keys import database_key, template_cache_key
from fiv_console.messages import templates
from fiv_console.messages.templates import ChannelTemplates
from fiv_console.web.api.conversations import viewer_of
from fiv_console.web.api.routing import ADMIN, ANYONE_SIGNED_IN, ApiCall, NoInput, RouteTable

routes = RouteTable()


class TemplatesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh: bool = Field(default=False, description="Fetch the list from WhatsApp now instead of the copy kept.")


@routes.route(
    "GET", "/api/conversations/{conversation_id}/templates", roles=ANYONE_SIGNED_IN,
    summary="The approved templates of the conversation's number (kept 10 minutes; `refresh=true` fetches now)",
    tag="messages", query=TemplatesQuery, response=ChannelTemplates, transaction=False,
)  # fmt: skip
async def conversation_templates(call: ApiCall[NoInput, TemplatesQuery]) -> ChannelTemplates:
    app = call.request.app
    return await templates.for_conversation(
        app[database_key],
        app[template_cache_key],
        viewer=viewer_of(call),
        conversation_id=call.ids["conversation_id"],
        refresh=call.query.refresh,
    )


@routes.route(
    "GET", "/api/channels/{channel_id}/templates", roles=ADMIN,
    summary="Every template of the channel's business account, whatever its status", tag="channels",
    query=TemplatesQuery, response=ChannelTemplates, transaction=False,
)  # fmt: skip
async def channel_templates(call: ApiCall[NoInput, TemplatesQuery]) -> ChannelTemplates:
    app = call.request.app
    return await templates.for_channel(
        app[database_key],
        app[template_cache_key],
        tenant_id=call.caller.tenant_id,
        channel_id=call.ids["channel_id"],
        refresh=call.query.refresh,
    )
