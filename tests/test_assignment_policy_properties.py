"""Properties of the assignment policy over random queues, agents and waiting lines (hypothesis)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from fiv_console.assignment.policy import Candidate, Waiting, plan, waiting_order

QUEUES = [uuid.UUID(int=n + 1) for n in range(3)]
T0 = datetime(2026, 11, 25, tzinfo=UTC)

NOBODY: st.SearchStrategy[uuid.UUID | None] = st.none()


def waiting_lines(someone: st.SearchStrategy[uuid.UUID | None] = NOBODY) -> st.SearchStrategy[list[Waiting]]:
    """Up to 30 waiting conversations; `someone` draws their preferred and passed-over agents."""
    return st.lists(
        st.builds(
            Waiting,
            conversation_id=st.uuids(),
            queue_id=st.sampled_from(QUEUES),
            queue_priority=st.integers(-2, 2),
            priority=st.integers(-2, 2),
            enqueued_at=st.integers(0, 1000).map(lambda s: T0 + timedelta(seconds=s)),
            preferred_agent_id=someone,
            passed_over_agent_id=someone,
        ),
        max_size=30,
        unique_by=lambda w: w.conversation_id,
    )


def agent_lists(agent_ids: st.SearchStrategy[uuid.UUID], max_size: int) -> st.SearchStrategy[list[Candidate]]:
    return st.lists(
        st.builds(
            Candidate,
            agent_id=agent_ids,
            open_count=st.integers(0, 4),
            capacity=st.dictionaries(st.sampled_from(QUEUES), st.integers(1, 4), max_size=3),
            last_assigned_at=st.none() | st.integers(0, 1000).map(lambda s: T0 + timedelta(seconds=s)),
        ),
        max_size=max_size,
        unique_by=lambda c: c.agent_id,
    )


@settings(max_examples=300, deadline=None)
@given(waiting=waiting_lines(), agents=agent_lists(st.uuids(), max_size=8))
def test_no_overfill_no_repeat_no_idle_agent_and_first_come_first_served(
    waiting: list[Waiting], agents: list[Candidate]
) -> None:
    pairs = plan(waiting, agents)
    by_conversation = {w.conversation_id: w for w in waiting}
    by_agent = {a.agent_id: a for a in agents}
    assigned = dict(pairs)
    assert len(assigned) == len(pairs), "a conversation given twice"

    load = Counter({a.agent_id: a.open_count for a in agents})
    for conversation_id, agent_id in pairs:
        queue_id = by_conversation[conversation_id].queue_id
        load[agent_id] += 1
        assert load[agent_id] <= by_agent[agent_id].capacity[queue_id], "an agent over capacity"

    for left in (w for w in waiting if w.conversation_id not in assigned):
        # Nobody who could have taken it still has room: no eligible agent idles while it waits.
        assert all(load[a.agent_id] >= a.capacity[left.queue_id] for a in agents if left.queue_id in a.capacity), (
            "an eligible agent left idle"
        )
        # Nothing after it in its own queue's line was served before it.
        for other_id in assigned:
            other = by_conversation[other_id]
            if other.queue_id == left.queue_id:
                assert waiting_order(other) < waiting_order(left), "served out of order"


def _plan_by_scanning(waiting: list[Waiting], agents: list[Candidate]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The rules written the plain way, scanning every agent for every conversation: what `plan` must do."""
    load = {a.agent_id: a.open_count for a in agents}
    never_first = sorted(
        agents, key=lambda a: (a.last_assigned_at is not None, a.last_assigned_at or datetime.min, a.agent_id)
    )
    recency = {a.agent_id: rank for rank, a in enumerate(never_first)}
    pairs = []
    for conversation in sorted(waiting, key=waiting_order):
        serving = [a for a in agents if conversation.queue_id in a.capacity]
        others = [a for a in serving if a.agent_id != conversation.passed_over_agent_id]
        eligible = [a for a in (others or serving) if load[a.agent_id] < a.capacity[conversation.queue_id]]
        if not eligible:
            continue
        preferred = [a for a in eligible if a.agent_id == conversation.preferred_agent_id]
        chosen = min(preferred or eligible, key=lambda a: (load[a.agent_id], recency[a.agent_id]))
        pairs.append((conversation.conversation_id, chosen.agent_id))
        load[chosen.agent_id] += 1
        recency[chosen.agent_id] = len(recency) + len(pairs)
    return pairs


AGENT_IDS = [uuid.UUID(int=100 + n) for n in range(6)]


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_the_plan_is_what_scanning_every_agent_would_choose(data: st.DataObject) -> None:
    agents = data.draw(agent_lists(st.sampled_from(AGENT_IDS), max_size=6))
    waiting = data.draw(waiting_lines(someone=st.none() | st.sampled_from(AGENT_IDS)))
    assert plan(waiting, agents) == _plan_by_scanning(waiting, agents)
