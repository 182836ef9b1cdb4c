"""The assignment engine: the pure policy, claims against the real database, concurrent claimers on their
own pools, and the loop inside a running server."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer

from fiv_console import events
from fiv_console.access import Audience, Viewer
from fiv_console.assignment import loop as assignment_loop
from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.assignment.policy import Candidate, Waiting, plan
from fiv_console.assignment.sla import mark_breaches
from fiv_console.conversations import lifecycle as conversations
from fiv_console.db.pool import Database, create_database, tenant_tx
from fiv_console.errors import Conflict, NotFound
from fiv_console.events import Event, Unannounced
from tests.api import Browsers, Person, TenantPeople
from tests.assigning import assigned_to, available, channel, conversations_waiting, enqueued, owners_of
from tests.conftest import TestDatabase
from tests.sockets import Console, open_console
from tests.webhooks import customer_writes, number_of

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
QUEUE, OTHER_QUEUE = uuid.uuid4(), uuid.uuid4()


def _waiting(minutes: int, *, queue: uuid.UUID = QUEUE, priority: int = 0, queue_priority: int = 0) -> Waiting:
    return Waiting(uuid.uuid4(), queue, queue_priority, priority, T0 + timedelta(minutes=minutes))


def test_the_longest_waiting_goes_first_within_a_priority_and_higher_priorities_before() -> None:
    late, early, urgent = _waiting(5), _waiting(1), _waiting(9, priority=1)
    vip_queue = _waiting(10, queue=OTHER_QUEUE, queue_priority=5)
    agent = Candidate(uuid.uuid4(), 0, {QUEUE: 3, OTHER_QUEUE: 3})
    assert [c for c, _ in plan([late, early, urgent, vip_queue], [agent])] == [
        vip_queue.conversation_id,
        urgent.conversation_id,
        early.conversation_id,
    ]


def test_the_agent_with_fewest_open_then_longest_idle_gets_it() -> None:
    busy = Candidate(uuid.uuid4(), 2, {QUEUE: 5}, T0 - timedelta(hours=5))
    idle_long = Candidate(uuid.uuid4(), 1, {QUEUE: 5}, T0 - timedelta(hours=2))
    idle_short = Candidate(uuid.uuid4(), 1, {QUEUE: 5}, T0 - timedelta(minutes=1))
    never = Candidate(uuid.uuid4(), 1, {QUEUE: 5}, None)
    first, second, third, fourth = (_waiting(n) for n in range(4))
    assert plan([first, second, third, fourth], [busy, idle_short, idle_long, never]) == [
        (first.conversation_id, never.agent_id),
        (second.conversation_id, idle_long.agent_id),
        (third.conversation_id, idle_short.agent_id),
        # Everyone now has two: the longest since their last assignment is the busy one.
        (fourth.conversation_id, busy.agent_id),
    ]


def test_capacity_is_per_queue_and_a_full_queue_blocks_no_other() -> None:
    agent = Candidate(uuid.uuid4(), 1, {QUEUE: 1, OTHER_QUEUE: 2})
    in_full_queue, in_other = _waiting(0), _waiting(1, queue=OTHER_QUEUE)
    assert plan([in_full_queue, in_other], [agent]) == [(in_other.conversation_id, agent.agent_id)]
    assert plan([_waiting(0)], [Candidate(uuid.uuid4(), 0, {OTHER_QUEUE: 3})]) == []


async def test_a_claim_assigns_the_oldest_first_within_capacity(db: Database, tenant: TenantPeople) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    made = await conversations_waiting(db, tenant, await channel(db, tenant), 10)
    loop = AssignmentLoop(db, Unannounced(), grace=30)
    assert await loop.run_once(tenant.id) == 6
    owners = await owners_of(db, tenant)
    assert [c for c in made if owners[c] is not None] == made[:6]  # the six longest waiting
    assert Counter(owners[c] for c in made[:6]) == {tenant.agent.id: 3, tenant.other_agent.id: 3}

    # Closing one frees a place: the next oldest goes there, and nothing else moves.
    viewer = Viewer(tenant_id=tenant.id, role="supervisor", user_id=tenant.supervisor.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conversations.close(conn, viewer=viewer, conversation_id=made[0], reason="done")
    assert await loop.run_once(tenant.id) == 1
    assert (await owners_of(db, tenant))[made[6]] == owners[made[0]]


async def test_agents_who_are_away_offline_or_not_connected_get_nothing(db: Database, tenant: TenantPeople) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set status = 'away' where id = $1", tenant.agent.id)
        await conn.execute(
            "update agent_connections set seen_at = now() - interval '1 hour' where user_id = $1", tenant.other_agent.id
        )
    await conversations_waiting(db, tenant, await channel(db, tenant), 3)
    assert await AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id) == 0


async def test_three_claimers_and_manual_assigns_at_once_never_share_or_overfill(
    database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    agents = [tenant.agent.id, tenant.other_agent.id, tenant.supervisor.id]
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set role = 'agent' where id = $1", tenant.supervisor.id)
    await available(db, tenant, *agents)
    made = await conversations_waiting(db, tenant, await channel(db, tenant), 40)
    pools = [
        await create_database(database.app_url, min_size=1, max_size=3, acquire_timeout=10, command_timeout=30)
        for _ in range(3)
    ]
    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)

    async def manual(conversation_id: uuid.UUID, agent_id: uuid.UUID) -> None:
        try:
            async with tenant_tx(db, tenant.id) as conn:
                await conversations.assign(
                    conn, viewer=admin, conversation_id=conversation_id, agent_id=agent_id, force=False
                )
        except (Conflict, NotFound):
            pass  # at capacity, or already taken: both are the right answers to a race lost

    try:
        loops = [AssignmentLoop(pool, Unannounced(), grace=30, batch=4) for pool in pools]
        await asyncio.gather(
            *(loop.run_once(tenant.id) for loop in loops),
            *(manual(made[-1 - n], agents[n % 3]) for n in range(6)),
        )
    finally:
        for pool in pools:
            await pool.pool.close()
    owners = await owners_of(db, tenant)
    load = Counter(owner for owner in owners.values() if owner is not None)
    assert sum(load.values()) == 9  # three agents of capacity three: full, and no more
    assert all(count == 3 for count in load.values())


@pytest.fixture
def no_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the server starts: its loop sweeps only every ten minutes, so whatever it does in a test it
    does because something woke it."""
    monkeypatch.setattr(assignment_loop, "SWEEP_INTERVAL", 600.0)


