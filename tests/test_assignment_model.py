"""Property: the assignment engine on the real database, through random sequences of a small team's work.

Each example makes a tenant of its own (2-3 queues of random priorities; 3-4 agents of random capacity, some
with per-queue overrides, in random queues) and runs a random sequence of arrivals, presence changes,
connections that open or lapse, and manual moves: an agent taking a waiting conversation, a supervisor
assigning with or without force, transfers to an agent or a queue, unassigns, closes and reopens, by the
supervisor, the agent who has the conversation, or any agent. A manual move must succeed exactly when its
rules allow it, and otherwise fail with the error they give. `AssignmentLoop.run_once` runs after every step,
and then:

1. the event log, replayed in seq order, gives every conversation the state the table shows, every move in
   it starts where the log left the conversation (no conversation ever had two owners), and it counts as
   many assignments as run_once says;
2. nobody was given a conversation at or over their capacity in its queue unless a supervisor forced it, so
   the loop never adds to an agent a supervisor filled; without forced ones nobody holds more than their
   largest capacity;
3. the loop gives only to eligible agents (online, connected, a member of the queue), and leaves none of
   them idle with room in a queue that waits;
4. the loop served the lines in order: nothing it assigned stood behind a conversation still waiting in the
   same queue and priority, nor behind a waiting one, in any queue, that the agent who got it could have taken;
5. it takes back from absent agents (offline, or gone past the grace and noticed) all they held when they
   left, and nothing else.

The tenant keeps the default settings: absent agents' conversations are requeued at once, priorities do not
rise with the wait, and nothing is re-routed for being unanswered or steered to a customer's last agent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal

from hypothesis import Phase, event, given, note, settings
from hypothesis import strategies as st

from fiv_console import events
from fiv_console.access import Viewer
from fiv_console.assignment import presence
from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.conversations import lifecycle as conversations
from fiv_console.conversations.lifecycle import Moved, MoveEvent
from fiv_console.db.pool import Connection, Database, create_database, tenant_tx
from fiv_console.errors import Conflict, DomainError, Forbidden, NotFound
from fiv_console.events import Unannounced
from fiv_console.routing import queues
from tests.api import make_tenant
from tests.assigning import new_agents
from tests.conftest import TestDatabase
from tests.webhooks import connect_number, new_phone_number_id

GRACE = timedelta(seconds=30)
MOVES = frozenset(
    {
        "conversation.assigned",
        "conversation.transferred",
        "conversation.unassigned",
        "conversation.closed",
        "conversation.reopened",
    }
)

Status = Literal["online", "away", "offline"]
# Whose hands a move is in: the supervisor, the agent who has the conversation (the supervisor when nobody
# has it), or an agent by number.
Actor = Literal["supervisor", "owner"] | int
# What a conversation is, as the table and the event payloads say: status, agent, queue.
State = tuple[str, uuid.UUID | None, uuid.UUID]


# The world and the steps. Numbers that pick an agent, queue or conversation are taken modulo how many there
# are when the step runs, so every drawn step means something, and shrinking keeps it meaningful.


@dataclass(frozen=True)
class AgentSpec:
    max_concurrent: int
    memberships: dict[int, int | None]  # queue number: the queue's override of their capacity (None: their own)
    status: Status
    connected: bool


@dataclass(frozen=True)
class Arrival:
    queue: int
    priority: int


@dataclass(frozen=True)
class World:
    queue_priorities: tuple[int, ...]
    agents: tuple[AgentSpec, ...]
    backlog: tuple[Arrival, ...]


@dataclass(frozen=True)
class Arrive:
    arrivals: tuple[Arrival, ...]


@dataclass(frozen=True)
class SetStatus:
    agent: int
    status: Status


@dataclass(frozen=True)
class Connect:
    agent: int


@dataclass(frozen=True)
class Lapse:
    """The agent's lease runs out (their last socket closed a grace period ago); `noticed`: the presence upkeep
    has swept since, so they are shown as gone."""

    agent: int
    noticed: bool


@dataclass(frozen=True)
class Take:
    agent: int
    conversation: int  # of the waiting ones


@dataclass(frozen=True)
class Assign:
    conversation: int
    agent: int
    force: bool


@dataclass(frozen=True)
class Transfer:
    actor: Actor
    conversation: int
    agent: int
    force: bool


@dataclass(frozen=True)
class Requeue:
    actor: Actor
    conversation: int
    queue: int


@dataclass(frozen=True)
class Unassign:
    conversation: int


@dataclass(frozen=True)
class Close:
    actor: Actor
    conversation: int


@dataclass(frozen=True)
class Reopen:
    actor: Actor
    conversation: int  # of the closed ones


Step = Arrive | SetStatus | Connect | Lapse | Take | Assign | Transfer | Requeue | Unassign | Close | Reopen

statuses = st.sampled_from(["online", "away", "offline"])
numbers = st.integers(0, 11)
arrivals = st.builds(Arrival, queue=numbers, priority=st.integers(0, 1))
actors = st.sampled_from(["supervisor", "owner"]) | numbers
arrive = st.builds(Arrive, st.lists(arrivals, min_size=1, max_size=4).map(tuple))
set_status = st.builds(SetStatus, numbers, statuses)
connect = st.builds(Connect, numbers)
lapse = st.builds(Lapse, numbers, st.booleans())
# Arrivals and presence changes are what the loop answers to: each comes up more often than any one move.
steps = st.one_of(
    arrive,
    arrive,
    arrive,
    set_status,
    set_status,
    connect,
    connect,
    lapse,
    lapse,
    st.builds(Take, numbers, numbers),
    st.builds(Assign, numbers, numbers, st.booleans()),
    st.builds(Transfer, actors, numbers, numbers, st.booleans()),
    st.builds(Requeue, actors, numbers, numbers),
    st.builds(Unassign, numbers),
    st.builds(Close, actors, numbers),
    st.builds(Reopen, actors, numbers),
)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    queue_count = draw(st.integers(2, 3))
    agent = st.builds(
        AgentSpec,
        max_concurrent=st.integers(1, 3),
        memberships=st.dictionaries(st.integers(0, queue_count - 1), st.none() | st.integers(1, 3)),
        status=statuses,
        connected=st.booleans(),
    )
    return World(
        queue_priorities=tuple(draw(st.lists(st.integers(-1, 1), min_size=queue_count, max_size=queue_count))),
        agents=tuple(draw(st.lists(agent, min_size=3, max_size=4))),
        backlog=tuple(draw(st.lists(arrivals, max_size=8))),
    )


# What the database holds, read between steps.


@dataclass(frozen=True)
class Conv:
    id: uuid.UUID
    status: str
    queue_id: uuid.UUID
    agent_id: uuid.UUID | None
    priority: int
    queue_priority: int
    enqueued_at: datetime
    assigned_at: datetime | None

    @property
    def state(self) -> State:
        return (self.status, self.agent_id, self.queue_id)

    @property
    def place(self) -> tuple[int, int, datetime, uuid.UUID]:
        """Its place in the loop's waiting order (assignment.policy.waiting_order)."""
        return (-self.queue_priority, -self.priority, self.enqueued_at, self.id)


