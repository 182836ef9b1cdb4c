"""Replies to customers: who may send what, when, and the life of an outbound message in the database.

A reply is stored before anything goes to WhatsApp (`prepare`: status `queued`, in the conversation's
lock), sent outside any transaction, and then recorded as `sent` with its wamid or `failed` with Meta's
error and a reason a person can read (`record_sent`, `record_failed`). A failed message stays, and can be
sent again (`prepare_retry`) under its first id, which is the idempotency key of every attempt.

Rules: the conversation must be open and in the sender's sight; an agent replies only to a conversation
assigned to them, supervisors and admins to any open one. Free text and media may go only inside
WhatsApp's 24-hour customer-service window, which each customer message opens; outside it the answer is
`WindowClosed` (naming when it closed) and only a template may go. A person's first reply sets the
conversation's first-response time (replies by an integration's token do not). Any reply but the
console's automatic ones answers the customer: it stops the wait `assignment.unanswered` measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, StringConstraints, Tag, model_validator

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Viewer
from fiv_console.conversations.reading import CUSTOMER_SERVICE_WINDOW
from fiv_console.db.pool import Connection
from fiv_console.errors import Conflict, Forbidden, InvalidInput, NotFound
from fiv_console.events import EventBatch
from fiv_console.messages import history as messages
from fiv_console.messages import statuses as message_statuses
from fiv_console.messages.history import COLUMNS as MESSAGE_COLUMNS
from fiv_console.messages.history import Message
from fiv_console.messages.interactive import InteractiveReply, InteractiveRequest
from fiv_console.text import NO_NUL
from fiv_console.whatsapp.template_messages import ButtonValue, ComposedTemplate, HeaderValue, TemplateParameter

MediaKind = Literal["image", "document", "audio", "video"]
# A failed or long-queued message may be sent again; queued for less than this, it may still be on its way.
STALE_QUEUED_SECONDS = 120


class WindowClosed(Conflict):
    """Free text outside the 24-hour window: only a template may be sent."""

    code = "WINDOW_CLOSED"

    def __init__(self, closed_at: datetime | None) -> None:
        when = closed_at.isoformat() if closed_at else None
        message = (
            f"the 24-hour window closed at {when}: only a template can be sent"
            if when
            else "the customer has not written yet: only a template can be sent"
        )
        super().__init__(message, details={"window_closed_at": when})
        self.closed_at = closed_at


TemplateName = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")]
ParameterName = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")]
LanguageCode = Annotated[str, StringConstraints(min_length=2, max_length=15, pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")]
MessageText = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=NO_NUL)]


class TemplateRequest(BaseModel):
    """A template of the channel's business account and its values, checked against the template before
    anything is stored (`messages.templates`); a problem is 422 `TEMPLATE_MISMATCH` naming the fields."""

    model_config = ConfigDict(extra="forbid")

    name: TemplateName = Field(description="An approved template's name.")
    language: LanguageCode = Field(description="Its language code, e.g. `en_US` or `pt_BR`.")
    parameters: (
        Annotated[list[TemplateParameter], Field(max_length=100)]
        | Annotated[dict[ParameterName, TemplateParameter], Field(max_length=100)]
    ) = Field(
        default=[],
        description="The body's values: a list for a positional template ({{1}}, {{2}}, ...), an object by name "
        "for a named one ({{first_name}}).",
    )
    header: HeaderValue | None = Field(default=None, description="The header's value, when it takes one.")
    buttons: list[ButtonValue] = Field(default=[], max_length=10, description="Values of the buttons that take one.")


class MediaRequest(BaseModel):
    """A file: by an upload's id, or by a public link WhatsApp fetches it from: exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.:-]+$", description="From the upload."
    )
    link: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s/]+\S*$",
        description="A public http(s) URL of the file, which WhatsApp downloads.",
    )
    kind: MediaKind
    caption: Annotated[str, StringConstraints(max_length=1024, pattern=NO_NUL)] | None = None
    filename: Annotated[str, StringConstraints(min_length=1, max_length=240, pattern=NO_NUL)] | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> Self:
        if (self.id is None) == (self.link is None):
            raise ValueError("give exactly one of id and link")
        if self.caption is not None and self.kind == "audio":
            raise ValueError("audio cannot have a caption")
        if self.filename is not None and self.kind != "document":
            raise ValueError("only a document has a file name")
        return self


ReplyTo = Annotated[UUID | None, Field(description="The id of a message of this conversation to quote.")]


class TextReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: MessageText
    reply_to: ReplyTo = None

    @model_validator(mode="after")
    def _not_blank(self) -> Self:
        if not self.text.strip():
            raise ValueError("text cannot be blank")
        return self


class TemplateReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: TemplateRequest
    reply_to: ReplyTo = None


class MediaReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media: MediaRequest
    reply_to: ReplyTo = None


Reply = TextReply | TemplateReply | MediaReply | InteractiveReply


def _content_kind(value: Any) -> str | None:
    """Which reply a body is: the one of `text`, `template` and `media` it names (None: not exactly one)."""
    named = value.model_fields_set if isinstance(value, BaseModel) else value if isinstance(value, dict) else {}
    given = [name for name in ("text", "template", "media", "interactive") if name in named]
    return given[0] if len(given) == 1 else None


class SendRequest(
    RootModel[
        Annotated[
            Annotated[TextReply, Tag("text")]
            | Annotated[TemplateReply, Tag("template")]
            | Annotated[MediaReply, Tag("media")]
            | Annotated[InteractiveReply, Tag("interactive")],
            Discriminator(
                _content_kind,
                custom_error_type="reply_content",
                custom_error_message="give exactly one of text, template, media and interactive",
            ),
        ]
    ]
):
    """Free text, a template, a media file or an interactive question (reply buttons or a list): exactly one
    of `text`, `template`, `media` and `interactive`."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes: the business number, its access token and the customer (their number, or their
    business-scoped user id when WhatsApp gave no number, or a group's id: the client addresses each as Meta
    documents)."""

    channel_id: UUID
    phone_number_id: str
    access_token: str
    to: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A stored message on its way out: what to send, and where."""

    message: Message
    target: Target
    content: Reply
    reply_to_wamid: str | None
    # Which attempt at sending it this is: only its own outcome is recorded, never a late one of an earlier.
    attempt: int
    # When this attempt was queued: if WhatsApp takes it, it answers what the customer wrote before then.
    queued_at: datetime


_TARGET_SQL = """
select c.id, c.status, c.queue_id, c.agent_id, c.last_inbound_at, c.channel_id,
       ch.phone_number_id, ch.access_token, ch.active as channel_active,
       -- a group by its id; a customer known only by username by their BSUID
       coalesce(k.group_id, k.wa_id, k.user_id) as wa_id
from conversations c
join channels ch on ch.tenant_id = c.tenant_id and ch.id = c.channel_id
join contacts k on k.tenant_id = c.tenant_id and k.id = c.contact_id
"""
_LOCK_SQL = f"{_TARGET_SQL} where c.id = $3 and {VISIBLE_CONVERSATION_SQL} for no key update of c"
_REPLY_TO_SQL = """
select wa_message_id from messages where id = $1 and conversation_id = $2 and wa_message_id is not null
"""
_INSERT_SQL = f"""
insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, media, details,
                      reply_to_wa_message_id, status, author_id, send_attempts, created_at, updated_at)
values ($1, $2, $3, 'outbound', $4, $5, $6, $7, $8, 'queued', $9, 1, clock_timestamp(), clock_timestamp())
returning {MESSAGE_COLUMNS}, send_attempts, updated_at
"""
# The reply is the conversation's newest message: the list's preview.
# The reply's own time, so a browser that holds the conversation can move it from `message.created` alone.
_TOUCH_SQL = """
update conversations
set last_message_at = greatest(last_message_at, $5), updated_at = now(), last_message_id = $2,
    last_message_direction = 'outbound', last_message_kind = $3, last_message_text = left($4, 140),
    last_message_created_at = $5
where id = $1
"""
# A reply a person or an integration wrote, once WhatsApp took it, answers what the customer wrote before it
# was queued ($2: a retry is queued anew); the wait then runs from the customer's first message after that. A
# reply that failed answers nothing, and one the console sends by itself neither ($2 null): the customer still
# awaits a person (`assignment.unanswered`). A person's first reply that WhatsApp took is the conversation's
# first response ($3; an integration's is not).
# One statement for both, so that the transaction writes the conversation's row once: PostgreSQL re-checks
# the foreign keys of a row the same transaction already wrote, share-locking its contact, which the intake
# locks before the conversation, and the two deadlocked (found by bench/soak.py).
_REPLIED_SQL = """
update conversations c
set awaiting_reply_since = case when c.awaiting_reply_since <= $2 then (
            select min(m.created_at) from messages m
            where m.tenant_id = c.tenant_id and m.conversation_id = c.id and m.direction = 'inbound'
              and m.kind <> 'system' and m.created_at > $2 and (m.details @> '{"history": true}') is not true
        ) else c.awaiting_reply_since end,
    first_response_at = case when $3 then coalesce(c.first_response_at, now()) else c.first_response_at end,
    updated_at = now()