async def _online(live_people: Browsers, person: Person) -> Console:
    console = await open_console(await live_people.signed_in(person))
    await console.send({"type": "presence", "status": "online"})
    await console.presence_of(person.id)
    await console.presence_of(person.id)  # connected, then online
    return console


async def test_a_running_server_assigns_a_new_conversation_to_the_online_agent_at_once(
    no_sweep: None, live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    agent = await _online(live_people, tenant.agent)
    await customer_writes(live_server, await number_of(db, tenant), "assign me")
    assigned = await agent.event("conversation.assigned", within=3)
    assert assigned["data"]["conversation"]["agent_id"] == str(tenant.agent.id)


async def test_a_new_member_of_a_queue_gets_its_waiting_conversation_at_once(
    no_sweep: None, live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    newcomer = await _online(live_people, tenant.other_agent)  # online, but in no queue yet
    await customer_writes(live_server, await number_of(db, tenant), "anyone?")
    await newcomer.quiet(0.5)
    supervisor = await live_people.signed_in(tenant.supervisor)
    member = await supervisor.put(f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}", {})
    assert member.status == 200, member.body
    assigned = await newcomer.event("conversation.assigned", within=3)
    assert assigned["data"]["conversation"]["agent_id"] == str(tenant.other_agent.id)


async def test_a_queue_nobody_can_serve_does_not_hold_up_another(db: Database, tenant: TenantPeople) -> None:
    """Many waiting in a high-priority queue without available agents; one waiting in another queue whose
    agent has room gets assigned all the same."""
    channel_id = await channel(db, tenant)
    await conversations_waiting(db, tenant, channel_id, 12)  # in the tenant's queue: no available member
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update queues set priority = 10 where id = $1", tenant.queue_id)
        other_queue = await conn.fetchval(
            "insert into queues (tenant_id, name) values ($1, $2) returning id",
            tenant.id,
            f"Other {uuid.uuid4().hex[:6]}",
        )
        contact = await conn.fetchval(
            "insert into contacts (tenant_id, wa_id) values ($1, '5599000000001') returning id", tenant.id
        )
        lonely = await conn.fetchval(
            "insert into conversations (tenant_id, channel_id, contact_id, queue_id) values ($1, $2, $3, $4) "
            "returning id",
            tenant.id,
            channel_id,
            contact,
            other_queue,
        )
    await available(db, tenant, tenant.other_agent.id, queue_id=other_queue)
    assert await AssignmentLoop(db, Unannounced(), grace=30, batch=5).run_once(tenant.id) == 1
    assert (await owners_of(db, tenant))[lonely] == tenant.other_agent.id


async def test_an_agent_gone_offline_has_their_conversations_back_in_the_line_at_their_place(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    made = await assigned_to(db, tenant, tenant.agent.id, 2)
    before = await enqueued(db, tenant)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update users set status = 'offline', status_changed_at = now() where id = $1", tenant.agent.id
        )
        await conn.execute("update users set status = 'away' where id = $1", tenant.other_agent.id)
    assert await AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id) == 0
    after = await enqueued(db, tenant)
    assert [after[c] for c in made] == [("waiting", before[c][1]) for c in made]

    # Someone present comes online: they get them, the longest waiting first.
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set status = 'online' where id = $1", tenant.other_agent.id)
    assert await AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id) == 2
    assert set((await owners_of(db, tenant)).values()) == {tenant.other_agent.id}