@dataclass(frozen=True)
class Presence:
    status: str
    status_changed_at: datetime | None
    connected: bool  # what people were last told (the presence sweep flips it)
    connected_changed_at: datetime | None
    leased: bool  # a lease within the grace period: what the claim asks


@dataclass(frozen=True)
class Snapshot:
    conversations: dict[uuid.UUID, Conv]
    agents: dict[uuid.UUID, Presence]

    def load(self, agent_id: uuid.UUID) -> int:
        return sum(1 for c in self.conversations.values() if c.status == "assigned" and c.agent_id == agent_id)


_CONVERSATIONS_SQL = """
select c.id, c.status, c.queue_id, c.agent_id, c.priority, q.priority as queue_priority, c.enqueued_at, c.assigned_at
from conversations c join queues q on q.id = c.queue_id
"""
_AGENTS_SQL = f"""
select u.id, u.status, u.status_changed_at, u.connected, u.connected_changed_at,
       {presence.connected_condition("$1")} as leased
from users u where u.role = 'agent'
"""
_EVENTS_SQL = "select seq, type, conversation_id, payload from events where seq > $1 order by seq"
_CONTACT_SQL = "insert into contacts (tenant_id, wa_id) values ($1, $2) returning id"
# clock_timestamp, not now(): a burst arrives in one transaction, and its line must still have an order.
_ARRIVE_SQL = """
insert into conversations (tenant_id, channel_id, contact_id, queue_id, priority, enqueued_at)
values ($1, $2, $3, $4, $5, clock_timestamp()) returning id
"""
# Last seen a grace period and a microsecond ago: the lease lapses now, after everything it saw.
_LAPSE_SQL = "update agent_connections set seen_at = now() - $2::interval where user_id = $1"


