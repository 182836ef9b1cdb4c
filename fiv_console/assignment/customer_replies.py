"""What the console tells a waiting customer by itself, and the conversations it closes for inactivity.

- **Out of hours**: a waiting customer who writes while their queue is closed (its business hours, in the
  tenant's time zone) gets the queue's out-of-hours message, once per closed period; not one an agent has
  (the claims come first in a round, so an agent present out of hours answers instead).
- **Queue position**: where the tenant sets `queue_position_reply`, a customer left waiting (the claims
  that came first found nobody for them) gets it once, with `{position}` (their place in the queue's line)
  and `{wait}` (an estimate from the queue's assignments in the last half hour, in English) filled in; not
  while the queue is closed, where the out-of-hours message says more. The place is by the queue's order
  without `priority_rise_seconds`, an estimate like the wait. Moved to another queue, it is told again.
- **Inactivity**: where the tenant sets `inactivity_close_seconds`, an assigned conversation whose last
  message was a person's answer and has had no message since for that long is closed (reason `inactivity`),
  with the tenant's closing message first if it has one (only inside the 24-hour window: a longer setting
  closes without it). A customer still waiting for an answer, or waiting in a queue, is never closed.

Every reply is stored here, in the tenant's transaction, and sent after commit by the caller; each goes
only inside WhatsApp's 24-hour window (`outbound.prepare_automatic`). Conversations someone is moving are
skipped (the next round sees them). A reply still `queued` long after it was stored (its instance stopped
before sending it) is queued again for sending by a later sweep (`resend_stranded`), while it may still go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from fiv_console.access import Viewer
from fiv_console.accounts.tenants import Tenant
from fiv_console.assignment.claim import take_turn
from fiv_console.conversations import lifecycle as conversations
from fiv_console.conversations.reading import CUSTOMER_SERVICE_WINDOW
from fiv_console.db.pool import Connection
from fiv_console.errors import DomainError
from fiv_console.events import EventBatch
from fiv_console.messages import outbound
from fiv_console.messages.outbound import Outgoing
from fiv_console.routing.business_hours import BusinessHours, closed_since

_CLOSED_QUEUES_SQL = """
select id, business_hours, out_of_hours_message from queues where active and business_hours is not null
"""
# Wrote during this closed period ($2: when it closed), and not told since it closed.
_WROTE_WHILE_CLOSED_SQL = """
select c.id from conversations c
where c.queue_id = $1 and c.status = 'waiting' and c.last_inbound_at >= $2
  and (c.out_of_hours_replied_at is null or c.out_of_hours_replied_at < $2)
order by c.last_inbound_at, c.id
limit $3
for no key update of c skip locked
"""
_TOLD_OUT_OF_HOURS_SQL = "update conversations set out_of_hours_replied_at = now() where id = any($1::uuid[])"
_LEFT_WAITING_SQL = """
select c.id, c.queue_id from conversations c
where c.status = 'waiting' and c.position_replied_at is null and not (c.queue_id = any($1::uuid[]))
order by c.enqueued_at, c.id
limit $2
for no key update of c skip locked
"""
# Places in the line of each queue, in one pass over its waiting conversations (the index's order).
_PLACES_SQL = """
select id, place from (
    select c.id, row_number() over (partition by c.queue_id order by c.priority desc, c.enqueued_at, c.id) as place
    from conversations c
    where c.status = 'waiting' and c.queue_id = any($1::uuid[])
) line
where id = any($2::uuid[])
"""
RATE_WINDOW = timedelta(minutes=30)
_RECENT_ASSIGNMENTS_SQL = (
    "select count(*) from conversations where queue_id = $1 and assigned_at > now() - $2::interval"
)
_TOLD_POSITION_SQL = "update conversations set position_replied_at = now() where id = any($1::uuid[])"
# The last message was a person's (or an integration's) answer, not the customer's nor an automatic one.
_INACTIVE_SQL = """
select c.id from conversations c
cross join lateral (
    select m.direction, m.details from messages m
    where m.tenant_id = c.tenant_id and m.conversation_id = c.id
    order by m.created_at desc, m.id desc
    limit 1
) last
where c.status = 'assigned' and c.last_message_at <= now() - $1::interval
  and last.direction = 'outbound' and (last.details is null or not last.details ? 'automatic')
order by c.last_message_at, c.id
limit $2
for no key update of c skip locked
"""
INACTIVITY_REASON = "inactivity"


_HOURS_WITH_MESSAGE_SQL = """
select exists (
    select 1 from queues where active and business_hours is not null and out_of_hours_message is not null
)
"""


async def configured(conn: Connection, tenant: Tenant) -> bool:
    """Whether the tenant has customers told anything while they wait (else a round need not look)."""
    return tenant.settings.queue_position_reply is not None or bool(await conn.fetchval(_HOURS_WITH_MESSAGE_SQL))


# Still queued well after it was stored, where it may still go: its instance stopped before sending it.
_STRANDED_SQL = """
select m.id from messages m
join conversations c on c.tenant_id = m.tenant_id and c.id = m.conversation_id
where m.status = 'queued' and m.updated_at < now() - make_interval(secs => $1) and m.details ? 'automatic'
  and c.status <> 'closed' and c.last_inbound_at > now() - $2::interval
