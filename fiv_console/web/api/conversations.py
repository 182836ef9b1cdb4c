"""The conversations resource: the list and one conversation, the lifecycle moves, notes, labels and the
message history.

Every signed-in role reaches these routes; what each person may see and do is decided per conversation by
`fiv_console.access` (an agent's own and their queues' waiting conversations; anything else is 404).
Only unassigning is for supervisors and admins alone. Moves by supervisors and admins are audited.

The list and the message history are paged by keyset cursors, not by page number: conversations move up
the list and a chat gains messages while someone scrolls, and offsets would then repeat or skip rows. Both
answer `data: {items, next_cursor}` (pass `next_cursor` back as `cursor`, or as `before` for the history;
null on the last page) with the usual pagination object kept honest. The history's `total` counts the
conversation's messages, `hasNext` says whether an older page exists, and `page` is the page number at this
limit, counted from the newest (exact while the limit stays the same). The list's `total` counts at most
1,000 (then `totalIsAtLeast` is true) and it has no `page`.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from fiv_console.access import Audience, Viewer
from fiv_console.conversations import labels as conversation_labels
from fiv_console.conversations import lifecycle as conversations
from fiv_console.conversations import listing, notes, reading, transfer_targets
from fiv_console.conversations.lifecycle import (
    AssignRequest,
    CloseRequest,
    Moved,
    MoveEvent,
    TransferRequest,
    TransferToAgent,
)
from fiv_console.conversations.listing import ConversationListItem, ListCursor, ListFilters, SortKey
from fiv_console.conversations.notes import Note, NoteCreate
from fiv_console.conversations.reading import Conversation, ConversationStatus
from fiv_console.conversations.transfer_targets import TransferTargets
from fiv_console.errors import Conflict, Forbidden
from fiv_console.messages import history as messages
from fiv_console.messages.history import Cursor, Message
from fiv_console.text import NO_NUL
from fiv_console.web import envelope
from fiv_console.web.api.routing import (
    ANYONE_SIGNED_IN,
    MAX_LIMIT,
    STAFF,
    ApiCall,
    Created,
    NoInput,
    Page,
    PageQuery,
    RouteTable,
)

routes = RouteTable()

_TAG = "conversations"


class ConversationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ConversationStatus | None = None
    queue_id: UUID | None = None
    agent_id: UUID | None = None
    label_id: UUID | None = None
    contact_id: UUID | None = Field(default=None, description="One contact's conversations, past ones included.")
    q: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=NO_NUL,
        description="Words to find: each must start a word of the contact's name or profile name, or of a message "
        "of the conversation (either way), or be part of the contact's number.",
    )
    sort: SortKey = Field(default="-last_message_at", description="A field, descending when prefixed with `-`.")
    # After `sort`: a cursor is checked against the order it came from.
    cursor: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,200}$",
        description="`next_cursor` of the previous page, with the same `sort`: the next page follows.",
    )
    limit: int = Field(default=25, ge=1, le=MAX_LIMIT)

    @field_validator("cursor")
    @classmethod
    def _cursor_of_this_order(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked while validating, so a bad cursor (or another order's) is a field error on `query.cursor`.
        if value is not None and "sort" in info.data:
            ListCursor.decode(value, info.data["sort"])
        return value


class ConversationList(BaseModel):
    items: list[ConversationListItem] = Field(description="In the order asked for.")
    next_cursor: str | None = Field(description="Give it as `cursor` for the next page; null on the last one.")


def _cursor_text(value: str) -> str:
    # Checked while validating, so a bad cursor is a field error on `query.before` like any other.
    Cursor.decode(value)
    return value


class MessageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: Annotated[str, AfterValidator(_cursor_text)] | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,200}$",
        description="`next_cursor` of the previous page: older messages follow.",
    )
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)


class MessageHistory(BaseModel):
    items: list[Message] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Give it as `before` for the older page; null on the last one.")


def viewer_of(call: ApiCall[Any, Any]) -> Viewer:
    """The caller as the conversations' sight rules see them (the messages and media routes ask the same)."""
    caller = call.caller
    return Viewer(tenant_id=caller.tenant_id, role=caller.role, user_id=caller.user_id)