@dataclass
class Replayed:
    """What the replayed events did: conversations given (to whom), and conversations put back unassigned."""

    given: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    unassigned: list[uuid.UUID] = field(default_factory=list)


@dataclass
class Team:
    """The tenant's fixed facts: its people, queues, memberships and capacities."""

    tenant_id: uuid.UUID
    supervisor: uuid.UUID
    agents: list[uuid.UUID]
    queues: list[uuid.UUID]
    channel_id: uuid.UUID
    own_capacity: dict[uuid.UUID, int]
    overrides: dict[tuple[uuid.UUID, uuid.UUID], int | None]  # (agent, queue) for each membership

    def member(self, agent_id: uuid.UUID, queue_id: uuid.UUID) -> bool:
        return (agent_id, queue_id) in self.overrides

    def capacity(self, agent_id: uuid.UUID, queue_id: uuid.UUID) -> int:
        """In the queue: its override, else their own (also for a queue they are not a member of)."""
        override = self.overrides.get((agent_id, queue_id))
        return override if override is not None else self.own_capacity[agent_id]

    def largest_capacity(self, agent_id: uuid.UUID) -> int:
        return max([self.own_capacity[agent_id], *(o or 0 for (a, _), o in self.overrides.items() if a == agent_id)])


# The rules of the manual moves (fiv_console/conversations/lifecycle.py), as the error each case must give.
Refusal = type[DomainError] | None


@dataclass(frozen=True)
class Move:
    what: str
    event: MoveEvent
    run: Callable[[Connection], Awaitable[Moved]]
    refusal: Refusal
    effect: State  # the conversation after it, when allowed
    forced: bool = False


def _sees(viewer: Viewer, c: Conv, team: Team) -> bool:
    if viewer.role != "agent":
        return True
    assert viewer.user_id is not None
    return c.agent_id == viewer.user_id or (c.status == "waiting" and team.member(viewer.user_id, c.queue_id))


def _out_of_sight(viewer: Viewer, c: Conv, team: Team) -> Refusal:
    """None when the viewer sees it; else taken by another agent of the viewer's queue (409), or not found."""
    if _sees(viewer, c, team):
        return None
    assert viewer.user_id is not None
    if c.status == "assigned" and c.agent_id != viewer.user_id and team.member(viewer.user_id, c.queue_id):
        return Conflict
    return NotFound


def _owner_or_staff(viewer: Viewer, c: Conv) -> Refusal:
    if c.status == "closed":
        return Conflict
    if viewer.role == "agent" and not (c.status == "assigned" and c.agent_id == viewer.user_id):
        return Forbidden
    return None


def _give(c: Conv, agent_id: uuid.UUID, *, force: bool, colleagues_only: bool, now: Snapshot, team: Team) -> Refusal:
    if colleagues_only and not team.member(agent_id, c.queue_id):
        return Conflict
    if not force and now.load(agent_id) >= team.capacity(agent_id, c.queue_id):
        return Conflict
    return None


def _assign_refusal(viewer: Viewer, c: Conv, agent_id: uuid.UUID, *, force: bool, now: Snapshot, team: Team) -> Refusal:
    if (unseen := _out_of_sight(viewer, c, team)) is not None:
        return unseen
    if c.status == "closed":
        return Conflict
    if c.state == ("assigned", agent_id, c.queue_id):
        return None  # already theirs: nothing moves
    return _give(c, agent_id, force=force, colleagues_only=False, now=now, team=team)