order by m.updated_at
limit $3
"""


async def resend_stranded(conn: Connection, batch: EventBatch, tenant_id: UUID, *, limit: int) -> list[Outgoing]:
    """In a tenant transaction that holds no other lock: automatic replies left `queued` by a stopped
    instance, queued again to send (each under its first id, WhatsApp's idempotency key)."""
    console = Viewer(tenant_id=tenant_id, role="admin", user_id=None)
    again: list[Outgoing] = []
    for row in await conn.fetch(_STRANDED_SQL, outbound.STALE_QUEUED_SECONDS, CUSTOMER_SERVICE_WINDOW, limit):
        try:
            again.append(await outbound.prepare_retry(conn, batch, viewer=console, message_id=row["id"]))
        except DomainError:  # closed or sent meanwhile, or the window shut: it no longer goes
            continue
    return again


@dataclass(frozen=True, slots=True)
class Written:
    """Replies stored in this transaction, to send after it commits; how many were closed."""

    replies: list[Outgoing]
    closed: int = 0


def wait_in_words(position: int, assignments_in_window: int) -> str:
    """The estimated wait for the `position`-th in line, at the pace of the last half hour."""
    if assignments_in_window == 0:
        return "not known yet"
    minutes = position * RATE_WINDOW.total_seconds() / 60 / assignments_in_window
    if minutes < 1:
        return "less than a minute"
    if minutes < 90:
        return f"about {round(minutes)} minute{'s' if round(minutes) != 1 else ''}"
    return f"about {round(minutes / 60)} hours"


def fill(template: str, *, position: int, wait: str) -> str:
    """The tenant's text with its two placeholders filled (other braces are left as written)."""
    return template.replace("{position}", str(position)).replace("{wait}", wait)


async def _out_of_hours(
    conn: Connection, batch: EventBatch, tenant: Tenant, *, limit: int
) -> tuple[list[Outgoing], set[UUID]]:
    """Replies to customers who wrote while their queue is closed; and which queues are closed now."""
    now = datetime.now(UTC)
    replies: list[Outgoing] = []
    closed: set[UUID] = set()
    for queue in await conn.fetch(_CLOSED_QUEUES_SQL):
        since = closed_since(BusinessHours.model_validate(queue["business_hours"]), tenant.time_zone, now)
        if since is None:
            continue
        closed.add(queue["id"])
        if queue["out_of_hours_message"] is None:
            continue
        ids = [r["id"] for r in await conn.fetch(_WROTE_WHILE_CLOSED_SQL, queue["id"], since, limit)]
        for conversation_id in ids:
            reply = await outbound.prepare_automatic(
                conn, batch, conversation_id=conversation_id, text=queue["out_of_hours_message"], reason="out_of_hours"
            )
            if reply is not None:
                replies.append(reply)
        if ids:
            await conn.execute(_TOLD_OUT_OF_HOURS_SQL, ids)
    return replies, closed


async def _positions(
    conn: Connection, batch: EventBatch, template: str, closed_queues: set[UUID], *, limit: int
) -> list[Outgoing]:
    rows = await conn.fetch(_LEFT_WAITING_SQL, list(closed_queues), limit)
    if not rows:
        return []
    queue_ids = list({r["queue_id"] for r in rows})
    places = {r["id"]: int(r["place"]) for r in await conn.fetch(_PLACES_SQL, queue_ids, [r["id"] for r in rows])}
    paces = {q: int(await conn.fetchval(_RECENT_ASSIGNMENTS_SQL, q, RATE_WINDOW)) for q in queue_ids}
    replies: list[Outgoing] = []
    for row in rows:
        place = places[row["id"]]
        text = fill(template, position=place, wait=wait_in_words(place, paces[row["queue_id"]]))
        reply = await outbound.prepare_automatic(
            conn, batch, conversation_id=row["id"], text=text, reason="queue_position"
        )
        if reply is not None:
            replies.append(reply)
    await conn.execute(_TOLD_POSITION_SQL, [r["id"] for r in rows])
    return replies


async def _close_inactive(
    conn: Connection, batch: EventBatch, tenant: Tenant, *, limit: int, with_message: bool
) -> Written:
    settings = tenant.settings
    if settings.inactivity_close_seconds is None:
        return Written([])
    after = timedelta(seconds=settings.inactivity_close_seconds)
    ids = [r["id"] for r in await conn.fetch(_INACTIVE_SQL, after, limit)]
    replies: list[Outgoing] = []
    console = Viewer(tenant_id=tenant.id, role="admin", user_id=None)
    for conversation_id in ids:
        if with_message and settings.inactivity_close_message is not None:
            reply = await outbound.prepare_automatic(
                conn,
                batch,
                conversation_id=conversation_id,
                text=settings.inactivity_close_message,
                reason="inactivity_close",
            )
            if reply is not None:
                replies.append(reply)
        moved = await conversations.close(
            conn, viewer=console, conversation_id=conversation_id, reason=INACTIVITY_REASON
        )
        conversations.announce_move(batch, "conversation.closed", moved, reason="inactivity")
    return Written(replies, closed=len(ids))


async def write(
    conn: Connection, batch: EventBatch, tenant: Tenant, *, limit: int, sweep: bool, can_send: bool, tell_waiting: bool
) -> Written:
    """In the tenant's transaction: in a `sweep`, the inactivity closes (with their closing message if this
    instance `can_send`); with `tell_waiting`, the out-of-hours and queue-position replies; their events go
    to `batch`."""
    await take_turn(conn, tenant.id)  # it locks waiting conversations: a claim must not skip them
    closing = await _close_inactive(conn, batch, tenant, limit=limit, with_message=can_send) if sweep else Written([])
    if not tell_waiting:
        return closing
    told, closed_queues = await _out_of_hours(conn, batch, tenant, limit=limit)
    template = tenant.settings.queue_position_reply
    placed = await _positions(conn, batch, template, closed_queues, limit=limit) if template else []
    return Written(closing.replies + told + placed, closed=closing.closed)