def _author(call: ApiCall[Any, Any]) -> UUID:
    if call.caller.user_id is None:
        raise Forbidden("notes need a person as their author; an API token cannot write them")
    return call.caller.user_id


async def _record_move(call: ApiCall[Any, Any], action: MoveEvent, moved: Moved, **details: Any) -> None:
    """Every move is an event; moves by supervisors and admins also go to the audit log (an agent's own work
    does not)."""
    conversations.announce_move(call.events, action, moved)
    if call.caller.role not in STAFF:
        return
    record = {
        "from_agent_id": str(moved.from_agent_id) if moved.from_agent_id is not None else None,
        "from_queue_id": str(moved.from_queue_id),
        **details,
    }
    await call.audit(action, "conversation", moved.conversation.id, record)


@routes.route(
    "GET", "/api/conversations", roles=ANYONE_SIGNED_IN, summary="List the conversations in your sight", tag=_TAG,
    query=ConversationQuery, response=ConversationList, paginated=True,
)  # fmt: skip
async def list_conversations(call: ApiCall[NoInput, ConversationQuery]) -> web.Response:
    """Paged by a keyset cursor: conversations move up the list as messages arrive, and offsets would then
    repeat or skip them. `pagination.total` counts the conversations that match, up to 1,000: past that it is
    1,000 and `totalIsAtLeast` is true (a console shows "1,000+"), so no page ever counts a whole tenant."""
    query = call.query
    page = await listing.list_conversations(
        call.conn,
        viewer=viewer_of(call),
        filters=ListFilters(
            status=query.status,
            queue_id=query.queue_id,
            agent_id=query.agent_id,
            label_id=query.label_id,
            contact_id=query.contact_id,
            search=query.q,
        ),
        sort=query.sort,
        cursor=ListCursor.decode(query.cursor, query.sort) if query.cursor is not None else None,
        limit=query.limit,
    )
    next_cursor = page.next_cursor.encode() if page.next_cursor else None
    # `ConversationList`'s shape (the declared answer), its items as the domain built them.
    return envelope.ok(
        {"items": envelope.json_fragment(page.rows), "next_cursor": next_cursor},
        pagination={
            "limit": query.limit,
            "total": page.total,
            "totalIsAtLeast": page.total_is_at_least,
            "hasNext": next_cursor is not None,
        },
    )


@routes.route(
    "GET", "/api/conversations/{conversation_id}", roles=ANYONE_SIGNED_IN, summary="One conversation", tag=_TAG,
    response=Conversation,
)  # fmt: skip
async def get_conversation(call: ApiCall[NoInput, NoInput]) -> Conversation:
    return await reading.get_conversation(
        call.conn, viewer=viewer_of(call), conversation_id=call.ids["conversation_id"]
    )


@routes.route(
    "POST", "/api/conversations/{conversation_id}/assign", roles=ANYONE_SIGNED_IN,
    summary="Assign to an agent (supervisors, admins), or take a waiting one (agents)", tag=_TAG,
    body=AssignRequest, response=Conversation,
)  # fmt: skip
async def assign_conversation(call: ApiCall[AssignRequest, NoInput]) -> Conversation:
    # The conversation and agent rows stay locked until this request's transaction commits: no network I/O here.
    moved = await conversations.assign(
        call.conn,
        viewer=viewer_of(call),
        conversation_id=call.ids["conversation_id"],
        agent_id=call.body.agent_id,
        force=call.body.force,
    )
    await _record_move(
        call, "conversation.assigned", moved, to_agent_id=str(moved.conversation.agent_id), forced=call.body.force
    )
    return moved.conversation