def _transfer_refusal(
    viewer: Viewer, c: Conv, agent_id: uuid.UUID, *, force: bool, now: Snapshot, team: Team
) -> Refusal:
    if force and viewer.role == "agent":
        return Forbidden
    if (unseen := _out_of_sight(viewer, c, team)) is not None:
        return unseen
    refusal = _owner_or_staff(viewer, c)
    if refusal is not None:
        return refusal
    if c.state == ("assigned", agent_id, c.queue_id):
        return Conflict
    return _give(c, agent_id, force=force, colleagues_only=viewer.role == "agent", now=now, team=team)


def _requeue_refusal(viewer: Viewer, c: Conv, queue_id: uuid.UUID, team: Team) -> Refusal:
    if (unseen := _out_of_sight(viewer, c, team)) is not None:
        return unseen
    refusal = _owner_or_staff(viewer, c)
    if refusal is None and c.state == ("waiting", None, queue_id):
        return Conflict
    return refusal


def _named(refusal: Refusal) -> str:
    return refusal.__name__ if refusal is not None else "success"


def _by_force(force: bool) -> str:
    return " by force" if force else ""


def _absent_since(agent: Presence) -> list[datetime]:
    """When the agent left, by choice (offline) or by lapse (shown as gone), if they are away that way now."""
    offline_since = agent.status_changed_at if agent.status == "offline" else None
    gone_since = agent.connected_changed_at if not agent.connected else None
    return [t for t in (offline_since, gone_since) if t is not None]


def _pick(items: list[Conv], number: int) -> Conv | None:
    return items[number % len(items)] if items else None


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


def _state(doc: dict[str, Any]) -> State:
    return (doc["status"], _uuid(doc["agent_id"]), uuid.UUID(doc["queue_id"]))


