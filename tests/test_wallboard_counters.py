"""The wallboard's figures of the day (migration 0015, `assignment/daily_counters.py`) agree with a recount
from the event log after any mix of claims, moves and closes, concurrent ones included, folded or not; and
they fall in the tenant's own calendar day, whatever the server's."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fiv_console import events
from fiv_console.access import Viewer
from fiv_console.assignment import daily_counters
from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.conversations import lifecycle as conversations
from fiv_console.db.pool import Database, create_database, tenant_tx
from fiv_console.errors import Conflict, NotFound
from fiv_console.events import Unannounced
from fiv_console.wallboard import board
from tests.api import TenantPeople
from tests.assigning import available, channel, conversations_waiting
from tests.conftest import TestDatabase


def _ms(later: str, earlier: str) -> int:
    return max(0, int((datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds() * 1000))


async def _recount(
    db: Database, tenant: TenantPeople, first_responses: list[tuple[UUID, int]]
) -> dict[str, dict[UUID, int]]:
    """Today's figures from the event log (every move is an event with where it was before), and the first
    responses as they were given (the queue they were in then, and how long after arrival)."""
    counted: defaultdict[str, defaultdict[UUID, int]] = defaultdict(lambda: defaultdict(int))
    async with tenant_tx(db, tenant.id) as conn:
        targets = {r["id"]: r["sla_seconds"] for r in await conn.fetch("select id, sla_seconds from queues")}
        logged = await conn.fetch("select payload from events where type like 'conversation.%' order by seq")
    for row in logged:
        payload: dict[str, Any] = row["payload"]
        if "from" not in payload:
            continue
        before, after = payload["from"], payload["conversation"]
        queue_id = UUID(before["queue_id"])
        if before["status"] == "waiting" and after["status"] == "assigned":
            waited = _ms(after["assigned_at"], after["enqueued_at"])
            counted["answered"][queue_id] += 1
            counted["wait_ms"][queue_id] += waited
            if waited <= targets[queue_id] * 1000:
                counted["answered_in_sla"][queue_id] += 1
        if after["status"] == "closed" and before["status"] != "closed":
            counted["closed"][queue_id] += 1
            if before["status"] == "assigned":
                counted["handled"][UUID(before["agent_id"])] += 1
            elif _ms(after["closed_at"], after["enqueued_at"]) >= 5000:
                counted["abandoned"][queue_id] += 1
    for queue_id, after_ms in first_responses:
        counted["first_responses"][queue_id] += 1
        counted["first_response_ms"][queue_id] += after_ms
    return {kind: {k: v for k, v in values.items() if v} for kind, values in counted.items() if any(values.values())}


async def _counted(db: Database, tenant: TenantPeople, *, fold: bool = False) -> dict[str, dict[UUID, int]]:
    async with tenant_tx(db, tenant.id) as conn:
        if fold:
            await daily_counters.fold(conn, tenant.id)
        day = await daily_counters.today(conn)
        values = (await daily_counters.read(conn, day=day)).values
    return {
        kind: {k: v for k, v in subjects.items() if v} for kind, subjects in values.items() if any(subjects.values())
    }


async def test_the_days_figures_agree_with_a_recount_after_concurrent_traffic(
    database: TestDatabase, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    made = await conversations_waiting(db, tenant, await channel(db, tenant), 16)
    await conversations_waiting(db, other_tenant, await channel(db, other_tenant), 2)
    async with tenant_tx(db, tenant.id) as conn:
        # Half waited only seconds (answered within the 300 s target), half for hours (past it).
        await conn.execute(
            "update conversations set enqueued_at = now() - interval '10 seconds' where id = any($1)", made[::2]
        )
        second_queue = await conn.fetchval(
            "insert into queues (tenant_id, name, sla_seconds) values ($1, 'Second', 60) returning id", tenant.id
        )
    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    pools = [
        await create_database(database.app_url, min_size=1, max_size=4, acquire_timeout=10, command_timeout=30)
        for _ in range(3)
    ]
    rng = random.Random(15)
    first_responses: list[tuple[UUID, int]] = []

    async def moves(pool: Database) -> None:
        for _ in range(30):
            conversation_id = rng.choice(made)
            try:
                async with events.changing(pool, Unannounced(), tenant.id) as (conn, batch):
                    step = rng.randrange(6)
                    if step == 0:
                        moved = await conversations.transfer_to_queue(
                            conn, viewer=admin, conversation_id=conversation_id, queue_id=second_queue
                        )
                        conversations.announce_move(batch, "conversation.transferred", moved)
                    elif step == 1:
                        moved = await conversations.unassign(conn, viewer=admin, conversation_id=conversation_id)
                        conversations.announce_move(batch, "conversation.unassigned", moved)
                    elif step == 2:
                        moved = await conversations.close(
                            conn, viewer=admin, conversation_id=conversation_id, reason="x"
                        )
                        conversations.announce_move(batch, "conversation.closed", moved)
                    elif step == 3:
                        moved = await conversations.reopen(conn, viewer=admin, conversation_id=conversation_id)
                        conversations.announce_move(batch, "conversation.reopened", moved)
                    elif step == 4:
                        first = await conn.fetchrow(
                            "update conversations set first_response_at = clock_timestamp() "
                            "where id = $1 and status = 'assigned' and first_response_at is null "
                            "returning queue_id, "
                            "floor(extract(epoch from first_response_at - created_at) * 1000) as ms",
                            conversation_id,
                        )
                        if first is not None:
                            first_responses.append((first["queue_id"], int(first["ms"])))
                    else:
                        agent = rng.choice([tenant.agent.id, tenant.other_agent.id])
                        moved = await conversations.assign(
                            conn, viewer=admin, conversation_id=conversation_id, agent_id=agent, force=True
                        )
                        conversations.announce_move(batch, "conversation.assigned", moved)
            except (Conflict, NotFound):
                pass  # a move that does not apply to the conversation as it now is

    async def claims(pool: Database) -> None:
        loop = AssignmentLoop(pool, Unannounced(), grace=30)
        for _ in range(8):
            await loop.run_once(tenant.id)

    try:
        await asyncio.gather(*(moves(pool) for pool in pools), claims(pools[0]), claims(pools[1]))
    finally:
        for pool in pools:
            await pool.pool.close()
    truth = await _recount(db, tenant, first_responses)
    assert {"answered", "answered_in_sla", "closed", "handled", "first_responses"} <= set(truth)
    assert await _counted(db, tenant) == truth
    # The claims may have finished before the last moves: one more round folds what those appended.
    await AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id)
    assert await _counted(db, tenant, fold=True) == truth
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select count(*) from wallboard_day_counter_deltas") == 0
        assert await conn.fetchval("select count(*) from assignment_counter_deltas") == 0  # the loop folded both
    assert await _counted(db, tenant) == truth
    assert await _counted(db, other_tenant) == {}

    # The board shows the same figures, and derives its shares and averages from them.
    async with tenant_tx(db, tenant.id) as conn:
        shown = await board.read(conn)
    for queue in shown.queues:
        answered = truth.get("answered", {}).get(queue.queue_id, 0)
        abandoned = truth.get("abandoned", {}).get(queue.queue_id, 0)
        in_sla = truth.get("answered_in_sla", {}).get(queue.queue_id, 0)
        assert (queue.answered_today, queue.answered_in_sla_today, queue.abandoned_today) == (
            answered,
            in_sla,
            abandoned,
        )
        assert queue.closed_today == truth.get("closed", {}).get(queue.queue_id, 0)
        if answered + abandoned:
            assert queue.service_level_today == round(in_sla / (answered + abandoned), 4)
        if answered:
            assert queue.average_wait_seconds_today == round(truth["wait_ms"][queue.queue_id] / answered / 1000, 1)
    handled = {a.user_id: a.handled_today for a in shown.agents if a.handled_today}
    assert handled == truth.get("handled", {})


def _zone_on_another_day(now: datetime) -> str:
    """A time zone whose calendar day differs from UTC's at `now` (one of the two always does)."""
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
        if now.astimezone(ZoneInfo(zone)).date() != now.date():
            return zone
    raise AssertionError("one of UTC+14 and UTC-12 is always on another day")


