"""Delivery receipts of outbound messages: recorded once each, applied to the message only forwards.

WhatsApp reports `sent`, `delivered`, `read` (and `played` for voice) or `failed`, at least once each and in
no guaranteed order; a message read at once may never get `delivered`. Every receipt is recorded once per
(message, status) in `message_statuses`. The message's own status takes a receipt only if it ranks higher
than where the message stands, so a late `delivered` never undoes `read`. `failed` ranks highest: Meta
sends it when it gives up, after which nothing else comes, and it keeps Meta's error for the agent.

A receipt can arrive before the send's answer has told us the wamid (Meta's webhook races our HTTP
response). It is recorded all the same, and `apply_recorded` applies the best one once the wamid is stored;
both sides hold one lock per wamid (`lock_wamid`), so neither can miss the other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch
from fiv_console.messages import history as messages

# A receipt's status, as the message's status; receipts of other statuses are only recorded.
MESSAGE_STATUS_OF_RECEIPT = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}
RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
_RANK_SQL = "case {column} " + " ".join(f"when '{s}' then {r}" for s, r in RANK.items()) + " else 0 end"

# The transaction-scoped lock on one (channel, wamid) that receipts and the send's answer both take, so
# whichever commits second sees the other's work: without it, a receipt inserted while the send records
# the wamid would find no message, and the send would not see the receipt yet, and it would never apply.
_LOCK_KEY_SQL = "hashtextextended($1::uuid::text || ':' || $2::text, 0)"
_LOCK_SQL = f"select pg_advisory_xact_lock({_LOCK_KEY_SQL})"
_RECORD_SQL = f"""
with locked as (select pg_advisory_xact_lock({_LOCK_KEY_SQL}))
insert into message_statuses (tenant_id, channel_id, wa_message_id, status, occurred_at, errors, raw)
select $3, $1, $2, $4, $5, $6, $7 from locked
on conflict (channel_id, wa_message_id, status) do nothing
returning status
"""


async def lock_wamid(conn: Connection, *, channel_id: UUID, wa_message_id: str) -> None:
    """Serializes, until commit, everything about this wamid's receipts (see `_LOCK_KEY_SQL`)."""
    await conn.execute(_LOCK_SQL, channel_id, wa_message_id)


_ADVANCE_SQL = f"""
with advanced as (
    update messages m
    set status = $3, error = case when $3 = 'failed' then $4 else m.error end, updated_at = now()
    where m.channel_id = $1 and m.wa_message_id = $2 and m.direction = 'outbound'
      and {_RANK_SQL.format(column="m.status")} < {_RANK_SQL.format(column="$3::text")}
    returning m.id, m.conversation_id, m.status, m.error
)
select a.id, a.conversation_id, a.status, a.error, c.queue_id, c.agent_id, c.status as conversation_status
from advanced a join conversations c on c.id = a.conversation_id
for share of c
"""


async def record(
    conn: Connection,
    events: EventBatch,
    *,
    channel_id: UUID,
    wa_message_id: str,
    status: str,
    occurred_at: datetime,
    errors: list[dict[str, Any]] | None,
    raw: Any,
) -> bool:
    """Records a receipt and moves its message forward if it can; False when it was a duplicate."""
    recorded = await conn.fetchval(
        _RECORD_SQL, channel_id, wa_message_id, events.tenant_id, status, occurred_at, errors, raw
    )
    if recorded is None:
        return False
    message_status = MESSAGE_STATUS_OF_RECEIPT.get(status)
    if message_status is not None:
        await _advance(
            conn,
            events,
            channel_id=channel_id,
            wa_message_id=wa_message_id,
            status=message_status,
            error=_error_of(errors),
        )
    return True


_RECORDED_SQL = """
select status, errors from message_statuses where channel_id = $1 and wa_message_id = $2
"""


async def apply_recorded(conn: Connection, events: EventBatch, *, channel_id: UUID, wa_message_id: str) -> None:
    """Applies the furthest receipt that arrived before the message's wamid was known."""
    rows = await conn.fetch(_RECORDED_SQL, channel_id, wa_message_id)
    best = max(
        (r for r in rows if r["status"] in MESSAGE_STATUS_OF_RECEIPT),
        key=lambda r: RANK[MESSAGE_STATUS_OF_RECEIPT[r["status"]]],
        default=None,
    )
    if best is not None:
        await _advance(
            conn,
            events,
            channel_id=channel_id,
            wa_message_id=wa_message_id,
            status=MESSAGE_STATUS_OF_RECEIPT[best["status"]],
            error=_error_of(best["errors"]),
        )


def _error_of(errors: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """What the agent is shown of a failure: Meta's first error (code, title, message, details)."""
    return errors[0] if errors else None


async def _advance(
    conn: Connection,
    events: EventBatch,
    *,
    channel_id: UUID,
    wa_message_id: str,
    status: str,
    error: dict[str, Any] | None,
) -> None:
    for row in await conn.fetch(_ADVANCE_SQL, channel_id, wa_message_id, status, error):
        messages.announce_status(
            events,
            conversation_id=row["conversation_id"],
            message_id=row["id"],
            status=row["status"],
            error=row["error"],
            queue_id=row["queue_id"],
            agent_id=row["agent_id"],
            conversation_status=row["conversation_status"],
        )
