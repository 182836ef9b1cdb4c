"""The assignment race (issue #6): three instances, each with its own pool and
assignment loop, drain a burst of 500 conversations over 20 agents of capacity 3, while agents close what
they are given and staff assign waiting conversations by hand. The tenant's event log is then replayed to
show exactly one owner each, no agent ever over capacity, the oldest waiting taken first, and nothing stuck."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import pytest

from fiv_console import events
from fiv_console.access import Viewer
from fiv_console.assignment import loop as assignment_loop
from fiv_console.assignment import presence
from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.conversations import lifecycle as conversations
from fiv_console.db.pool import Database, create_database, tenant_tx
from fiv_console.errors import Conflict, NotFound
from fiv_console.events import Event
from tests.api import Person, TenantPeople
from tests.assigning import available, channel, conversations_waiting, new_agents
from tests.conftest import TestDatabase

CONVERSATIONS = 500
AGENTS = 20
CAPACITY = 3  # what tests.assigning.available() gives every agent
# Seconds an agent keeps a conversation before closing it: longer than a claim takes, so the loops' drains
# end and every later assignment waits on a wake-up.
HOLD = (0.1, 0.9)
GRACE = 300.0  # presence grace: the agents' leases outlive any run
# Longer than any claim takes, shorter than the sweep: no claim for this long while an agent has room and
# conversations wait means the wake-ups failed.
STALL_AFTER = 1.0
DEADLINE = 60.0
# The events that move a conversation; the log's others (a service-level mark, say) change no owner.
MOVES = frozenset(
    {
        "conversation.assigned",
        "conversation.closed",
        "conversation.unassigned",
        "conversation.transferred",
        "conversation.reopened",
    }
)


class _Taken(Exception):
    """A staff member meant to assign a waiting conversation, and it was no longer waiting once locked."""


@dataclass
class Race:
    """The people and the three instances, and what the test must remember of the run."""

    tenant: TenantPeople
    instances: list[Instance] = field(default_factory=list)
    # Conversations staff assigned, with the last seq committed before they locked it.
    manual: dict[UUID, int] = field(default_factory=dict)
    # Failed manual attempts: (conversation, last seq before locking it, last seq once the lock was gone).
    failed: list[tuple[UUID, int, int]] = field(default_factory=list)
    stalls: list[str] = field(default_factory=list)
    # What staff are assigning right now, and when a loop last assigned anything.
    staffing: set[UUID] = field(default_factory=set)
    claimed_at: float = field(default_factory=time.monotonic)
    closed: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    work: asyncio.TaskGroup = field(default_factory=asyncio.TaskGroup)

    def delivered(self, announced: Sequence[Event]) -> None:
        """What the bus does: an assignment reaches its agent's console, whichever instance committed it."""
        for event in announced:
            if event.type == "conversation.assigned":
                assert event.conversation_id is not None
                if event.conversation_id not in self.staffing:
                    self.claimed_at = time.monotonic()
                agent_id = UUID(event.payload["conversation"]["agent_id"])
                self.work.create_task(self._serve(event.conversation_id, agent_id))

    async def _serve(self, conversation_id: UUID, agent_id: UUID) -> None:
        """The agent answers for a while and closes it, through any instance."""
        await asyncio.sleep(random.uniform(*HOLD))
        instance = random.choice(self.instances)
        viewer = Viewer(tenant_id=self.tenant.id, role="agent", user_id=agent_id)
        async with events.changing(instance.db, instance, self.tenant.id) as (conn, batch):
            moved = await conversations.close(conn, viewer=viewer, conversation_id=conversation_id, reason="done")
            conversations.announce_move(batch, "conversation.closed", moved)
        self.closed += 1
        if self.closed == CONVERSATIONS:
            self.done.set()

    async def arrive(self, agent_id: UUID) -> None:
        """The agent comes online on some instance, soon after the burst: they get the oldest at once."""
        await asyncio.sleep(random.uniform(0, 0.3))
        instance = random.choice(self.instances)
        async with events.changing(instance.db, instance, self.tenant.id) as (conn, batch):
            await presence.set_status(conn, batch, user_id=agent_id, status="online")

    async def staff(self, person: Person) -> None:
        """Assigns waiting conversations to random agents with room, racing the loops for both: half the time
        the oldest waiting (the one the next claim takes), else any."""
        viewer = Viewer(tenant_id=self.tenant.id, role=person.role, user_id=person.id)
        while not self.done.is_set():
            await asyncio.sleep(random.uniform(0, 0.01))
            instance = random.choice(self.instances)
            async with tenant_tx(instance.db, self.tenant.id) as conn:
                waiting = [
                    r["id"]
                    for r in await conn.fetch(
                        "select id from conversations where status = 'waiting' order by enqueued_at"
                    )
                ]
                agents = [r["id"] for r in await conn.fetch("select id from users where role = 'agent'")]
                load = Counter(
                    r["agent_id"]
                    for r in await conn.fetch("select agent_id from conversations where status = 'assigned'")
                )
            if not waiting:
                continue
            conversation_id = waiting[0] if random.random() < 0.5 else random.choice(waiting)
            agent_id = random.choice([a for a in agents if load[a] < CAPACITY] or agents)
            self.staffing.add(conversation_id)
            try:
                async with events.changing(instance.db, instance, self.tenant.id) as (conn, batch):
                    before = await events.last_seq(conn)
                    moved = await conversations.assign(
                        conn, viewer=viewer, conversation_id=conversation_id, agent_id=agent_id, force=False
                    )
                    # Staff may reassign; this one meant a waiting conversation, and undoes anything else.
                    if moved.from_status != "waiting":
                        raise _Taken
                    conversations.announce_move(batch, "conversation.assigned", moved)
            except (Conflict, NotFound, _Taken):
                async with tenant_tx(instance.db, self.tenant.id) as conn:
                    self.failed.append((conversation_id, before, await events.last_seq(conn)))
            else:
                self.manual[conversation_id] = before
            finally:
                self.staffing.discard(conversation_id)

    async def watch(self, db: Database) -> None:
        """Records a stall (the test fails on it) and sweeps, so the run goes on, when no loop assigns anything
        for STALL_AFTER while agents have room and conversations wait: a freed place is taken at once."""
        room_since: float | None = None
        while not self.done.is_set():
            await asyncio.sleep(0.05)
            async with tenant_tx(db, self.tenant.id) as conn:
                row = await conn.fetchrow(
                    "select count(*) filter (where status = 'waiting') as waiting, "
                    "count(*) filter (where status = 'assigned') as assigned from conversations"
                )
            assert row is not None
            now = time.monotonic()
            if not (row["waiting"] and row["assigned"] < AGENTS * CAPACITY):
                room_since = None
                continue
            room_since = room_since or now
            if now - max(room_since, self.claimed_at) > STALL_AFTER:
                self.stalls.append(
                    f"{row['waiting']} waiting, {row['assigned']} assigned, no claim for {now - self.claimed_at:.1f}s"
                )
                await self.instances[0].loop.run_once(self.tenant.id)  # the sweep that would come later
                room_since = None