where c.id = $1 and (c.awaiting_reply_since <= $2 or ($3 and c.first_response_at is null))
"""


def _message(row: asyncpg.Record | None) -> Message:
    assert row is not None, "the message was read or written under its lock"
    return Message.model_validate(dict(row))


def check_may_reply(viewer: Viewer, row: asyncpg.Record | None) -> asyncpg.Record:
    """Who may send into a conversation (its `status`, `agent_id`, `channel_active`, `access_token`)."""
    if row is None:
        raise NotFound("no such conversation")
    if row["status"] == "closed":
        raise Conflict("the conversation is closed: reopen it to reply")
    if not viewer.sees_all and row["agent_id"] != viewer.user_id:
        raise Forbidden("only the agent the conversation is assigned to can reply: take it first")
    if not row["channel_active"]:
        raise Conflict("this conversation's WhatsApp number is disconnected")
    if not row["access_token"]:
        raise Conflict("this conversation's WhatsApp number has no access token: an admin must set one")
    return row


async def _locked_target(conn: Connection, viewer: Viewer, conversation_id: UUID, *, template: bool) -> Any:
    row = check_may_reply(viewer, await conn.fetchrow(_LOCK_SQL, *viewer.sight.params(), conversation_id))
    if not template:
        inbound = row["last_inbound_at"]
        closes_at = inbound + CUSTOMER_SERVICE_WINDOW if inbound is not None else None
        if closes_at is None or datetime.now(UTC) >= closes_at:
            raise WindowClosed(closes_at)
    return row


async def reaction_target(conn: Connection, viewer: Viewer, conversation_id: UUID) -> Target:
    """Where the viewer's reaction in a conversation goes: a free-form message, so only by whoever may reply
    there and inside the 24-hour window (`messages.reacting`). Locks the conversation until commit."""
    row = await _locked_target(conn, viewer, conversation_id, template=False)
    return Target(row["channel_id"], row["phone_number_id"], row["access_token"], row["wa_id"])


def _stored_form(
    content: Reply, composed: ComposedTemplate | None = None
) -> tuple[str, str | None, dict[str, Any] | None, dict[str, Any] | None]:
    """kind, text, media and details of the row, from which the request can be rebuilt to send again. A
    template's text is what the customer reads (its header and body filled in, its footer), so the history
    reads naturally; `details` keep the request (name, language, values) and the components sent."""
    if isinstance(content, TemplateReply):
        request = content.template.model_dump(exclude_none=True, exclude_defaults=True) | {
            "name": content.template.name,
            "language": content.template.language,
        }
        if composed is None:
            return "template", None, None, {"template": request}
        details = {"template": request, "components": composed.components, "header_kind": composed.header_kind}
        return "template", composed.text or None, None, details
    if isinstance(content, MediaReply):
        media = content.media.model_dump(exclude_none=True, exclude={"kind"})
        return content.media.kind, content.media.caption, media, None
    if isinstance(content, InteractiveReply):
        return (
            "interactive",
            content.interactive.body,
            None,
            {"interactive": content.interactive.model_dump(exclude_none=True)},
        )
    return "text", content.text, None, None


def _request_of(message: Message) -> Reply:
    """The request a stored outbound message was made from (to send it again)."""
    if message.kind == "template" and message.details:
        return TemplateReply(template=TemplateRequest.model_validate(message.details["template"]))
    if message.media is not None:
        return MediaReply(media=MediaRequest.model_validate({**message.media, "kind": message.kind}))
    if message.kind == "interactive" and message.details and "interactive" in message.details:
        return InteractiveReply(interactive=InteractiveRequest.model_validate(message.details["interactive"]))
    return TextReply(text=message.text or "")


async def prepare(
    conn: Connection,
    events: EventBatch,
    *,
    viewer: Viewer,
    conversation_id: UUID,
    content: Reply,
    composed: tuple[UUID, ComposedTemplate] | None = None,
) -> Outgoing:
    """Checks the rules and stores the message as `queued`; the caller commits, then sends.

    A template reply comes `composed` (`messages.templates.compose_reply`: for which channel, and what to
    send); stored with its components, a retry sends exactly what was checked."""
    row = await _locked_target(conn, viewer, conversation_id, template=isinstance(content, TemplateReply))
    if composed is not None and composed[0] != row["channel_id"]:
        raise Conflict("the conversation's number changed while the template was checked: send it again")
    reply_to_wamid = None
    if content.reply_to is not None:
        reply_to_wamid = await conn.fetchval(_REPLY_TO_SQL, content.reply_to, conversation_id)
        if reply_to_wamid is None:
            raise InvalidInput(
                "reply_to is not a message of this conversation that WhatsApp knows",
                details=[{"field": "body.reply_to", "message": "no such message in this conversation"}],
            )
    kind, text, media, details = _stored_form(content, composed[1] if composed is not None else None)
    return await _store(
        conn, events, row, content, form=(kind, text, media, details), reply_to_wamid=reply_to_wamid, author=viewer
    )


async def _store(
    conn: Connection,
    events: EventBatch,
    row: Any,
    content: Reply,
    *,
    form: tuple[str, str | None, dict[str, Any] | None, dict[str, Any] | None],
    reply_to_wamid: str | None,
    author: Viewer | None,
) -> Outgoing:
    """Under the conversation's lock (`row` is its target): the message stored as `queued`, announced."""
    kind, text, media, details = form
    stored = await conn.fetchrow(
        _INSERT_SQL,
        events.tenant_id,
        row["id"],
        row["channel_id"],
        kind,
        text,
        media,
        details,
        reply_to_wamid,
        author.user_id if author is not None else None,
    )
    message = _message(stored)
    await conn.execute(_TOUCH_SQL, row["id"], message.id, message.kind, message.text, message.created_at)
    messages.announce_created(
        events, message, queue_id=row["queue_id"], agent_id=row["agent_id"], conversation_status=row["status"]
    )
    target = Target(row["channel_id"], row["phone_number_id"], row["access_token"], row["wa_id"])
    assert stored is not None, "an insert returns its row"
    return Outgoing(
        message, target, content, reply_to_wamid, attempt=int(stored["send_attempts"]), queued_at=stored["updated_at"]
    )


