"""The event log: every change a person must see live, appended in the transaction that makes the change.

An event names who may receive it (`access.Audience`): everyone in the tenant, its supervisors and admins
only, or the agents of some queues and some people (supervisors and admins always). After commit the events are
announced (`Announcer`: the realtime hub publishes them on the bus); the log stays the truth that a
reconnecting client replays from (`read`), for as long as retention keeps it (`prune`).

Each tenant's events carry `seq` 1, 2, 3, ... with no gaps, in commit order. The seqs come from the
tenant's `event_counters` row, taken by the same statement that inserts the events, which must be the
transaction's last statement: the row lock then lasts only for the commit itself, and a transaction that
takes a seq commits before the next one can take another. So a reader of "events after N" never misses
an event that commits later with a smaller seq. The price is that one tenant's event-producing commits
are serialized (docs/benchmarks.md measures what that allows).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

from fiv_console.access import Audience
from fiv_console.db.pool import Connection, Database, tenant_tx

EventType = Literal[
    "conversation.created",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.unassigned",
    "conversation.closed",
    "conversation.reopened",
    "conversation.updated",
    "conversation.sla_breached",
    "message.created",
    "message.status",
    "message.updated",
    "note.created",
    "agent.presence",
    "queue.updated",
    "queue.members_changed",
    "tenant.updated",
]


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: EventType
    audience: Audience
    conversation_id: UUID | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    tenant_id: UUID
    seq: int
    type: EventType
    audience: Audience
    conversation_id: UUID | None
    payload: dict[str, Any]
    created_at: datetime


@dataclass(slots=True)
class EventBatch:
    """The events one transaction will append, gathered while it works and appended just before commit."""

    tenant_id: UUID
    pending: list[NewEvent] = field(default_factory=list)

    def add(
        self, type_: EventType, audience: Audience, *, conversation_id: UUID | None, payload: dict[str, Any]
    ) -> None:
        self.pending.append(NewEvent(type_, audience, conversation_id, payload))


# One statement: counter and rows together, so the counter's row lock is taken as late as possible.
_APPEND_SQL = """
with counter as (
    insert into event_counters as c (tenant_id, last_seq) values ($1, $2)
    on conflict (tenant_id) do update set last_seq = c.last_seq + excluded.last_seq
    returning last_seq
)
insert into events (tenant_id, seq, type, conversation_id, audience, audience_queue_ids, audience_user_ids, payload)
select $1, counter.last_seq - $2 + e.ord, e.doc->>'type', (e.doc->>'conversation_id')::uuid, e.doc->>'audience',
       array(select jsonb_array_elements_text(e.doc->'queue_ids')::uuid),
       array(select jsonb_array_elements_text(e.doc->'user_ids')::uuid),
       e.doc->'payload'
from counter, jsonb_array_elements($3::jsonb) with ordinality as e(doc, ord)
returning seq, created_at
"""


async def append(conn: Connection, batch: EventBatch) -> list[Event]:
    """Appends the batch's events with the tenant's next seqs; call it last, just before commit."""
    if not batch.pending:
        return []
    documents = [
        {
            "type": event.type,
            "conversation_id": str(event.conversation_id) if event.conversation_id else None,
            "audience": event.audience.kind,
            "queue_ids": [str(q) for q in event.audience.queue_ids],
            "user_ids": [str(u) for u in event.audience.user_ids],
            "payload": event.payload,
        }
        for event in batch.pending
    ]
    rows = sorted(await conn.fetch(_APPEND_SQL, batch.tenant_id, len(documents), documents), key=lambda r: r["seq"])
    return [
        Event(batch.tenant_id, int(row["seq"]), e.type, e.audience, e.conversation_id, e.payload, row["created_at"])
        for row, e in zip(rows, batch.pending, strict=True)
    ]


class Announcer(Protocol):
    """Tells the people concerned about committed events (the realtime hub): after commit, never before."""

    def announce(self, tenant_id: UUID, events: Sequence[Event]) -> None: ...


@asynccontextmanager
async def changing(db: Database, announcer: Announcer, tenant_id: UUID) -> AsyncIterator[tuple[Connection, EventBatch]]:
    """A tenant transaction for a change that gathers events: they are appended as its last statement and
    announced once it commits (never if it fails)."""
    async with tenant_tx(db, tenant_id) as conn:
        batch = EventBatch(tenant_id)
        yield conn, batch
        appended = await append(conn, batch)
    announcer.announce(tenant_id, appended)


class Unannounced:
    """For work done where nobody listens live (the command line, tests of the domain alone)."""

    def announce(self, tenant_id: UUID, events: Sequence[Event]) -> None:
        return None


_LAST_SEQ_SQL = "select coalesce((select last_seq from event_counters), 0)"


async def last_seq(conn: Connection) -> int:
    """The tenant's last committed seq (0 before its first event)."""
    return int(await conn.fetchval(_LAST_SEQ_SQL))


_EVENT_COLUMNS = "seq, type, conversation_id, audience, audience_queue_ids, audience_user_ids, payload, created_at"
_READ_SQL = f"select {_EVENT_COLUMNS} from events where seq > $1 and seq <= $2 order by seq limit $3"


async def read(conn: Connection, *, tenant_id: UUID, after: int, upto: int, limit: int) -> list[Event]:
    """The tenant's events with `after < seq <= upto`, in seq order, at most `limit` of them."""
    rows = await conn.fetch(_READ_SQL, after, upto, limit)
    return [
        Event(
            tenant_id,
            int(r["seq"]),
            r["type"],
            Audience(r["audience"], tuple(r["audience_queue_ids"]), tuple(r["audience_user_ids"])),
            r["conversation_id"],
            r["payload"],
            r["created_at"],
        )
        for r in rows
    ]


# The oldest seq still kept; past the last one when retention has removed them all.
_OLDEST_KEPT_SQL = """
select coalesce((select min(seq) from events), (select last_seq from event_counters) + 1, 1)
"""


async def oldest_kept(conn: Connection) -> int:
    """The smallest seq still in the log: a reader who last saw less than this minus one has lost events."""
    return int(await conn.fetchval(_OLDEST_KEPT_SQL))


# Retention removes a prefix of the log, never a hole: everything up to the newest event old enough to go.
_PRUNE_SQL = """
with cut as (select max(seq) as seq from events where created_at < now() - $1::interval)
delete from events where seq <= (select seq from cut)
"""


async def prune(conn: Connection, *, keep: timedelta) -> int:
    """Deletes the tenant's events older than `keep` (and any older seq); how many went."""
    status = await conn.execute(_PRUNE_SQL, keep)
    return int(status.split()[-1])