class Instance:
    """One server instance: its pool and its loop, woken by this instance's own commits (as the hub does)."""

    def __init__(self, db: Database, race: Race) -> None:
        self.db = db
        self.race = race
        self.loop = AssignmentLoop(db, self, grace=GRACE)

    def announce(self, tenant_id: UUID, announced: Sequence[Event]) -> None:
        self.race.delivered(announced)
        self.loop.heard(tenant_id, announced)


async def _agents(db: Database, tenant: TenantPeople) -> list[UUID]:
    """The tenant's two agents and 18 more, all members of the queue and connected, not yet online."""
    made = [tenant.agent.id, tenant.other_agent.id]
    async with tenant_tx(db, tenant.id) as conn:
        made += await new_agents(conn, tenant.id, AGENTS - len(made))
    await available(db, tenant, *made)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set status = 'offline' where id = any($1::uuid[])", made)
    return made


async def _drive(race: Race, agents: list[UUID], staff: list[Person], db: Database) -> None:
    async with race.work:
        loops = [race.work.create_task(instance.loop.run()) for instance in race.instances]
        for agent_id in agents:
            race.work.create_task(race.arrive(agent_id))
        for person in staff:
            race.work.create_task(race.staff(person))
        race.work.create_task(race.watch(db))
        await race.done.wait()
        for task in loops:
            task.cancel()


@dataclass
class Replay:
    """The log replayed in seq order, and everything found wrong on the way."""

    problems: list[str] = field(default_factory=list)
    owner: dict[UUID, UUID] = field(default_factory=dict)
    closed_by: dict[UUID, UUID] = field(default_factory=dict)
    peak: int = 0
    claims: int = 0
    # Claims that did not take the oldest waiting: (seq, how many they took, how many older ones they passed
    # over, how many places down the line the youngest they took stood).
    out_of_order: list[tuple[int, int, int, int]] = field(default_factory=list)


def _replay(log: list[asyncpg.Record], line: list[UUID], race: Race) -> Replay:
    found = Replay()
    place = {c: n for n, c in enumerate(line)}
    # One transaction's events share its xmin: a claim's assignments are judged together.
    transactions = [list(group) for _, group in itertools.groupby(log, key=lambda e: e["tx"])]
    claims = {
        t[0]["seq"]: [e["conversation_id"] for e in t]
        for t in transactions
        if t[0]["type"] == "conversation.assigned" and t[0]["conversation_id"] not in race.manual
    }
    # A claim rightly skips what staff hold locked (SKIP LOCKED): from the last seq before they locked it to
    # their own event; or, for an attempt that failed, to the next claim's commit once it let go, since that
    # claim may have read the line while the lock was still held (claims take turns: one at a time).
    manual_seq = {
        e["conversation_id"]: e["seq"]
        for t in transactions
        for e in t
        if e["type"] == "conversation.assigned" and e["conversation_id"] in race.manual
    }
    held = [(c, after, manual_seq[c] - 1) for c, after in race.manual.items()]
    for c, after, released in race.failed:
        held.append((c, after, min((s for s in claims if s > released), default=released)))
    waiting = set(line)
    load: Counter[UUID] = Counter()
    for transaction in transactions:
        seq = transaction[0]["seq"]
        claimed = claims.get(seq)
        if claimed:
            found.claims += 1
            excused = {c for c, after, upto in held if after < seq <= upto} - set(claimed)
            open_line = sorted(waiting - excused, key=place.__getitem__)
            youngest = max(claimed, key=place.__getitem__)
            passed = [c for c in open_line if place[c] < place[youngest] and c not in claimed]
            if passed:
                depth = open_line.index(youngest) - (len(claimed) - 1)
                found.out_of_order.append((seq, len(claimed), len(passed), depth))
        for event in transaction:
            _apply(found, event, waiting, load)
    return found


