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

import heapq
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
    """(conversation, agent) pairs to assign, in waiting order.

    Each queue keeps a heap of its agents with room, by (open conversations, recency): choosing is a pop, not
    a scan of every agent (a claim may weigh 100 conversations against hundreds of agents). An agent given a
    conversation is pushed again with their new standing; entries that no longer match it are dropped as
    they surface.
    """
    by_id = {c.agent_id: c for c in candidates}
    load = {c.agent_id: c.open_count for c in candidates}
    # Order of last assignment: never assigned first, then the longest ago; each new assignment goes last.
    recency = {c.agent_id: rank for rank, c in enumerate(sorted(candidates, key=_assigned_longest_ago))}
    next_rank = len(recency)
    serving: dict[UUID, set[UUID]] = {}
    with_room: dict[UUID, list[tuple[int, int, UUID]]] = {}

    def has_room(agent_id: UUID, queue_id: UUID) -> bool:
        return load[agent_id] < by_id[agent_id].capacity[queue_id]

    def push(agent_id: UUID) -> None:
        for queue_id in by_id[agent_id].capacity:
            if has_room(agent_id, queue_id):
                heapq.heappush(with_room.setdefault(queue_id, []), (load[agent_id], recency[agent_id], agent_id))

    for c in candidates:
        for queue_id in c.capacity:
            serving.setdefault(queue_id, set()).add(c.agent_id)
        push(c.agent_id)

    def first_with_room(queue_id: UUID, avoid: UUID | None) -> UUID | None:
        heap, set_aside, found = with_room.get(queue_id, []), [], None
        while heap:
            standing, rank, agent_id = heap[0]
            if (standing, rank) != (load[agent_id], recency[agent_id]) or not has_room(agent_id, queue_id):
                heapq.heappop(heap)  # stale: the agent was pushed again with their new standing, or is full
            elif agent_id == avoid:
                set_aside.append(heapq.heappop(heap))
            else:
                found = agent_id
                break
        for entry in set_aside:
            heapq.heappush(heap, entry)
        return found

    pairs: list[tuple[UUID, UUID]] = []
    for conversation in sorted(waiting, key=waiting_order):
        queue_id, passed_over = conversation.queue_id, conversation.passed_over_agent_id
        members = serving.get(queue_id, set())
        others = len(members) - (passed_over in members)
        avoid = passed_over if others > 0 else None
        preferred = conversation.preferred_agent_id
        if preferred in members and preferred != avoid and has_room(preferred, queue_id):
            chosen: UUID | None = preferred
        else:
            chosen = first_with_room(queue_id, avoid)
        if chosen is None:
            continue
        pairs.append((conversation.conversation_id, chosen))
        load[chosen] += 1
        recency[chosen] = next_rank
        next_rank += 1
        push(chosen)
    return pairs
