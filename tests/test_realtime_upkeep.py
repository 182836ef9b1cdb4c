"""What keeps live delivery honest when the bus is not: feeds that order and fill gaps from the log, the
periodic upkeep (leases, lapsed agents, ended sessions), and the log's retention."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from fiv_console import events
from fiv_console.access import Audience
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.events import Event, EventBatch
from fiv_console.keys import hub_key, upkeep_key
from fiv_console.realtime import feed as feed_module
from fiv_console.realtime.feed import TenantFeed
from fiv_console.realtime.protocol import SESSION_ENDED_CODE
from fiv_console.realtime.upkeep import prune_events
from tests.api import Browsers, TenantPeople
from tests.conftest import new_tenant
from tests.sockets import open_console


@dataclass(eq=False)
class Recorder:
    """Stands where a socket would: takes what the feed offers it (a supervisor, who sees everything)."""

    user_id: uuid.UUID = field(default_factory=uuid.uuid4)
    queue_ids: frozenset[uuid.UUID] = frozenset()
    sees_all: bool = True
    seqs: list[int] = field(default_factory=list)

    def offer(self, event: Event, frame: str) -> None:
        self.seqs.append(event.seq)


async def _append(db: Database, tenant_id: uuid.UUID, count: int) -> list[Event]:
    appended = []
    for _ in range(count):
        async with tenant_tx(db, tenant_id) as conn:
            batch = EventBatch(tenant_id)
            batch.add("queue.updated", Audience.supervisors(), conversation_id=None, payload={})
            appended += await events.append(conn, batch)
    return appended


async def _watched(db: Database, tenant: TenantPeople) -> tuple[TenantFeed, Recorder]:
    """A started feed of the tenant's, and what it hands on."""
    feed = TenantFeed(tenant.id, db)
    await feed.start()
    recorder = Recorder()
    feed.add(recorder)  # type: ignore[arg-type]
    return feed, recorder


async def test_a_feed_orders_what_arrives_out_of_order_and_reads_what_never_arrives(
    db: Database, tenant: TenantPeople
) -> None:
    feed, recorder = await _watched(db, tenant)
    first, second, third = await _append(db, tenant.id, 3)

    feed.receive([third, first])  # the doorbell of `second` is lost; `third` came before `first`
    assert recorder.seqs == [first.seq]
    await asyncio.sleep(feed_module.GAP_WAIT * 4)  # the gap is read from the log
    assert recorder.seqs == [first.seq, second.seq, third.seq]

    [fourth] = await _append(db, tenant.id, 1)
    feed.receive([fourth, third, second])  # repeats are dropped
    assert recorder.seqs == [first.seq, second.seq, third.seq, fourth.seq]
    await feed.close()


async def test_a_feed_catches_up_on_what_was_committed_while_the_bus_was_silent(
    db: Database, tenant: TenantPeople
) -> None:
    feed, recorder = await _watched(db, tenant)
    missed = await _append(db, tenant.id, 3)
    feed.catch_up()
    for _ in range(100):
        if len(recorder.seqs) == 3:
            break
        await asyncio.sleep(0.01)
    assert recorder.seqs == [e.seq for e in missed]
    assert feed.position == missed[-1].seq
    await feed.close()


async def _stranded(db: Database, tenant: TenantPeople, *, seen_ago: timedelta) -> None:
    """The tenant's agent, shown as connected, with a lease of an instance that died `seen_ago`."""
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "insert into agent_connections (tenant_id, user_id, instance_id, sockets, seen_at) "
            "values ($1, $2, $3, 1, now() - $4::interval)",
            tenant.id,
            tenant.agent.id,
            uuid.uuid4(),
            seen_ago,
        )
        await conn.execute("update users set connected = true where id = $1", tenant.agent.id)