class Day:
    """One example's tenant, driven step by step, with the event log replayed as it grows."""

    def __init__(self, db: Database, team: Team) -> None:
        self.db = db
        self.team = team
        self.loop = AssignmentLoop(db, Unannounced(), grace=GRACE.total_seconds())
        self.instance_id = uuid.uuid4()  # the console instance the agents' sockets are on
        self.arrived: list[uuid.UUID] = []
        self.names: dict[uuid.UUID | None, str] = {None: "nobody", team.supervisor: "supervisor"}
        self.names.update({a: f"a{n}" for n, a in enumerate(team.agents)})
        self.names.update({q: f"q{n}" for n, q in enumerate(team.queues)})
        self.logged: dict[uuid.UUID, State] = {}  # each conversation as the replayed log has it
        self.forced: set[uuid.UUID] = set()  # assigned now by a supervisor's force
        self.seq = 0

    @classmethod
    async def begin(cls, db: Database, world: World) -> Day:
        people = await make_tenant(db, "Day")
        async with tenant_tx(db, people.id) as conn:
            queue_ids = [people.queue_id]
            for n in range(1, len(world.queue_priorities)):
                data = queues.QueueCreate(name=f"Queue {n}")
                queue_ids.append((await queues.create_queue(conn, tenant_id=people.id, data=data)).id)
            for queue_id, priority in zip(queue_ids, world.queue_priorities, strict=True):
                await conn.execute("update queues set priority = $2 where id = $1", queue_id, priority)
            agent_ids = [people.agent.id, people.other_agent.id]
            agent_ids += await new_agents(conn, people.id, len(world.agents) - len(agent_ids))
            # make_tenant's one membership makes way for the world's.
            await conn.execute("delete from queue_members where tenant_id = $1", people.id)
            overrides: dict[tuple[uuid.UUID, uuid.UUID], int | None] = {}
            for agent_id, spec in zip(agent_ids, world.agents, strict=True):
                await conn.execute("update users set max_concurrent = $2 where id = $1", agent_id, spec.max_concurrent)
                for number, override in spec.memberships.items():
                    overrides[(agent_id, queue_ids[number])] = override
                    await conn.execute(
                        "insert into queue_members (tenant_id, queue_id, user_id, max_concurrent_override) "
                        "values ($1, $2, $3, $4)",
                        people.id,
                        queue_ids[number],
                        agent_id,
                        override,
                    )
        channel_id = await connect_number(
            db, tenant_id=people.id, queue_id=people.queue_id, phone_number_id=new_phone_number_id()
        )
        team = Team(
            tenant_id=people.id,
            supervisor=people.supervisor.id,
            agents=agent_ids,
            queues=queue_ids,
            channel_id=channel_id,
            own_capacity={a: spec.max_concurrent for a, spec in zip(agent_ids, world.agents, strict=True)},
            overrides=overrides,
        )
        day = cls(db, team)
        async with events.changing(db, Unannounced(), people.id) as (conn, batch):
            for agent_id, spec in zip(agent_ids, world.agents, strict=True):
                await presence.set_status(conn, batch, user_id=agent_id, status=spec.status)
                if spec.connected:
                    await presence.socket_opened(conn, batch, user_id=agent_id, instance_id=day.instance_id)
        await day.replay(forced=False)
        return day

    # Reading.

    async def snapshot(self) -> Snapshot:
        async with tenant_tx(self.db, self.team.tenant_id) as conn:
            rows = await conn.fetch(_CONVERSATIONS_SQL)
            agents = await conn.fetch(_AGENTS_SQL, GRACE)
        return Snapshot(
            conversations={r["id"]: Conv(**dict(r)) for r in rows},
            agents={
                r["id"]: Presence(
                    r["status"], r["status_changed_at"], r["connected"], r["connected_changed_at"], r["leased"]
                )
                for r in agents
            },
        )

    async def replay(self, *, forced: bool) -> Replayed:
        """Replays the events appended since the last call, which are one step's (`forced`: a supervisor's
        forced move) or one run_once's. Checks each move against the log before it, and that nobody was given
        one at or over capacity unless forced.

        One claim's events list its conversations in id order, not in the order it gave them, so capacity is
        checked over the whole call: some order must give each conversation under its capacity, and the
        tightest is the smallest capacity first (within run_once, what absence takes back comes before)."""
        async with tenant_tx(self.db, self.team.tenant_id) as conn:
            rows = await conn.fetch(_EVENTS_SQL, self.seq)
        replayed = Replayed()
        gains: dict[uuid.UUID, list[tuple[int, uuid.UUID]]] = {}  # agent: (capacity, conversation) unforced
        for row in rows:
            assert row["seq"] == self.seq + 1, f"the event log skips from {self.seq} to {row['seq']}"
            self.seq = row["seq"]
            if row["type"] not in MOVES:
                continue
            conversation_id = row["conversation_id"]
            payload = row["payload"]
            was, now = self.logged[conversation_id], _state(payload["conversation"])
            assert _state(payload["from"]) == was, (
                f"{row['type']} #{row['seq']} of {self.name(conversation_id)} moves it from "
                f"{self.show(payload['from'])}, but the log had it {self.show(was)}"
            )
            self.logged[conversation_id] = now
            self.forced.discard(conversation_id)
            if row["type"] == "conversation.unassigned":
                replayed.unassigned.append(conversation_id)
            if row["type"] in ("conversation.assigned", "conversation.transferred") and now[0] == "assigned":
                agent_id = now[1]
                assert agent_id is not None
                replayed.given[conversation_id] = agent_id
                if forced:
                    self.forced.add(conversation_id)
                else:
                    gains.setdefault(agent_id, []).append((self.team.capacity(agent_id, now[2]), conversation_id))
        for agent_id, gained in gains.items():
            held = sum(1 for status, owner, _ in self.logged.values() if (status, owner) == ("assigned", agent_id))
            before = held - len(gained)
            for n, (capacity, conversation_id) in enumerate(sorted(gained)):
                assert before + n < capacity, (
                    f"{self.name(agent_id)} was given {[self.name(c) for _, c in gained]} while holding {before}: "
                    f"{self.name(conversation_id)} over their capacity of {capacity} in its queue"
                )
        return replayed

    def name(self, key: uuid.UUID | None) -> str:
        return self.names.get(key, str(key))

    def show(self, state: State | dict[str, Any]) -> str:
        status, agent_id, queue_id = state if isinstance(state, tuple) else _state(state)
        return f"{status} in {self.name(queue_id)} with {self.name(agent_id)}"

    # Acting.

    async def arrive(self, arrivals: tuple[Arrival, ...]) -> None:
        tenant_id = self.team.tenant_id
        async with tenant_tx(self.db, tenant_id) as conn:
            for arrival in arrivals:
                queue_id = self.team.queues[arrival.queue % len(self.team.queues)]
                contact_id = await conn.fetchval(_CONTACT_SQL, tenant_id, f"5511{len(self.arrived):09d}")
                conversation_id = await conn.fetchval(
                    _ARRIVE_SQL, tenant_id, self.team.channel_id, contact_id, queue_id, arrival.priority
                )
                self.names[conversation_id] = f"c{len(self.arrived)}"
                self.arrived.append(conversation_id)
                self.logged[conversation_id] = ("waiting", None, queue_id)
                note(f"  {self.name(conversation_id)} arrives in {self.name(queue_id)}, priority {arrival.priority}")

    def viewer(self, actor: Actor, c: Conv) -> Viewer:
        tenant_id = self.team.tenant_id
        if isinstance(actor, int):
            return Viewer(tenant_id=tenant_id, role="agent", user_id=self.team.agents[actor % len(self.team.agents)])
        if actor == "owner" and c.agent_id is not None:
            return Viewer(tenant_id=tenant_id, role="agent", user_id=c.agent_id)
        return Viewer(tenant_id=tenant_id, role="supervisor", user_id=self.team.supervisor)

    async def act(self, step: Step, now: Snapshot) -> None:
        if isinstance(step, Arrive):
            await self.arrive(step.arrivals)
        elif isinstance(step, SetStatus | Connect | Lapse):
            agent_id = self.team.agents[step.agent % len(self.team.agents)]
            async with events.changing(self.db, Unannounced(), self.team.tenant_id) as (conn, batch):
                if isinstance(step, SetStatus):
                    await presence.set_status(conn, batch, user_id=agent_id, status=step.status)
                elif isinstance(step, Connect):
                    await presence.socket_opened(conn, batch, user_id=agent_id, instance_id=self.instance_id)
                else:
                    await conn.execute(_LAPSE_SQL, agent_id, GRACE + timedelta(microseconds=1))
                    if step.noticed:
                        await presence.sweep(conn, batch, grace=GRACE)
            note(f"  {self.name(agent_id)}: {step}")
        else:
            move = self.move(step, now)
            if move is not None:
                await self.attempt(move)

    def move(self, step: Take | Assign | Transfer | Requeue | Unassign | Close | Reopen, now: Snapshot) -> Move | None:
        """The manual move a step asks for, with what its rules say must come of it (None: no conversation
        for it to pick)."""
        team = self.team
        everyone = [now.conversations[c] for c in self.arrived]
        if isinstance(step, Take):
            c = _pick([c for c in everyone if c.status == "waiting"], step.conversation)
        elif isinstance(step, Reopen):
            c = _pick([c for c in everyone if c.status == "closed"], step.conversation)
        else:
            c = _pick(everyone, step.conversation)
        if c is None:
            return None
        was = f"{self.name(c.id)} ({self.show(c.state)})"
        supervisor = Viewer(tenant_id=team.tenant_id, role="supervisor", user_id=team.supervisor)
        if isinstance(step, Take):
            agent_id = team.agents[step.agent % len(team.agents)]
            viewer = Viewer(tenant_id=team.tenant_id, role="agent", user_id=agent_id)
            return Move(
                f"{self.name(agent_id)} takes {was}",
                "conversation.assigned",
                partial(conversations.assign, viewer=viewer, conversation_id=c.id, agent_id=None, force=False),
                _assign_refusal(viewer, c, agent_id, force=False, now=now, team=team),
                ("assigned", agent_id, c.queue_id),
            )
        if isinstance(step, Assign):
            agent_id = team.agents[step.agent % len(team.agents)]
            return Move(
                f"supervisor assigns {was} to {self.name(agent_id)}{_by_force(step.force)}",
                "conversation.assigned",
                partial(
                    conversations.assign, viewer=supervisor, conversation_id=c.id, agent_id=agent_id, force=step.force
                ),
                _assign_refusal(supervisor, c, agent_id, force=step.force, now=now, team=team),
                ("assigned", agent_id, c.queue_id),
                forced=step.force,
            )
        if isinstance(step, Transfer):
            agent_id = team.agents[step.agent % len(team.agents)]
            viewer = self.viewer(step.actor, c)
            return Move(
                f"{self.name(viewer.user_id)} transfers {was} to {self.name(agent_id)}{_by_force(step.force)}",
                "conversation.transferred",
                partial(
                    conversations.transfer_to_agent,
                    viewer=viewer,
                    conversation_id=c.id,
                    agent_id=agent_id,
                    force=step.force,
                ),
                _transfer_refusal(viewer, c, agent_id, force=step.force, now=now, team=team),
                ("assigned", agent_id, c.queue_id),
                forced=step.force,
            )
        if isinstance(step, Requeue):
            queue_id = team.queues[step.queue % len(team.queues)]
            viewer = self.viewer(step.actor, c)
            return Move(
                f"{self.name(viewer.user_id)} transfers {was} to {self.name(queue_id)}",
                "conversation.transferred",
                partial(conversations.transfer_to_queue, viewer=viewer, conversation_id=c.id, queue_id=queue_id),
                _requeue_refusal(viewer, c, queue_id, team),
                ("waiting", None, queue_id),
            )
        if isinstance(step, Unassign):
            return Move(
                f"supervisor unassigns {was}",
                "conversation.unassigned",
                partial(conversations.unassign, viewer=supervisor, conversation_id=c.id),
                None if c.status == "assigned" else Conflict,
                ("waiting", None, c.queue_id),
            )
        viewer = self.viewer(step.actor, c)
        if isinstance(step, Close):
            return Move(
                f"{self.name(viewer.user_id)} closes {was}",
                "conversation.closed",
                partial(conversations.close, viewer=viewer, conversation_id=c.id, reason="done"),
                _owner_or_staff(viewer, c) if _sees(viewer, c, team) else _out_of_sight(viewer, c, team),
                ("closed", c.agent_id, c.queue_id),
            )
        return Move(
            f"{self.name(viewer.user_id)} reopens {was}",
            "conversation.reopened",
            partial(conversations.reopen, viewer=viewer, conversation_id=c.id),
            _out_of_sight(viewer, c, team),
            ("waiting", None, c.queue_id),
        )

    async def attempt(self, move: Move) -> None:
        """The move in its own transaction, its event appended as the API does: it must fail with the refusal
        its rules give, or succeed (none) and leave the conversation as they say."""
        refused: DomainError | None = None
        try:
            async with events.changing(self.db, Unannounced(), self.team.tenant_id) as (conn, batch):
                moved = await move.run(conn)
                conversations.announce_move(batch, move.event, moved)
        except DomainError as exc:
            refused = exc
        event(f"{move.event} {type(refused).__name__ if refused is not None else 'done'}")
        if refused is not None:
            note(f"  {move.what}: refused, {type(refused).__name__} ({refused})")
            assert type(refused) is move.refusal, f"{move.what}: refused; expected {_named(move.refusal)}"
            return
        note(f"  {move.what}: done")
        assert move.refusal is None, f"{move.what}: allowed; expected {_named(move.refusal)}"
        after = moved.conversation
        assert (after.status, after.agent_id, after.queue_id) == move.effect, (
            f"{move.what}: left it {self.show((after.status, after.agent_id, after.queue_id))}"
        )
        # Its event, replayed now: a supervisor's force (whether or not it was needed) is theirs to answer for.
        await self.replay(forced=move.forced)

    # The loop, and what must hold after it.

    async def settle(self) -> Snapshot:
        """run_once, its checks, and the tenant as it leaves it."""
        await self.replay(forced=False)
        before = await self.snapshot()
        assigned = await self.loop.run_once(self.team.tenant_id)
        run = await self.replay(forced=False)
        note(
            f"  run_once: takes back {[self.name(c) for c in run.unassigned]}, gives "
            f"{', '.join(f'{self.name(c)} to {self.name(a)}' for c, a in run.given.items()) or 'nothing'}"
        )
        assert assigned == len(run.given), f"run_once says {assigned} assigned; the log says {len(run.given)}"
        # Statistics (--hypothesis-show-statistics): how often the interesting cases come up.
        if len(run.given) > 1:
            event("run_once assigns several")
        if run.unassigned:
            event("run_once takes conversations back from an absent agent")
        for conversation_id in run.unassigned:
            c = before.conversations[conversation_id]
            assert c.agent_id is not None
            assert c.assigned_at is not None
            left = _absent_since(before.agents[c.agent_id])
            assert any(c.assigned_at <= t for t in left), (
                f"run_once took {self.name(c.id)} back from {self.name(c.agent_id)}, who is present or had it "
                "only after they left"
            )
        after = await self.snapshot()
        self.check(after, run.given)
        return after

    def check(self, now: Snapshot, given: dict[uuid.UUID, uuid.UUID]) -> None:
        team, name = self.team, self.name
        eligible = [a for a in team.agents if now.agents[a].status == "online" and now.agents[a].leased]
        for conversation_id, agent_id in given.items():
            queue_id = now.conversations[conversation_id].queue_id
            assert agent_id in eligible, f"run_once gave {name(conversation_id)} to {name(agent_id)}, who is not there"
            assert team.member(agent_id, queue_id), (
                f"run_once gave {name(conversation_id)} to {name(agent_id)}, not a member of {name(queue_id)}"
            )
        for c in now.conversations.values():
            assert self.logged[c.id] == c.state, (
                f"{name(c.id)} is {self.show(c.state)}; the event log says {self.show(self.logged[c.id])}"
            )
        for agent_id in team.agents:
            held = [c.id for c in now.conversations.values() if c.state[:2] == ("assigned", agent_id)]
            unforced = [c for c in held if c not in self.forced]
            if len(held) > team.largest_capacity(agent_id):
                event("an agent over capacity by force")
            assert len(unforced) <= team.largest_capacity(agent_id), (
                f"{name(agent_id)} holds {[name(c) for c in unforced]} unforced, "
                f"over their largest capacity {team.largest_capacity(agent_id)}"
            )
        for w in (c for c in now.conversations.values() if c.status == "waiting"):
            for agent_id in (a for a in eligible if team.member(a, w.queue_id)):
                capacity, load = team.capacity(agent_id, w.queue_id), now.load(agent_id)
                assert load >= capacity, (
                    f"{name(agent_id)} sits idle with {load} of {capacity} in {name(w.queue_id)} "
                    f"while {name(w.id)} waits there"
                )
                behind = [c for c, a in given.items() if a == agent_id and now.conversations[c].place > w.place]
                assert load - len(behind) >= capacity, (
                    f"{name(agent_id)} was given {[name(c) for c in behind]}, behind {name(w.id)} in the line, "
                    f"while {name(w.id)} (still waiting) was within their reach"
                )
            for x in (now.conversations[c] for c in given):
                if (x.queue_id, x.priority) == (w.queue_id, w.priority):
                    assert (x.enqueued_at, x.id) < (w.enqueued_at, w.id), (
                        f"{name(x.id)} was assigned before {name(w.id)}, older in the same queue and priority"
                    )
        for c in now.conversations.values():
            if c.status != "assigned":
                continue
            assert c.agent_id is not None
            assert c.assigned_at is not None
            for left in _absent_since(now.agents[c.agent_id]):
                assert c.assigned_at > left, (
                    f"{name(c.agent_id)}, absent since {left}, still holds {name(c.id)} assigned at {c.assigned_at}"
                )


async def _live(url: str, world: World, day_steps: list[Step]) -> None:
    db = await create_database(url, min_size=1, max_size=2, acquire_timeout=5, command_timeout=30)
    try:
        day = await Day.begin(db, world)
        note(f"{world}: its queues are q0, q1, ... and its agents a0, a1, ... in this order")
        await day.arrive(world.backlog)
        now = await day.settle()
        for step in day_steps:
            note(f"{step}")
            await day.act(step, now)
            now = await day.settle()
    finally:
        await db.pool.close()


# No shrinking: every example is a whole day of a tenant on the database, and shrinking one takes minutes,
# past the suite's timeout. A failure is reported as found, with its day's trace (`note`): each step and what
# came of it. To minimise one, rerun with its --hypothesis-seed and Phase.shrink added.
@settings(max_examples=50, deadline=None, database=None, phases=[Phase.explicit, Phase.generate])
@given(world=worlds(), day_steps=st.lists(steps, min_size=12, max_size=40))
def test_random_days_keep_one_owner_capacity_no_idle_agent_and_line_order(
    database: TestDatabase, world: World, day_steps: list[Step]
) -> None:
    asyncio.run(_live(database.app_url, world, day_steps))