async def test_a_disconnected_agent_keeps_them_within_the_tenants_wait_and_where_it_says_keep(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id)
    made = await assigned_to(db, tenant, tenant.agent.id, 1)
    async with tenant_tx(db, tenant.id) as conn:
        # Gone past the grace a minute ago; the tenant waits two minutes before taking conversations back.
        await conn.execute(
            "update users set connected = false, connected_changed_at = now() - interval '1 minute' where id = $1",
            tenant.agent.id,
        )
        await conn.execute(
            "update agent_connections set seen_at = now() - interval '90 seconds' where user_id = $1", tenant.agent.id
        )
        await conn.execute(
            "update tenants set settings = settings || '{\"requeue_after_seconds\": 120}' where id = $1", tenant.id
        )
    loop = AssignmentLoop(db, Unannounced(), grace=30)
    await loop.run_once(tenant.id)
    assert (await enqueued(db, tenant))[made[0]][0] == "assigned"
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update tenants set settings = settings || '{\"requeue_after_seconds\": 30}' where id = $1", tenant.id
        )
    await loop.run_once(tenant.id)
    assert (await enqueued(db, tenant))[made[0]][0] == "waiting"

    more = await assigned_to(db, tenant, tenant.agent.id, 1)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            'update tenants set settings = settings || \'{"offline_conversations": "keep"}\' where id = $1',
            tenant.id,
        )
    await loop.run_once(tenant.id)
    assert (await enqueued(db, tenant))[more[0]][0] == "assigned"


async def test_a_conversation_assigned_after_the_agent_left_stays_with_them(db: Database, tenant: TenantPeople) -> None:
    await available(db, tenant, tenant.agent.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update users set status = 'offline', status_changed_at = now() - interval '1 hour' where id = $1",
            tenant.agent.id,
        )
    [made] = await assigned_to(db, tenant, tenant.agent.id, 1)  # ten minutes ago: after they left
    await AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id)
    assert (await enqueued(db, tenant))[made][0] == "assigned"