AutomaticReason = Literal["out_of_hours", "queue_position", "inactivity_close"]
_LOCK_ANY_SQL = f"{_TARGET_SQL} where c.id = $1 for no key update of c"


async def prepare_automatic(
    conn: Connection, events: EventBatch, *, conversation_id: UUID, text: str, reason: AutomaticReason
) -> Outgoing | None:
    """A message the console sends by itself (no author), stored as `queued` with `details.automatic` naming
    why; None where it may not go: the conversation closed, its number disconnected or without a token, or
    outside the 24-hour window (an automatic template would cost the tenant money unasked)."""
    row = await conn.fetchrow(_LOCK_ANY_SQL, conversation_id)
    if row is None or row["status"] == "closed" or not row["channel_active"] or not row["access_token"]:
        return None
    inbound = row["last_inbound_at"]
    if inbound is None or datetime.now(UTC) >= inbound + CUSTOMER_SERVICE_WINDOW:
        return None
    content = TextReply(text=text)
    form = ("text", content.text, None, {"automatic": reason})
    return await _store(conn, events, row, content, form=form, reply_to_wamid=None, author=None)


_OUTBOUND_SQL = f"select {MESSAGE_COLUMNS} from messages where id = $1 and direction = 'outbound'"
_LOCK_MESSAGE_SQL = """
select status, updated_at < now() - make_interval(secs => $2) as stale from messages where id = $1
for no key update
"""
# A new attempt forgets the last one's wamid: a late receipt for it must not move this attempt along.
_REQUEUE_SQL = f"""
update messages
set status = 'queued', error = null, wa_message_id = null, send_attempts = send_attempts + 1, updated_at = now()
where id = $1
returning {MESSAGE_COLUMNS}, send_attempts, updated_at
"""


