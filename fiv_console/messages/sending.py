"""What the console tells WhatsApp: replies, read marks (the blue ticks) and the typing indicator.

A reply is three steps in separate transactions, on purpose: store it, send it through the Graph API
outside any transaction, record the outcome. The conversation's lock is held only while the message is
stored, never across the network call, so a slow or retrying WhatsApp never holds up intake, assignment or
other agents. Whatever the Graph API does, the stored message survives: `sent` with its wamid, or `failed`
with Meta's error and a reason a person can read (and it can be sent again). If the process dies between
the steps the message stays `queued`, and after a while may be sent again.

Read marks are claimed in the database before WhatsApp is told and given back if it cannot be
(`fiv_console.conversations.read_marks`), so each message is marked once; typing indicators are throttled per
conversation (`TypingThrottle`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from fiv_console import events
from fiv_console.access import Viewer
from fiv_console.background import TaskSet
from fiv_console.conversations import read_marks
from fiv_console.db.pool import DATABASE_TROUBLE, Connection, Database
from fiv_console.events import Announcer, EventBatch
from fiv_console.messages import outbound
from fiv_console.messages import templates as template_replies
from fiv_console.messages.history import Message
from fiv_console.messages.interactive import InteractiveReply
from fiv_console.messages.outbound import Outgoing, Reply, TemplateReply, TextReply
from fiv_console.whatsapp.client import (
    GraphClient,
    GraphError,
    interactive_payload,
    media_payload,
    template_payload,
    text_payload,
)
from fiv_console.whatsapp.template_cache import TemplateCache

log = logging.getLogger(__name__)


async def send(
    db: Database,
    client: GraphClient,
    announcer: Announcer,
    *,
    viewer: Viewer,
    conversation_id: UUID,
    content: Reply,
    templates: TemplateCache,
) -> Message:
    """Stores the reply as `queued`, sends it, and answers the message as it then stands. A template is
    checked against the channel's first, outside any transaction (its list may have to be fetched)."""
    composed = None
    if isinstance(content, TemplateReply):
        composed = await template_replies.compose_reply(
            db, templates, viewer=viewer, conversation_id=conversation_id, request=content.template
        )
    async with events.changing(db, announcer, viewer.tenant_id) as (conn, batch):
        outgoing = await outbound.prepare(
            conn, batch, viewer=viewer, conversation_id=conversation_id, content=content, composed=composed
        )
    return await deliver(db, client, announcer, viewer.tenant_id, outgoing)


async def send_again(
    db: Database, client: GraphClient, announcer: Announcer, *, viewer: Viewer, message_id: UUID
) -> Message:
    """A failed message sent once more, under its first id (the idempotency key)."""
    async with events.changing(db, announcer, viewer.tenant_id) as (conn, batch):
        outgoing = await outbound.prepare_retry(conn, batch, viewer=viewer, message_id=message_id)
    return await deliver(db, client, announcer, viewer.tenant_id, outgoing)


def payload_of(outgoing: Outgoing) -> dict[str, Any]:
    """The Graph API body for a stored outbound message."""
    content, to = outgoing.content, outgoing.target.to
    if isinstance(content, TextReply):
        return text_payload(to, content.text, reply_to=outgoing.reply_to_wamid)
    if isinstance(content, TemplateReply):
        template, details = content.template, outgoing.message.details or {}
        if "components" in details:
            payload = template_payload(to, template.name, template.language, components=details["components"])
        else:
            # Stored before templates were checked: the body's values in order, as then.
            payload = template_payload(to, template.name, template.language, list(template.parameters))
    elif isinstance(content, InteractiveReply):
        payload = interactive_payload(to, content.interactive.graph_object())
    else:
        media = content.media
        payload = media_payload(
            to, media.kind, media.id, caption=media.caption, filename=media.filename, link=media.link
        )
    if outgoing.reply_to_wamid is not None:
        payload["context"] = {"message_id": outgoing.reply_to_wamid}
    return payload


async def deliver(
    db: Database, client: GraphClient, announcer: Announcer, tenant_id: UUID, outgoing: Outgoing
) -> Message:
    """Sends a stored `queued` message and records what came of it."""
    target, message_id = outgoing.target, outgoing.message.id
    try:
        sent = await client.send_message(
            target.phone_number_id,
            target.access_token,
            payload_of(outgoing),
            idempotency_key=str(message_id),
            callback_data=str(message_id),
        )
    except GraphError as exc:
        log.warning(
            "WhatsApp did not take a message",
            extra={"message_id": str(message_id), "code": exc.code, "retryable": exc.retryable},
        )
        error = exc.stored_error()
        return await _record(
            db,
            announcer,
            tenant_id,
            lambda conn, batch: outbound.record_failed(conn, batch, outgoing=outgoing, error=error),
        )
    return await _record(
        db,
        announcer,
        tenant_id,
        lambda conn, batch: outbound.record_sent(conn, batch, outgoing=outgoing, wamid=sent.wamid),
    )


_RECORD_ATTEMPTS = 3
_LOCK_CONFLICTS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