async def test_steady_wake_ups_do_not_put_off_the_sweep(
    monkeypatch: pytest.MonkeyPatch, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    """Time-driven work (here an SLA mark) happens only in sweeps; another tenant's wake-ups every 50 ms
    must not keep postponing them. A sweep visits every tenant of the test database, which holds many by
    now, so how soon it reaches this one depends on the machine: the wake-ups go on until the mark is
    there, and only a sweep put off for good fails."""
    monkeypatch.setattr(assignment_loop, "SWEEP_INTERVAL", 0.3)
    [late] = await conversations_waiting(db, tenant, await channel(db, tenant), 1)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update queues set sla_seconds = 1 where id = $1", tenant.queue_id)
    loop = AssignmentLoop(db, Unannounced(), grace=30)
    wake = Event(other_tenant.id, 1, "conversation.created", Audience.everyone(), None, {}, datetime.now(UTC))
    running = asyncio.create_task(loop.run())
    marked = None
    try:
        for tick in range(600):  # 30 s of wake-ups at most
            loop.heard(other_tenant.id, [wake])
            await asyncio.sleep(0.05)
            if tick % 10 == 9:
                async with tenant_tx(db, tenant.id) as conn:
                    marked = await conn.fetchval("select sla_breached_at from conversations where id = $1", late)
                if marked is not None:
                    break
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert marked is not None


async def test_a_claim_waits_for_the_loops_own_work_on_the_line_instead_of_skipping_the_oldest(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id)
    made = await conversations_waiting(db, tenant, await channel(db, tenant), 10)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update queues set sla_seconds = 1 where id = $1", tenant.queue_id)
    async with events.changing(db, Unannounced(), tenant.id) as (conn, batch):
        assert await mark_breaches(conn, batch, limit=5) == 5  # the five oldest, locked until commit
        claiming = asyncio.create_task(AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id))
        await asyncio.sleep(0.3)
        assert not claiming.done()
    assert await claiming == 3
    owners = await owners_of(db, tenant)
    assert [c for c in made if owners[c] is not None] == made[:3]


async def test_a_tenant_whose_round_fails_does_not_stop_the_sweep_of_the_others(
    db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    # The sweep goes in id order: the broken tenant comes first.
    broken, healthy = sorted([tenant, other_tenant], key=lambda t: t.id)
    # Settings the model now refuses (written past it): every round of that tenant fails when it reads them.
    async with tenant_tx(db, broken.id) as conn:
        await conn.execute(
            "update tenants set settings = settings || '{\"priority_rise_seconds\": 1}' where id = $1", broken.id
        )
    await available(db, healthy, healthy.agent.id)
    [waiting] = await conversations_waiting(db, healthy, await channel(db, healthy), 1)
    loop = AssignmentLoop(db, Unannounced(), grace=30)
    await loop.run_once()
    assert (await owners_of(db, healthy))[waiting] == healthy.agent.id


async def _holding(
    db: Database, tenant: TenantPeople, conversation_id: uuid.UUID, seconds: float
) -> asyncio.Task[None]:
    """What intake does while it stores a follow-up message: the conversation's row locked for a moment;
    returns once it is locked."""
    locked = asyncio.Event()

    async def hold() -> None:
        async with tenant_tx(db, tenant.id) as conn:
            await conn.execute("select id from conversations where id = $1 for no key update", conversation_id)
            locked.set()
            await asyncio.sleep(seconds)

    holding = asyncio.create_task(hold())
    await locked.wait()
    return holding


async def test_a_claim_waits_a_moment_for_the_oldest_conversation_rather_than_pass_it_over(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set max_concurrent = 1 where id = $1", tenant.agent.id)
    oldest, _ = await conversations_waiting(db, tenant, await channel(db, tenant), 2)
    holding = await _holding(db, tenant, oldest, 0.05)
    assert await AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id) == 1
    await holding
    assert (await owners_of(db, tenant))[oldest] == tenant.agent.id


async def test_a_claim_does_not_wait_long_for_a_conversation_held_longer(db: Database, tenant: TenantPeople) -> None:
    await available(db, tenant, tenant.agent.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set max_concurrent = 1 where id = $1", tenant.agent.id)
    oldest, younger = await conversations_waiting(db, tenant, await channel(db, tenant), 2)
    holding = await _holding(db, tenant, oldest, 3.0)
    started = asyncio.get_running_loop().time()
    assert await AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id) == 1
    assert asyncio.get_running_loop().time() - started < 1.5
    assert (await owners_of(db, tenant))[younger] == tenant.agent.id
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
