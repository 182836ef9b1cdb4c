"""Replies: `POST /api/conversations/{id}/messages` sends one, `POST /api/messages/{id}/retry` sends a failed
one again, `POST /api/messages/{id}/reaction` puts the business's emoji on a message; `/read` marks the
customer's messages read when their agent opens the conversation, `/typing` shows the customer that the
agent is typing.

These routes run their own transactions (`transaction=False`): the message is stored and committed before
the Graph API is called, and the outcome is recorded after, so no database lock is held across the network.
The answer is the message as it then stands: `sent` with its wamid, or `failed` with Meta's code and a
`reason` a person can read (201 either way: the message exists and can be sent again).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from fiv_console.keys import database_key, graph_client_key, hub_key, template_cache_key, typing_throttle_key
from fiv_console.messages import reacting, sending
from fiv_console.messages.history import Message
from fiv_console.messages.outbound import SendRequest
from fiv_console.messages.reacting import ReactionRequest
from fiv_console.web.api.conversations import viewer_of
from fiv_console.web.api.routing import ANYONE_SIGNED_IN, ApiCall, Created, NoInput, RouteTable

routes = RouteTable()

_TAG = "messages"


@routes.route(
    "POST", "/api/conversations/{conversation_id}/messages", roles=ANYONE_SIGNED_IN,
    summary="Send a reply: text or media inside the 24-hour window (else 409 WINDOW_CLOSED), or a template "
    "(checked against the channel's: 422 TEMPLATE_MISMATCH naming what does not fit)",
    tag=_TAG, body=SendRequest, response=Message, status=201, transaction=False,
)  # fmt: skip
async def send_message(call: ApiCall[SendRequest, NoInput]) -> Created[Message]:
    app = call.request.app
    message = await sending.send(
        app[database_key],
        app[graph_client_key],
        app[hub_key],
        viewer=viewer_of(call),
        conversation_id=call.ids["conversation_id"],
        content=call.body.root,
        templates=app[template_cache_key],
    )
    return Created(message)


@routes.route(
    "POST", "/api/messages/{message_id}/retry", roles=ANYONE_SIGNED_IN,
    summary="Send a failed message again", tag=_TAG, response=Message, transaction=False,
)  # fmt: skip
async def retry_message(call: ApiCall[NoInput, NoInput]) -> Message:
    app = call.request.app
    return await sending.send_again(
        app[database_key],
        app[graph_client_key],
        app[hub_key],
        viewer=viewer_of(call),
        message_id=call.ids["message_id"],
    )


@routes.route(
    "POST", "/api/messages/{message_id}/reaction", roles=ANYONE_SIGNED_IN,
    summary="React to a message with an emoji (empty: take the reaction back), as a reply: by the "
    "conversation's agent, inside the 24-hour window; 409 WHATSAPP_REFUSED if WhatsApp does not take it",
    tag=_TAG, body=ReactionRequest, response=Message, transaction=False,
)  # fmt: skip
async def react_to_message(call: ApiCall[ReactionRequest, NoInput]) -> Message:
    app = call.request.app
    return await reacting.react(
        app[database_key],
        app[graph_client_key],
        app[hub_key],
        viewer=viewer_of(call),
        message_id=call.ids["message_id"],
        request=call.body,
    )


class Marked(BaseModel):
    marked: int = Field(description="How many messages were newly marked read (0 unless you are its agent).")


class Typing(BaseModel):
    sent: bool = Field(description="Whether an indicator went out (at most one per conversation every 20 s).")


@routes.route(
    "POST", "/api/conversations/{conversation_id}/read", roles=ANYONE_SIGNED_IN,
    summary="Mark the customer's messages read (by the conversation's agent; once each)", tag=_TAG,
    response=Marked, transaction=False,
)  # fmt: skip
async def mark_read(call: ApiCall[NoInput, NoInput]) -> Marked:
    app = call.request.app
    marked = await sending.mark_read(
        app[database_key],
        app[graph_client_key],
        app[hub_key],
        viewer=viewer_of(call),
        conversation_id=call.ids["conversation_id"],
    )
    return Marked(marked=marked)


@routes.route(
    "POST", "/api/conversations/{conversation_id}/typing", roles=ANYONE_SIGNED_IN,
    summary="Show the customer that their agent is typing", tag=_TAG, response=Typing, transaction=False,
)  # fmt: skip
async def show_typing(call: ApiCall[NoInput, NoInput]) -> Typing:
    app = call.request.app
    sent = await sending.show_typing(
        app[database_key],
        app[graph_client_key],
        app[hub_key],
        app[typing_throttle_key],
        viewer=viewer_of(call),
        conversation_id=call.ids["conversation_id"],
    )
    return Typing(sent=sent)