async def prepare_retry(conn: Connection, events: EventBatch, *, viewer: Viewer, message_id: UUID) -> Outgoing:
    """A failed message (or one queued so long its sender must have died) queued again, to send once more."""
    stored = await conn.fetchrow(_OUTBOUND_SQL, message_id)
    if stored is None:
        raise NotFound("no such outbound message")
    message = _message(stored)
    content = _request_of(message)
    # The conversation first, then the message: the order every other path locks in.
    row = await _locked_target(conn, viewer, message.conversation_id, template=isinstance(content, TemplateReply))
    found = await conn.fetchrow(_LOCK_MESSAGE_SQL, message_id, STALE_QUEUED_SECONDS)
    assert found is not None, "an outbound message is never deleted"
    if not (found["status"] == "failed" or (found["status"] == "queued" and found["stale"])):
        raise Conflict(f"only a failed message can be sent again (this one is {found['status']})")
    requeued_row = await conn.fetchrow(_REQUEUE_SQL, message_id)
    assert requeued_row is not None, "the message is locked"
    requeued = _message(requeued_row)
    _announce_status(events, row, requeued)
    target = Target(row["channel_id"], row["phone_number_id"], row["access_token"], row["wa_id"])
    return Outgoing(
        requeued,
        target,
        content,
        requeued.reply_to_wa_message_id,
        attempt=int(requeued_row["send_attempts"]),
        queued_at=requeued_row["updated_at"],
    )


_SENT_SQL = f"""
update messages set status = 'sent', wa_message_id = $2, error = null, updated_at = now()
where id = $1 and status = 'queued' and send_attempts = $3
returning {MESSAGE_COLUMNS}
"""
_FAILED_SQL = f"""
update messages set status = 'failed', error = $2, updated_at = now()
where id = $1 and status = 'queued' and send_attempts = $3
returning {MESSAGE_COLUMNS}
"""
# Share-locked: a move of the conversation committing meanwhile would otherwise send this event to whoever
# followed it before (the move takes its seq first), and its new agent would never get it.
_FOLLOWERS_SQL = "select queue_id, agent_id, status from conversations where id = $1 for share"
# For update, not share: `_REPLIED_SQL` then updates this row, and a share lock upgraded while another
# transaction waits for the row would deadlock with it.
_HOLD_CONVERSATION_SQL = "select 1 from conversations where id = $1 for no key update"
_READ_SQL = f"select {MESSAGE_COLUMNS} from messages where id = $1"


async def record_sent(conn: Connection, events: EventBatch, *, outgoing: Outgoing, wamid: str) -> Message:
    """WhatsApp took it: `sent` with its wamid, then any receipt that came before we knew the wamid."""
    await message_statuses.lock_wamid(conn, channel_id=outgoing.target.channel_id, wa_message_id=wamid)
    reply = outgoing.message
    # WhatsApp took this attempt, whether or not a newer one is recorded instead, so it answered the customer.
    answered_since = outgoing.queued_at if reply.details is None or "automatic" not in reply.details else None
    # Before the message's row: conversation, then message, is the order every other path locks in (a
    # person's reply also marks the conversation's open segment, a trigger of 0016, after it).
    await conn.execute(_HOLD_CONVERSATION_SQL, reply.conversation_id)
    row = await conn.fetchrow(_SENT_SQL, reply.id, wamid, outgoing.attempt)
    first_response = row is not None and row["author_id"] is not None
    if answered_since is not None or first_response:
        await conn.execute(_REPLIED_SQL, reply.conversation_id, answered_since, first_response)
    if row is not None:
        message = _message(row)
        _announce_status(events, await _followers(conn, message), message)
        await message_statuses.apply_recorded(conn, events, channel_id=outgoing.target.channel_id, wa_message_id=wamid)
    return _message(await conn.fetchrow(_READ_SQL, outgoing.message.id))


async def record_failed(conn: Connection, events: EventBatch, *, outgoing: Outgoing, error: dict[str, Any]) -> Message:
    await conn.execute(_HOLD_CONVERSATION_SQL, outgoing.message.conversation_id)  # the conversation, then the message
    row = await conn.fetchrow(_FAILED_SQL, outgoing.message.id, error, outgoing.attempt)
    if row is not None:
        message = _message(row)
        _announce_status(events, await _followers(conn, message), message)
    return _message(await conn.fetchrow(_READ_SQL, outgoing.message.id))


async def _followers(conn: Connection, message: Message) -> Any:
    return await conn.fetchrow(_FOLLOWERS_SQL, message.conversation_id)


def _announce_status(events: EventBatch, conversation: Any, message: Message) -> None:
    messages.announce_status(
        events,
        conversation_id=message.conversation_id,
        message_id=message.id,
        status=message.status,
        error=message.error,
        queue_id=conversation["queue_id"],
        agent_id=conversation["agent_id"],
        conversation_status=conversation["status"],
    )