def _apply(found: Replay, event: asyncpg.Record, waiting: set[UUID], load: Counter[UUID]) -> None:
    conversation_id, seq = event["conversation_id"], event["seq"]
    after = event["payload"]["conversation"]
    agent_id = UUID(after["agent_id"]) if after["agent_id"] else None
    if event["type"] == "conversation.assigned":
        if conversation_id not in waiting or agent_id is None or event["payload"]["from"]["status"] != "waiting":
            found.problems.append(f"seq {seq}: {conversation_id} assigned again, or not from waiting")
            return
        waiting.remove(conversation_id)
        found.owner[conversation_id] = agent_id
        load[agent_id] += 1
        found.peak = max(found.peak, load[agent_id])
        if load[agent_id] > CAPACITY:
            found.problems.append(f"seq {seq}: {agent_id} holds {load[agent_id]}")
    elif event["type"] == "conversation.closed":
        if agent_id is None or found.owner.get(conversation_id) != agent_id or conversation_id in found.closed_by:
            found.problems.append(f"seq {seq}: {conversation_id} closed by {agent_id}, not its one owner")
            return
        found.closed_by[conversation_id] = agent_id
        load[agent_id] -= 1
    else:
        found.problems.append(f"seq {seq}: unexpected {event['type']} of {conversation_id}")


async def test_three_instances_drain_a_burst_with_manual_assigns_one_owner_each_oldest_first(
    database: TestDatabase, db: Database, tenant: TenantPeople, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only wake-ups may assign here: a place freed must be taken at once, not by the sweep every few seconds.
    monkeypatch.setattr(assignment_loop, "SWEEP_INTERVAL", 3600.0)
    agents = await _agents(db, tenant)
    line = await conversations_waiting(db, tenant, await channel(db, tenant), CONVERSATIONS)  # oldest first
    race = Race(tenant)
    pools = [
        await create_database(database.app_url, min_size=2, max_size=8, acquire_timeout=20, command_timeout=30)
        for _ in range(3)
    ]
    started = time.monotonic()
    try:
        race.instances = [Instance(pool, race) for pool in pools]
        async with asyncio.timeout(DEADLINE):
            await _drive(race, agents, [tenant.supervisor, tenant.admin], db)
    except TimeoutError:
        pytest.fail(f"{race.closed} of {CONVERSATIONS} closed after {DEADLINE}s; stalls: {race.stalls}")
    finally:
        for pool in pools:
            await pool.pool.close()
    took = time.monotonic() - started

    async with tenant_tx(db, tenant.id) as conn:
        log = await conn.fetch("select seq, type, conversation_id, payload, xmin::text as tx from events order by seq")
        final = {r["id"]: (r["status"], r["agent_id"]) for r in await conn.fetch("select * from conversations")}
    found = _replay([e for e in log if e["type"] in MOVES], line, race)

    # 1. Exactly one owner each: assigned once, from waiting, closed by that same agent; the table agrees.
    assert found.problems == []
    assert set(found.owner) == set(line) == set(found.closed_by)
    assert final == {c: ("closed", found.owner[c]) for c in line}
    assert race.manual, "staff never won a conversation: the race with manual assigns did not happen"
    # 2. Capacity never exceeded. Replaying in seq order replays the committed states in order: a tenant's
    # seqs are taken from its event_counters row by the statement that inserts the events, the transaction's
    # last, and the row stays locked until commit (fiv_console/events.py), so seq order is the tenant's
    # commit order, for every agent's assignments and closes alike. (Manual assigns and claims also hold the
    # agent's row until commit, so two assignments to one agent are counted one after the other; a close
    # takes only the conversation's lock and can only lower the count.)
    assert found.peak == CAPACITY
    # 4. Nothing stuck: no wait for the sweep, everything assigned and closed, nothing left waiting.
    assert race.stalls == []
    assert all(status == "closed" for status, _ in final.values())
    # 3. Oldest first: each claim took the longest waiting at its commit, but those staff were taking then.
    assert found.out_of_order == [], (
        f"{len(found.out_of_order)} of {found.claims} claims passed over older conversations "
        f"(seq, taken, passed over, places down the line): {found.out_of_order[:20]}; took {took:.1f}s"
    )