async def _record(
    db: Database,
    announcer: Announcer,
    tenant_id: UUID,
    write: Callable[[Connection, EventBatch], Awaitable[Message]],
) -> Message:
    """What came of a send, recorded; again after a lock conflict. Only this process knows WhatsApp's answer,
    so giving up would leave a message it took `queued` and its receipts unapplied. A second attempt is safe:
    each record applies only to the attempt it belongs to. (Recording a send locks the wamid, then the
    conversation; a webhook storing a message and a receipt together locks them the other way round, and
    PostgreSQL then ends one of the two.)"""
    for attempt in range(1, _RECORD_ATTEMPTS + 1):
        try:
            async with events.changing(db, announcer, tenant_id) as (conn, batch):
                return await write(conn, batch)
        except _LOCK_CONFLICTS:
            if attempt == _RECORD_ATTEMPTS:
                raise
            log.info("a send's outcome recorded again after a lock conflict", extra={"attempt": attempt})
    raise AssertionError("every attempt returns or raises")


class Dispatcher:
    """Sends the messages the console writes by itself (automatic replies) in the background, at most
    `limit` at once, so a slow WhatsApp never holds up the work that wrote them (the assignment loop).

    Each message is stored before it is handed here: one that a stop interrupts stays `queued`, and can be
    sent again like any other. `close` cancels what is still on its way and waits for it.
    """

    def __init__(self, db: Database, client: GraphClient, announcer: Announcer, *, limit: int = 16) -> None:
        self._db, self._client, self._announcer = db, client, announcer
        self._slots = asyncio.Semaphore(limit)
        self._tasks = TaskSet()

    def send(self, tenant_id: UUID, outgoing: Sequence[Outgoing]) -> None:
        for one in outgoing:
            self._tasks.start(self._send(tenant_id, one), name="automatic-reply")

    async def _send(self, tenant_id: UUID, outgoing: Outgoing) -> None:
        async with self._slots:
            try:
                await deliver(self._db, self._client, self._announcer, tenant_id, outgoing)
            except DATABASE_TROUBLE as exc:
                log.warning("an automatic reply's outcome was not recorded", extra={"error": type(exc).__name__})

    async def drain(self) -> None:
        """Waits until everything handed over so far is sent (tests)."""
        await self._tasks.drain()

    async def close(self) -> None:
        await self._tasks.close()


class TypingThrottle:
    """At most one typing indicator per conversation per `interval` seconds, in this process.

    WhatsApp shows the indicator for up to 25 seconds (or until the reply), so re-sending it on every
    keystroke only spends the number's throughput. Entries older than the interval are dropped as new
    ones come, so the map holds only the conversations typed in lately.
    """

    def __init__(self, interval: float = 20.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: OrderedDict[UUID, float] = OrderedDict()

    def allow(self, conversation_id: UUID) -> bool:
        now = self._clock()
        while self._last and next(iter(self._last.values())) <= now - self._interval:
            self._last.popitem(last=False)
        if conversation_id in self._last:
            return False
        self._last[conversation_id] = now
        return True


async def mark_read(
    db: Database, client: GraphClient, announcer: Announcer, *, viewer: Viewer, conversation_id: UUID
) -> int:
    """Marks the conversation's unread inbound messages read at WhatsApp, once; how many it marked."""
    async with events.changing(db, announcer, viewer.tenant_id) as (conn, batch):
        mark = await read_marks.claim_unread(conn, batch, viewer=viewer, conversation_id=conversation_id)
    if mark is None:
        return 0
    told = await _tell_read(db, client, announcer, viewer.tenant_id, mark, typing=False)
    return len(mark.message_ids) if told else 0


async def show_typing(
    db: Database,
    client: GraphClient,
    announcer: Announcer,
    throttle: TypingThrottle,
    *,
    viewer: Viewer,
    conversation_id: UUID,
) -> bool:
    """The typing indicator to the customer, unless one went out lately; whether one was sent."""
    async with events.changing(db, announcer, viewer.tenant_id) as (conn, batch):
        mark = await read_marks.newest_inbound(conn, batch, viewer=viewer, conversation_id=conversation_id)
    if mark is None or not throttle.allow(conversation_id):
        if mark is not None and mark.message_ids:
            await _tell_read(db, client, announcer, viewer.tenant_id, mark, typing=False)
        return False
    return await _tell_read(db, client, announcer, viewer.tenant_id, mark, typing=True)


async def _tell_read(
    db: Database,
    client: GraphClient,
    announcer: Announcer,
    tenant_id: UUID,
    mark: read_marks.ReadMark,
    *,
    typing: bool,
) -> bool:
    try:
        if not mark.access_token:
            raise GraphError(code=None, message="no access token", retryable=False)
        await client.mark_read(mark.phone_number_id, mark.access_token, mark.wa_message_id, typing=typing)
    except GraphError as exc:
        log.warning("WhatsApp was not told of a read", extra={"code": exc.code, "typing": typing})
        async with events.changing(db, announcer, tenant_id) as (conn, batch):
            await read_marks.release(conn, batch, mark=mark)
        return False
    return True