async def test_figures_fall_in_the_tenants_day_and_the_board_turns_at_its_midnight(
    db: Database, tenant: TenantPeople
) -> None:
    zone = _zone_on_another_day(datetime.now(UTC))
    await available(db, tenant, tenant.agent.id)
    [conversation_id] = await conversations_waiting(db, tenant, await channel(db, tenant), 1)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update tenants set time_zone = $1", zone)
        utc_day = await conn.fetchval("select (now() at time zone 'UTC')::date")
    await AssignmentLoop(db, Unannounced(), grace=30).run_once(tenant.id)
    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conversations.close(conn, viewer=admin, conversation_id=conversation_id, reason="done")
    async with tenant_tx(db, tenant.id) as conn:
        local_day = await daily_counters.today(conn)
        assert local_day == datetime.now(ZoneInfo(zone)).date() != utc_day
        assert (await daily_counters.read(conn, day=local_day)).of("handled", tenant.agent.id) == 1
        assert (await daily_counters.read(conn, day=utc_day)).values == {}
        # Yesterday's figures (kept a day for boards still on it) never show as today's.
        await conn.execute(
            "insert into wallboard_day_counters (tenant_id, day, kind, subject_id, value) "
            "values ($1, $2, 'closed', $3, 7)",
            tenant.id,
            local_day - timedelta(days=1),
            tenant.queue_id,
        )
        shown = await board.read(conn)
    assert shown.day == local_day
    assert shown.time_zone == zone
    [queue] = shown.queues
    assert queue.closed_today == 1
    assert queue.answered_today == 1
    midnight = datetime.combine(local_day + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(zone))
    assert shown.refresh_at == midnight.astimezone(UTC)
    # A fold drops what no board shows any more: days before yesterday.
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "insert into wallboard_day_counters (tenant_id, day, kind, subject_id, value) "
            "values ($1, $2, 'closed', $3, 9)",
            tenant.id,
            local_day - timedelta(days=2),
            tenant.queue_id,
        )
        await daily_counters.fold(conn, tenant.id)
        kept = await conn.fetch("select day, value from wallboard_day_counters where kind = 'closed' order by day")
    assert [(r["day"], r["value"]) for r in kept] == [(local_day - timedelta(days=1), 7), (local_day, 1)]
