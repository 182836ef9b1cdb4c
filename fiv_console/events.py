"""The event log: every change a person must see live, appended in the transaction that makes the change.

An event names who may receive it (`Audience`): the tenant's supervisors and admins only, a queue's agents
(supervisors and admins too), one agent (and supervisors and admins), or everyone in the tenant.

Each tenant's events carry `seq` 1, 2, 3, ... with no gaps, in commit order. The seqs come from the
tenant's `event_counters` row, taken by the same statement that inserts the events, which must be the
transaction's last statement: the row lock then lasts only for the commit itself, and a transaction that
takes a seq commits before the next one can take another. So a reader of "events after N" never misses
an event that commits later with a smaller seq. The price is that one tenant's event-producing commits
are serialized (docs/benchmarks.md measures what that allows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from fiv_console.db.pool import Connection

AudienceKind = Literal["tenant", "supervisors", "queue", "agent"]
EventType = Literal[
    "conversation.created",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.closed",
    "conversation.updated",
    "message.created",
    "message.status",
    "note.created",
    "agent.presence",
    "queue.stats",
]


@dataclass(frozen=True, slots=True)
class Audience:
    kind: AudienceKind
    id: UUID | None = None

    @classmethod
    def queue(cls, queue_id: UUID) -> Audience:
        return cls("queue", queue_id)

    @classmethod
    def agent(cls, agent_id: UUID) -> Audience:
        return cls("agent", agent_id)


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
insert into events (tenant_id, seq, type, conversation_id, audience, audience_id, payload)
select $1, counter.last_seq - $2 + e.ord, e.doc->>'type', (e.doc->>'conversation_id')::uuid,
       e.doc->>'audience', (e.doc->>'audience_id')::uuid, e.doc->'payload'
from counter, jsonb_array_elements($3::jsonb) with ordinality as e(doc, ord)
returning seq
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
            "audience_id": str(event.audience.id) if event.audience.id else None,
            "payload": event.payload,
        }
        for event in batch.pending
    ]
    rows = await conn.fetch(_APPEND_SQL, batch.tenant_id, len(documents), documents)
    seqs = sorted(int(r["seq"]) for r in rows)
    return [
        Event(batch.tenant_id, seq, event.type, event.audience, event.conversation_id, event.payload)
        for seq, event in zip(seqs, batch.pending, strict=True)
    ]


def conversation_audience(*, queue_id: UUID, agent_id: UUID | None) -> Audience:
    """Who follows a conversation: its agent once it has one, else the agents of the queue it waits in."""
    return Audience.agent(agent_id) if agent_id is not None else Audience.queue(queue_id)