@routes.route(
    "POST", "/api/conversations/{conversation_id}/transfer", roles=ANYONE_SIGNED_IN,
    summary="Transfer to an agent or a queue (supervisors, admins, or the agent who has it), with a note", tag=_TAG,
    body=TransferRequest, response=Conversation,
)  # fmt: skip
async def transfer_conversation(call: ApiCall[TransferRequest, NoInput]) -> Conversation:
    request, viewer, conversation_id = call.body.root, viewer_of(call), call.ids["conversation_id"]
    # The conversation (and agent) rows stay locked until this request's transaction commits: no network I/O here.
    if isinstance(request, TransferToAgent):
        moved = await conversations.transfer_to_agent(
            call.conn, viewer=viewer, conversation_id=conversation_id, agent_id=request.agent_id, force=request.force
        )
        target: dict[str, Any] = {"to_agent_id": str(request.agent_id), "forced": request.force}
    else:
        moved = await conversations.transfer_to_queue(
            call.conn, viewer=viewer, conversation_id=conversation_id, queue_id=request.queue_id
        )
        target = {"to_queue_id": str(request.queue_id)}
    await _record_move(call, "conversation.transferred", moved, **target)
    if request.note is not None:
        # Written in the same transaction: a refused note (an API token has no author) undoes the transfer too.
        await notes.add_note(
            call.conn,
            call.events,
            conversation_id=conversation_id,
            author_id=_author(call),
            body=request.note,
            followers=reading.followers_now(moved.conversation),
        )
    return moved.conversation


@routes.route(
    "GET", "/api/conversations/{conversation_id}/transfer-targets", roles=ANYONE_SIGNED_IN,
    summary="The people and queues you may transfer this conversation to", tag=_TAG, response=TransferTargets,
)  # fmt: skip
async def get_transfer_targets(call: ApiCall[NoInput, NoInput]) -> TransferTargets:
    return await transfer_targets.transfer_targets(
        call.conn, viewer=viewer_of(call), conversation_id=call.ids["conversation_id"]
    )


@routes.route(
    "POST", "/api/conversations/{conversation_id}/unassign", roles=STAFF,
    summary="Back to its queue at its original place", tag=_TAG, response=Conversation,
)  # fmt: skip
async def unassign_conversation(call: ApiCall[NoInput, NoInput]) -> Conversation:
    # The conversation row stays locked until this request's transaction commits: no network I/O here.
    moved = await conversations.unassign(call.conn, viewer=viewer_of(call), conversation_id=call.ids["conversation_id"])
    await _record_move(call, "conversation.unassigned", moved)
    return moved.conversation


@routes.route(
    "POST", "/api/conversations/{conversation_id}/close", roles=ANYONE_SIGNED_IN,
    summary="Close with a reason (supervisors, admins, or the agent who has it)", tag=_TAG, body=CloseRequest,
    response=Conversation,
)  # fmt: skip
async def close_conversation(call: ApiCall[CloseRequest, NoInput]) -> Conversation:
    # The conversation row stays locked until this request's transaction commits: no network I/O here.
    moved = await conversations.close(
        call.conn, viewer=viewer_of(call), conversation_id=call.ids["conversation_id"], reason=call.body.reason
    )
    await _record_move(call, "conversation.closed", moved, reason=call.body.reason)
    return moved.conversation


@routes.route(
    "POST", "/api/conversations/{conversation_id}/reopen", roles=ANYONE_SIGNED_IN,
    summary="Back to waiting in its queue (supervisors, admins, or the agent who had it)", tag=_TAG,
    response=Conversation,
)  # fmt: skip
async def reopen_conversation(call: ApiCall[NoInput, NoInput]) -> Conversation:
    # The conversation row stays locked until this request's transaction commits: no network I/O here.
    moved = await conversations.reopen(call.conn, viewer=viewer_of(call), conversation_id=call.ids["conversation_id"])
    await _record_move(call, "conversation.reopened", moved)
    return moved.conversation


