"""Who gets which waiting conversation: a pure function, so the rules can be tested apart from SQL.

Waiting order: the queue's priority, then the conversation's, then the longest waiting (then the id, so the
order is total). For each conversation in that order, the eligible agents are the members of its queue
under their capacity there (the queue's override, else their own); among them, the fewest open
conversations, then the longest since their last assignment (never assigned first). Whoever is not
eligible for one conversation may still be for the next: a full queue does not block the others.

Two per-conversation twists: the agent of the customer's last conversation goes first when eligible (the
tenant's "same agent as last time"), and the agent it was re-routed away from for leaving it unanswered is
not eligible for it while another agent of its queue is available (even one without room now: it waits for
them); if nobody else is, it may go back to them rather than wait for nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Waiting:
    conversation_id: UUID
    queue_id: UUID
    queue_priority: int
    priority: int
    enqueued_at: datetime
    preferred_agent_id: UUID | None = None
    passed_over_agent_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """An agent who may take conversations now (online, connected, enabled), locked for this claim."""

    agent_id: UUID
    open_count: int
    # The agent's capacity in each of their queues (the queue's override, else their own).
    capacity: dict[UUID, int] = field(default_factory=dict)
    last_assigned_at: datetime | None = None


def waiting_order(conversation: Waiting) -> tuple[int, int, datetime, UUID]:
    return (
        -conversation.queue_priority,
        -conversation.priority,
        conversation.enqueued_at,
        conversation.conversation_id,
    )


def _assigned_longest_ago(candidate: Candidate) -> tuple[bool, datetime, UUID]:
    return (candidate.last_assigned_at is not None, candidate.last_assigned_at or datetime.min, candidate.agent_id)


def plan(waiting: Sequence[Waiting], candidates: Sequence[Candidate]) -> list[tuple[UUID, UUID]]:
    """(conversation, agent) pairs to assign, in waiting order."""
    load = {c.agent_id: c.open_count for c in candidates}
    # Order of last assignment: never assigned first, then the longest ago; each new assignment goes last.
    recency = {c.agent_id: rank for rank, c in enumerate(sorted(candidates, key=_assigned_longest_ago))}
    next_rank = len(recency)
    pairs: list[tuple[UUID, UUID]] = []
    for conversation in sorted(waiting, key=waiting_order):
        serving = [c for c in candidates if conversation.queue_id in c.capacity]
        others = [c for c in serving if c.agent_id != conversation.passed_over_agent_id]
        eligible = [c for c in (others or serving) if load[c.agent_id] < c.capacity[conversation.queue_id]]
        if not eligible:
            continue
        preferred = [c for c in eligible if c.agent_id == conversation.preferred_agent_id]
        chosen = min(preferred or eligible, key=lambda c: (load[c.agent_id], recency[c.agent_id], c.agent_id))
        pairs.append((conversation.conversation_id, chosen.agent_id))
        load[chosen.agent_id] += 1
        recency[chosen.agent_id] = next_rank
        next_rank += 1
    return pairs