async def test_an_agent_whose_instance_died_is_reported_gone_once_the_grace_runs_out(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    # The agent's socket was on an instance that crashed: its lease was refreshed a while ago, then never.
    await _stranded(db, tenant, seen_ago=timedelta(seconds=1))
    supervisor = await open_console(await live_people.signed_in(tenant.supervisor))
    gone = await supervisor.presence_of(tenant.agent.id, within=5)
    assert gone["data"]["connected"] is False
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select connected from users where id = $1", tenant.agent.id) is False
        logged = await conn.fetch(
            "select connected from agent_presence_log where user_id = $1 order by id", tenant.agent.id
        )
    assert [r["connected"] for r in logged] == [False]


async def test_a_reconnect_within_the_grace_period_is_no_departure(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    supervisor = await open_console(await live_people.signed_in(tenant.supervisor))
    agent_api = await live_people.signed_in(tenant.agent)
    first = await open_console(agent_api)
    assert (await supervisor.presence_of(tenant.agent.id))["data"]["connected"] is True
    await first.close()
    await open_console(agent_api)  # a page reload
    frames = await supervisor.quiet(3)
    assert [
        f for f in frames if f.get("event") == "agent.presence" and f["data"]["user_id"] == str(tenant.agent.id)
    ] == []


async def test_a_session_ended_without_a_word_on_the_bus_still_closes_its_sockets(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    console = await open_console(await live_people.signed_in(tenant.agent))
    # As if the notice were lost (Redis down): only the database knows.
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set session_version = session_version + 1 where id = $1", tenant.agent.id)
    assert await console.closed(within=5) == SESSION_ENDED_CODE


async def _event_count(conn: Any) -> int:
    return int(await conn.fetchval("select count(*) from events"))


async def test_retention_removes_old_events_of_every_tenant_as_a_prefix(
    db: Database, owner: asyncpg.Connection
) -> None:
    tenants = [await new_tenant(db), await new_tenant(db)]
    for tenant_id in tenants:
        old, middle, _ = await _append(db, tenant_id, 3)
        # created_at is when a transaction began: `middle`'s began long before `old`'s and committed after.
        # Deleting by age alone would keep `old` and leave a hole where `middle` was.
        await owner.execute(
            "update events set created_at = now() - interval '1 day' where tenant_id = $1 and seq = $2",
            tenant_id,
            old.seq,
        )
        await owner.execute(
            "update events set created_at = now() - interval '10 days' where tenant_id = $1 and seq = $2",
            tenant_id,
            middle.seq,
        )
    assert await prune_events(db, keep=timedelta(days=7)) >= 4
    for tenant_id in tenants:
        async with tenant_tx(db, tenant_id) as conn:
            assert await _event_count(conn) == 1
            assert await events.oldest_kept(conn) == await events.last_seq(conn)


async def test_an_event_whose_doorbell_was_lost_still_arrives_with_the_next_tick(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    supervisor = await open_console(await live_people.signed_in(tenant.supervisor))
    await supervisor.presence_of(tenant.supervisor.id)
    [silent] = await _append(db, tenant.id, 1)  # committed, never announced
    arrived = await supervisor.event("queue.updated", within=3)
    assert arrived["seq"] == silent.seq


async def test_events_read_from_the_log_after_the_bus_brought_them_are_not_kept_waiting(
    db: Database, tenant: TenantPeople, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed, recorder = await _watched(db, tenant)
    first, second = await _append(db, tenant.id, 2)
    real_read = events.read

    async def read_while_the_bus_delivers(conn: Any, **kwargs: Any) -> list[Event]:
        found = await real_read(conn, **kwargs)
        feed.receive([first])  # the bus brings the missing event while the log is being read
        return found

    monkeypatch.setattr(feed_module.events, "read", read_while_the_bus_delivers)
    feed.receive([second])
    feed.catch_up()
    await asyncio.sleep(feed_module.GAP_WAIT * 4)
    assert recorder.seqs == [first.seq, second.seq]
    # Nothing is left waiting for a gap that is not there, so no read is scheduled again and again.
    assert feed._pending == {}
    assert feed._timer is None
    await feed.close()


async def test_leaving_a_queue_without_a_word_on_the_bus_still_stops_its_events(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    agent = await open_console(await live_people.signed_in(tenant.agent))
    # As if the access notice were lost: only the database knows.
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("delete from queue_members where user_id = $1", tenant.agent.id)
    await asyncio.sleep(1.5)  # a few upkeep ticks (a third of the 1.5 s grace each)
    async with tenant_tx(db, tenant.id) as conn:
        batch = EventBatch(tenant.id)
        batch.add("conversation.created", Audience.queue(tenant.queue_id), conversation_id=None, payload={})
        appended = await events.append(conn, batch)
    live_server.app[hub_key].announce(tenant.id, appended)
    assert await agent.quiet_about_conversations(0.7) == []


async def test_a_socket_ends_with_its_session_however_active(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    console = await open_console(await live_people.signed_in(tenant.agent))
    [socket] = live_server.app[hub_key].sockets_of(tenant.agent.id)
    socket.expires_at = time.time()  # as if SESSION_MAX_HOURS had passed since sign-in
    assert await console.closed(within=3) == SESSION_ENDED_CODE


async def test_a_tenant_nobody_serves_still_has_its_lapsed_agents_reported_and_dated_when_they_lapsed(
    live_server: TestServer, db: Database, tenant: TenantPeople
) -> None:
    # The tenant's only instance died ten minutes ago with an agent connected; nobody of it has come back.
    await _stranded(db, tenant, seen_ago=timedelta(minutes=10))
    await live_server.app[upkeep_key].sweep_everywhere()
    async with tenant_tx(db, tenant.id) as conn:
        user = await conn.fetchrow(
            "select connected, now() - connected_changed_at as ago from users where id = $1", tenant.agent.id
        )
        logged = await conn.fetchval(
            "select now() - changed_at from agent_presence_log where user_id = $1 and not connected", tenant.agent.id
        )
    assert user["connected"] is False
    # Last seen ten minutes ago, gone once the 1.5 s grace ran out then: not "now".
    assert timedelta(minutes=9) < user["ago"] < timedelta(minutes=11)
    assert timedelta(minutes=9) < logged < timedelta(minutes=11)