@routes.route(
    "GET", "/api/conversations/{conversation_id}/notes", roles=ANYONE_SIGNED_IN, summary="Notes, oldest first",
    tag=_TAG, query=PageQuery, response=list[Note], paginated=True,
)  # fmt: skip
async def list_conversation_notes(call: ApiCall[NoInput, PageQuery]) -> Page[Note]:
    conversation_id = call.ids["conversation_id"]
    await reading.ensure_visible(call.conn, viewer=viewer_of(call), conversation_id=conversation_id)
    items, total = await notes.list_notes(
        call.conn, conversation_id=conversation_id, limit=call.query.limit, offset=call.query.offset
    )
    return Page(items, total, call.query)


@routes.route(
    "POST", "/api/conversations/{conversation_id}/notes", roles=ANYONE_SIGNED_IN, summary="Add a private note",
    tag=_TAG, body=NoteCreate, response=Note, status=201,
)  # fmt: skip
async def add_conversation_note(call: ApiCall[NoteCreate, NoInput]) -> Created[Note]:
    conversation_id = call.ids["conversation_id"]
    if call.body.whisper:
        if call.caller.role not in STAFF:
            raise Forbidden("only supervisors and admins whisper")
        conversation = await reading.get_conversation(
            call.conn, viewer=viewer_of(call), conversation_id=conversation_id
        )
        if conversation.status != "assigned" or conversation.agent_id is None:
            raise Conflict("nobody to whisper to: the conversation is not assigned")
        followers = Audience.agent(conversation.agent_id)
    else:
        followers = await reading.followers(call.conn, viewer=viewer_of(call), conversation_id=conversation_id)
    note = await notes.add_note(
        call.conn,
        call.events,
        conversation_id=conversation_id,
        author_id=_author(call),
        body=call.body.body,
        followers=followers,
        whisper=call.body.whisper,
    )
    return Created(note)


@routes.route(
    "PUT", "/api/conversations/{conversation_id}/labels/{label_id}", roles=ANYONE_SIGNED_IN,
    summary="Put a label on the conversation", tag=_TAG, response=Conversation,
)  # fmt: skip
async def add_conversation_label(call: ApiCall[NoInput, NoInput]) -> Conversation:
    conversation = await conversation_labels.add_label(
        call.conn, viewer=viewer_of(call), conversation_id=call.ids["conversation_id"], label_id=call.ids["label_id"]
    )
    conversation_labels.announce_updated(call.events, conversation)
    return conversation


@routes.route(
    "DELETE", "/api/conversations/{conversation_id}/labels/{label_id}", roles=ANYONE_SIGNED_IN,
    summary="Take a label off the conversation", tag=_TAG, response=Conversation,
)  # fmt: skip
async def remove_conversation_label(call: ApiCall[NoInput, NoInput]) -> Conversation:
    conversation = await conversation_labels.remove_label(
        call.conn, viewer=viewer_of(call), conversation_id=call.ids["conversation_id"], label_id=call.ids["label_id"]
    )
    conversation_labels.announce_updated(call.events, conversation)
    return conversation


@routes.route(
    "GET", "/api/conversations/{conversation_id}/messages", roles=ANYONE_SIGNED_IN,
    summary="Message history, newest first, paged with a cursor", tag=_TAG, query=MessageQuery,
    response=MessageHistory, paginated=True,
)  # fmt: skip
async def list_conversation_messages(call: ApiCall[NoInput, MessageQuery]) -> web.Response:
    query = call.query
    page = await messages.history(
        call.conn,
        sight=viewer_of(call).sight,
        conversation_id=call.ids["conversation_id"],
        before=Cursor.decode(query.before) if query.before is not None else None,
        limit=query.limit,
    )
    next_cursor = page.next_cursor.encode() if page.next_cursor else None
    # `MessageHistory`'s shape (the declared answer), its items as the domain built them.
    return envelope.ok(
        {"items": envelope.json_fragment(page.rows), "next_cursor": next_cursor},
        pagination={
            "page": page.newer // query.limit + 1,
            "limit": query.limit,
            "total": page.total,
            "hasNext": next_cursor is not None,
        },
    )
