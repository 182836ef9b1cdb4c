"""Reports: known traffic at chosen times, every figure checked against values computed by hand.

The traffic is written as the owner with explicit times, in the same columns the domain's statements set
(status, queue, agent, assigned_at, closed_at, enqueued_at, updated_at; a reply queued then sent), so the
triggers of sql/0015 record segments as they do for the server, at those times. The tenant is in
Europe/Lisbon, and the range crosses midnight and the end of summer time (2026-10-25 02:00 WEST -> 01:00
WET). A second test moves conversations through the real domain functions and checks the segments'
kinds; the API tests check roles, validation and the CSV exports (quoting, formula injection).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
import pytest

from fiv_console.access import Viewer
from fiv_console.accounts.tenants import get_tenant
from fiv_console.assignment import absence, unanswered
from fiv_console.conversations import lifecycle
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.events import EventBatch
from fiv_console.reports import export, figures
from fiv_console.reports.period import Period
from tests.api import Browsers, TenantPeople
from tests.conftest import TestDatabase


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class Traffic:
    """Writes conversations' moves as the owner, at chosen times."""

    owner: asyncpg.Connection
    tenant_id: uuid.UUID
    channel_id: uuid.UUID

    async def open(self, queue_id: uuid.UUID, when: datetime, name: str = "Customer") -> uuid.UUID:
        contact = await self.owner.fetchval(
            "insert into contacts (tenant_id, wa_id, name) values ($1, $2, $3) returning id",
            self.tenant_id,
            str(uuid.uuid4().int)[:13],
            name,
        )
        return await self.owner.fetchval(  # type: ignore[no-any-return]
            "insert into conversations (tenant_id, channel_id, contact_id, queue_id, created_at, enqueued_at,"
            " last_message_at, updated_at) values ($1, $2, $3, $4, $5, $5, $5, $5) returning id",
            self.tenant_id,
            self.channel_id,
            contact,
            queue_id,
            when,
        )

    async def assign(self, conversation: uuid.UUID, agent: uuid.UUID, when: datetime) -> None:
        await self.owner.execute(
            "update conversations set status = 'assigned', agent_id = $2, assigned_at = $3, updated_at = $3,"
            " passed_over_agent_id = null where id = $1",
            conversation,
            agent,
            when,
        )

    async def to_queue(self, conversation: uuid.UUID, queue: uuid.UUID, when: datetime) -> None:
        await self.owner.execute(
            "update conversations set status = 'waiting', queue_id = $2, agent_id = null, assigned_at = null,"
            " updated_at = $3 where id = $1",
            conversation,
            queue,
            when,
        )

    async def reroute(self, conversation: uuid.UUID, when: datetime) -> None:
        """As `assignment.unanswered` takes it from a silent agent: passed over by them."""
        await self.owner.execute(
            "update conversations set status = 'waiting', passed_over_agent_id = agent_id, agent_id = null,"
            " assigned_at = null, updated_at = $2 where id = $1",
            conversation,
            when,
        )

    async def reply(self, conversation: uuid.UUID, author: uuid.UUID | None, when: datetime) -> None:
        """Queued, then taken by WhatsApp at `when` (as `outbound.record_sent` marks it)."""
        message = await self.owner.fetchval(
            "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, status, author_id,"
            " details, created_at, updated_at) select tenant_id, id, channel_id, 'outbound', 'text', 'hi', 'queued',"
            " $2, $3::jsonb, $4, $4 from conversations where id = $1 returning id",
            conversation,
            author,
            None if author is not None else '{"automatic": "queue_position"}',
            when,
        )
        await self.owner.execute(
            "update messages set status = 'sent', wa_message_id = $2, updated_at = $3 where id = $1",
            message,
            f"wamid.{uuid.uuid4().hex}",
            when,
        )

    async def close(self, conversation: uuid.UUID, when: datetime) -> None:
        await self.owner.execute(
            "update conversations set status = 'closed', closed_at = $2, close_reason = 'done', updated_at = $2"
            " where id = $1",
            conversation,
            when,
        )

    async def reopen(self, conversation: uuid.UUID, when: datetime) -> None:
        await self.owner.execute(
            "update conversations set status = 'waiting', agent_id = null, assigned_at = null, closed_at = null,"
            " close_reason = null, enqueued_at = $2, updated_at = $2 where id = $1",
            conversation,
            when,
        )

    async def presence(self, user: uuid.UUID, status: str, connected: bool, when: datetime) -> None:
        await self.owner.execute(
            "insert into agent_presence_log (tenant_id, user_id, status, connected, changed_at)"
            " values ($1, $2, $3, $4, $5)",
            self.tenant_id,
            user,
            status,
            connected,
            when,
        )


@dataclass
class Scene:
    tenant: TenantPeople
    q1: uuid.UUID
    q2: uuid.UUID


@pytest.fixture
async def scene(database: TestDatabase, tenant: TenantPeople) -> AsyncIterator[Scene]:
    owner = await asyncpg.connect(database.owner_url)
    try:
        await owner.execute("update tenants set time_zone = 'Europe/Lisbon' where id = $1", tenant.id)
        await owner.execute("update queues set sla_seconds = 60, name = 'First line' where id = $1", tenant.queue_id)
        q2 = await owner.fetchval(
            "insert into queues (tenant_id, name, sla_seconds) values ($1, 'Billing, \"VIP\"', 300) returning id",
            tenant.id,
        )
        channel = await owner.fetchval(
            "insert into channels (tenant_id, phone_number_id, display_number, default_queue_id)"
            " values ($1, $2, '+351 555', $3) returning id",
            tenant.id,
            str(uuid.uuid4().int)[:15],
            tenant.queue_id,
        )
        traffic = Traffic(owner, tenant.id, channel)
        q1, a, b = tenant.queue_id, tenant.agent.id, tenant.other_agent.id
        # c1 crosses midnight: queued and answered on the 24th, closed on the 25th.
        c1 = await traffic.open(q1, at("2026-10-24T23:50:00+01:00"))
        await traffic.assign(c1, a, at("2026-10-24T23:50:30+01:00"))
        await traffic.reply(c1, a, at("2026-10-24T23:52:30+01:00"))
        await traffic.close(c1, at("2026-10-25T00:10:00+01:00"))
        # c2 spans the end of summer time: B has it, hands it to A, who answers in the repeated hour.
        c2 = await traffic.open(q1, at("2026-10-25T01:30:00+01:00"))
        await traffic.assign(c2, b, at("2026-10-25T01:32:00+01:00"))
        await traffic.assign(c2, a, at("2026-10-25T01:40:00+01:00"))
        await traffic.reply(c2, a, at("2026-10-25T01:20:00+00:00"))
        await traffic.close(c2, at("2026-10-25T03:00:00+00:00"))
        # c3 and c4 close while waiting: abandoned, c3 within the 5 s of a short abandon. c4 was sent an
        # automatic reply, which answers nothing.
        c3 = await traffic.open(q2, at("2026-10-24T10:00:00+01:00"))
        await traffic.close(c3, at("2026-10-24T10:00:03+01:00"))
        c4 = await traffic.open(q2, at("2026-10-24T11:00:00+01:00"), name='=HYPERLINK("x")')
        await traffic.reply(c4, None, at("2026-10-24T11:05:00+01:00"))
        await traffic.close(c4, at("2026-10-24T11:10:00+01:00"))
        # c5: moved to the second queue while waiting, taken by A, re-routed from A unanswered, answered by
        # B, closed; reopened the next morning and still waiting.
        c5 = await traffic.open(q1, at("2026-10-24T12:00:00+01:00"), name='Silva, "Zé"\nda Costa')
        await traffic.to_queue(c5, q2, at("2026-10-24T12:01:00+01:00"))
        await traffic.assign(c5, a, at("2026-10-24T12:03:00+01:00"))
        await traffic.reroute(c5, at("2026-10-24T12:13:00+01:00"))
        await traffic.assign(c5, b, at("2026-10-24T12:14:00+01:00"))
        await traffic.reply(c5, b, at("2026-10-24T12:15:00+01:00"))
        await traffic.close(c5, at("2026-10-24T12:30:00+01:00"))
        await traffic.reopen(c5, at("2026-10-25T09:00:00+00:00"))
        # A: online from before the range, away at 13:00 local, gone (no socket) at 14:00 local.
        await traffic.presence(a, "online", True, at("2026-10-23T20:00:00+00:00"))
        await traffic.presence(a, "away", True, at("2026-10-24T12:00:00+00:00"))
        await traffic.presence(a, "online", False, at("2026-10-24T13:00:00+00:00"))
        yield Scene(tenant, q1, q2)
    finally:
        await owner.close()


async def _summary(db: Database, scene: Scene, start: str, end: str, **filters: Any) -> figures.Summary:
    async with tenant_tx(db, scene.tenant.id) as conn:
        tenant = await get_tenant(conn, tenant_id=scene.tenant.id)
        assert tenant is not None
        period = Period(date.fromisoformat(start), date.fromisoformat(end), tenant.time_zone)
        return await figures.summarize(conn, period=period, **filters)


def _d(values: list[float]) -> dict[str, Any]:
    """A duration as the report gives it: count, average, and the discrete p50 and p90 (the smallest value
    with at least that share of the values at or below it)."""
    ordered = sorted(values)

    def disc(share: float) -> float:
        return next(v for i, v in enumerate(ordered, 1) if i / len(ordered) >= share)

    if not ordered:
        return {"count": 0, "average": None, "p50": None, "p90": None}
    return {"count": len(ordered), "average": sum(ordered) / len(ordered), "p50": disc(0.5), "p90": disc(0.9)}


def _figures(**given: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "queued": 0, "answered": 0, "answered_in_target": 0, "abandoned": 0, "short_abandoned": 0,
        "service_level": None, "abandon_rate": None, "closed": 0, "transfers_in": 0, "transfers_out": 0,
        "reroutes": 0, "reopened": 0,
    }  # fmt: skip
    durations = ("wait", "first_response", "agent_first_response", "handle", "resolution")
    return base | {name: _d([]) for name in durations} | {k: (_d(v) if k in durations else v) for k, v in given.items()}


async def test_every_figure_of_two_days_across_midnight_and_the_clock_change(db: Database, scene: Scene) -> None:
    summary = await _summary(db, scene, "2026-10-24", "2026-10-25")
    assert summary.unit == "hour"
    assert summary.starts_at == "2026-10-23T23:00:00+00:00"
    assert summary.ends_at == "2026-10-26T00:00:00+00:00"  # 49 hours: the 25th has 25

    assert summary.totals.model_dump() == _figures(
        queued=8, answered=4, answered_in_target=3, abandoned=2, short_abandoned=1,
        service_level=3 / (4 + 2 - 1), abandon_rate=2 / 8, closed=5, transfers_in=2, transfers_out=2,
        reroutes=1, reopened=1,
        wait=[30, 120, 120, 60], first_response=[150, 3000, 900], agent_first_response=[120, 2400, 60],
        handle=[1170, 8400, 960], resolution=[1200, 9000, 1800],
    )  # fmt: skip

    by_queue = {q.name: q for q in summary.queues}
    assert by_queue["First line"].sla_seconds == 60
    assert by_queue["First line"].figures.model_dump() == _figures(
        queued=3, answered=2, answered_in_target=1, service_level=1 / 2, abandon_rate=0.0, closed=2,
        transfers_in=1, transfers_out=2,
        wait=[30, 120], first_response=[150, 3000], agent_first_response=[120, 2400], handle=[1170, 8400],
        resolution=[1200, 9000],
    )  # fmt: skip
    assert by_queue['Billing, "VIP"'].figures.model_dump() == _figures(
        queued=5, answered=2, answered_in_target=2, abandoned=2, short_abandoned=1, service_level=2 / 3,
        abandon_rate=2 / 5, closed=3, transfers_in=1, reroutes=1, reopened=1,
        wait=[120, 60], first_response=[900], agent_first_response=[60], handle=[960], resolution=[1800],
    )  # fmt: skip

    by_agent = {a.agent_id: a for a in summary.agents}
    assert set(by_agent) == {scene.tenant.agent.id, scene.tenant.other_agent.id}
    a, b = by_agent[scene.tenant.agent.id], by_agent[scene.tenant.other_agent.id]
    assert a.figures.model_dump() == _figures(
        answered=2, answered_in_target=2, service_level=1.0, closed=2, transfers_in=1, reroutes=1,
        wait=[30, 120], first_response=[150, 3000], agent_first_response=[120, 2400], handle=[1170, 8400],
        resolution=[1200, 9000],
    )  # fmt: skip
    assert b.figures.model_dump() == _figures(
        answered=2, answered_in_target=1, service_level=0.5, closed=1, transfers_out=1,
        wait=[120, 60], first_response=[900], agent_first_response=[60], handle=[960], resolution=[1800],
    )  # fmt: skip
    # From 23:00 UTC on the 23rd: online 13 h, away 1 h, then offline (no socket) to the end, 35 h.
    assert a.presence.model_dump() == {"online": 13 * 3600.0, "away": 3600.0, "offline": 35 * 3600.0}
    assert b.presence.model_dump() == {"online": 0.0, "away": 0.0, "offline": 0.0}

    series = {point.bucket: point.figures for point in summary.series}
    assert len(summary.series) == 48  # 24 + 25 hours, the repeated 01:00 one bucket
    assert list(series)[:2] == ["2026-10-24T00:00", "2026-10-24T01:00"]
    assert list(series)[-1] == "2026-10-25T23:00"
    assert series["2026-10-24T23:00"].model_dump() == _figures(
        queued=1, answered=1, answered_in_target=1, service_level=1.0, abandon_rate=0.0,
        wait=[30], first_response=[150], agent_first_response=[120],
    )  # fmt: skip
    assert series["2026-10-25T00:00"].model_dump() == _figures(closed=1, handle=[1170], resolution=[1200])
    assert series["2026-10-25T01:00"].model_dump() == _figures(
        queued=1, answered=1, service_level=0.0, abandon_rate=0.0, transfers_in=1, transfers_out=1,
        wait=[120], first_response=[3000], agent_first_response=[2400],
    )  # fmt: skip
    assert series["2026-10-25T03:00"].model_dump() == _figures(closed=1, handle=[8400], resolution=[9000])
    assert series["2026-10-24T10:00"].model_dump() == _figures(
        queued=1, abandoned=1, short_abandoned=1, abandon_rate=1.0, closed=1
    )
    assert series["2026-10-25T09:00"].model_dump() == _figures(queued=1, reopened=1, abandon_rate=0.0)
    noon = series["2026-10-24T12:00"]
    assert (noon.queued, noon.answered, noon.closed, noon.reroutes) == (3, 2, 1, 1)
    assert series["2026-10-24T05:00"].model_dump() == _figures()


async def test_each_figure_counts_in_the_day_of_its_own_event(db: Database, scene: Scene) -> None:
    summary = await _summary(db, scene, "2026-10-24", "2026-10-26")
    assert summary.unit == "day"
    series = {point.bucket: point.figures for point in summary.series}
    assert list(series) == ["2026-10-24", "2026-10-25", "2026-10-26"]
    # c1 was queued and answered on the 24th and closed after midnight, on the 25th.
    assert (series["2026-10-24"].queued, series["2026-10-24"].closed) == (6, 3)
    assert (series["2026-10-25"].queued, series["2026-10-25"].closed) == (2, 2)
    assert series["2026-10-25"].handle.model_dump() == _d([1170, 8400])

    only_25th = await _summary(db, scene, "2026-10-25", "2026-10-25")
    assert only_25th.totals.model_dump() == _figures(
        queued=2, answered=1, service_level=0.0, abandon_rate=0.0, closed=2, transfers_in=1, transfers_out=1,
        reopened=1, wait=[120], first_response=[3000], agent_first_response=[2400], handle=[1170, 8400],
        resolution=[1200, 9000],
    )  # fmt: skip
    assert len(only_25th.series) == 24  # 25 hours, the repeated one merged


async def test_filters_by_queue_and_by_agent(db: Database, scene: Scene) -> None:
    billing = await _summary(db, scene, "2026-10-24", "2026-10-25", queue_id=scene.q2)
    assert [q.name for q in billing.queues] == ['Billing, "VIP"']
    assert billing.totals == billing.queues[0].figures
    only_b = await _summary(db, scene, "2026-10-24", "2026-10-25", agent_id=scene.tenant.other_agent.id)
    assert [a.agent_id for a in only_b.agents] == [scene.tenant.other_agent.id]
    assert only_b.totals == only_b.agents[0].figures
    assert only_b.totals.queued == 0  # waiting is no agent's


async def test_the_real_moves_write_the_segments_the_report_reads(
    database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    owner = await asyncpg.connect(database.owner_url)
    try:
        channel = await owner.fetchval(
            "insert into channels (tenant_id, phone_number_id, display_number, default_queue_id)"
            " values ($1, $2, '+351 556', $3) returning id",
            tenant.id,
            str(uuid.uuid4().int)[:15],
            tenant.queue_id,
        )
        traffic = Traffic(owner, tenant.id, channel)
        first = await traffic.open(tenant.queue_id, datetime.now().astimezone())
        second = await traffic.open(tenant.queue_id, datetime.now().astimezone())
        q2 = await owner.fetchval("insert into queues (tenant_id, name) values ($1, 'Other') returning id", tenant.id)
    finally:
        await owner.close()
    staff = Viewer(tenant_id=tenant.id, role="supervisor", user_id=tenant.supervisor.id)
    async with tenant_tx(db, tenant.id) as conn:
        await lifecycle.assign(conn, viewer=staff, conversation_id=first, agent_id=tenant.agent.id, force=False)
        await lifecycle.transfer_to_agent(
            conn, viewer=staff, conversation_id=first, agent_id=tenant.other_agent.id, force=True
        )
        await lifecycle.transfer_to_queue(conn, viewer=staff, conversation_id=first, queue_id=q2)
        await lifecycle.assign(conn, viewer=staff, conversation_id=second, agent_id=tenant.agent.id, force=False)
    # The agent went offline long ago: absence takes the second conversation back, a re-route.
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update users set status = 'offline', status_changed_at = now() - interval '1 hour' where id = $1",
            tenant.agent.id,
        )
        await conn.execute("update conversations set assigned_at = now() - interval '2 hours' where id = $1", second)
    async with tenant_tx(db, tenant.id) as conn:
        tenant_row = await get_tenant(conn, tenant_id=tenant.id)
        assert tenant_row is not None
        returned = await absence.requeue_from_absent(conn, EventBatch(tenant.id), tenant_row.settings, limit=10)
        assert returned == 1
        assert await unanswered.reroute_unanswered(conn, EventBatch(tenant.id), tenant_row.settings, limit=10) == 0
    async with tenant_tx(db, tenant.id) as conn:
        await lifecycle.close(conn, viewer=staff, conversation_id=first, reason="done")
        await lifecycle.reopen(conn, viewer=staff, conversation_id=first)
        rows = await conn.fetch(
            "select conversation_id, start_kind, queued, agent_id is not null as held, end_kind"
            " from conversation_segments order by conversation_id, started_at, id"
        )
    kinds = {
        c: [(r["start_kind"], r["queued"], r["held"], r["end_kind"]) for r in rows if r["conversation_id"] == c]
        for c in (first, second)
    }
    assert kinds[first] == [
        ("new", True, True, "transfer"),  # assigned to the agent, then handed to the other
        ("transfer", False, True, "transfer"),  # straight to the other agent, then to the queue
        ("transfer", True, False, "close"),
        ("reopen", True, False, None),
    ]
    assert kinds[second] == [("new", True, True, "reroute"), ("reroute", True, False, None)]


async def test_staff_read_the_report_and_agents_may_not(browsers: Browsers, scene: Scene) -> None:
    supervisor = await browsers.signed_in(scene.tenant.supervisor)
    answer = await supervisor.get("/api/reports/summary?from=2026-10-24&to=2026-10-25")
    assert answer.data["totals"]["queued"] == 8
    assert answer.data["time_zone"] == "Europe/Lisbon"
    assert len(answer.data["series"]) == 48
    agent = await browsers.signed_in(scene.tenant.agent)
    for path in ("summary", "conversations.csv", "queues.csv", "agents.csv", "series.csv"):
        refused = await agent.get(f"/api/reports/{path}?from=2026-10-24&to=2026-10-25")
        assert (refused.status, refused.code) == (403, "FORBIDDEN"), path


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-10-25&to=2026-10-24",  # backwards
        "from=2025-01-01&to=2026-01-02",  # 367 days
        "from=2026-10-24",  # no end
        "from=yesterday&to=2026-10-24",
        "from=2026-10-24&to=2026-10-25&queue_id=nope",
        "from=2026-10-24&to=2026-10-25&extra=1",
    ],
)
async def test_a_bad_range_is_refused_with_the_field(browsers: Browsers, scene: Scene, query: str) -> None:
    supervisor = await browsers.signed_in(scene.tenant.supervisor)
    for path in ("summary", "conversations.csv"):
        answer = await supervisor.get(f"/api/reports/{path}?{query}")
        assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), (path, answer.body)
        assert all(d["field"].startswith("query") for d in answer.body["error"]["details"])


def _read_csv(text: str) -> list[list[str]]:
    assert text.endswith("\r\n")
    return list(csv.reader(io.StringIO(text, newline="")))


async def test_the_conversations_csv_has_every_timestamp_quoted_and_defused(browsers: Browsers, scene: Scene) -> None:
    supervisor = await browsers.signed_in(scene.tenant.supervisor)
    response = await supervisor.client.get("/api/reports/conversations.csv?from=2026-10-24&to=2026-10-25")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert 'filename="conversations-2026-10-24-2026-10-25.csv"' in response.headers["Content-Disposition"]
    text = await response.text()
    # RFC 4180: the name with a comma, quotes and a line break is one quoted field, its quotes doubled.
    assert '"Silva, ""Zé""\r\nda Costa"' in text or '"Silva, ""Zé""\nda Costa"' in text
    rows = _read_csv(text)
    header, body = rows[0], rows[1:]
    assert header == list(export.CONVERSATION_COLUMNS)
    assert len(body) == 5
    by_name = {row[1]: dict(zip(header, row, strict=True)) for row in body}
    # A formula is text: a leading apostrophe.
    assert '\'=HYPERLINK("x")' in by_name
    c5 = by_name['Silva, "Zé"\nda Costa']
    assert c5["queue"] == 'Billing, "VIP"'
    assert c5["status"] == "waiting"
    assert c5["created_at"] == "2026-10-24T12:00:00+01:00"
    assert c5["enqueued_at"] == "2026-10-25T09:00:00+00:00"
    assert (c5["segments"], c5["reopens"], c5["transfers"], c5["reroutes"]) == ("4", "1", "1", "1")
    assert (c5["first_wait_seconds"], c5["first_response_seconds"], c5["agent_first_response_seconds"]) == (
        "120",
        "900",
        "60",
    )
    assert (c5["handle_seconds"], c5["resolution_seconds"]) == ("960", "1800")
    c4 = by_name['\'=HYPERLINK("x")']
    assert (c4["closed_at"], c4["close_reason"], c4["first_response_seconds"]) == (
        "2026-10-24T11:10:00+01:00",
        "done",
        "",
    )


async def test_the_aggregated_tables_as_csv(browsers: Browsers, scene: Scene) -> None:
    supervisor = await browsers.signed_in(scene.tenant.supervisor)
    queues = _read_csv((await supervisor.get("/api/reports/queues.csv?from=2026-10-24&to=2026-10-25")).body)
    assert queues[0][:5] == ["queue_id", "queue", "sla_seconds", "queued", "answered"]
    named = {row[1]: dict(zip(queues[0], row, strict=True)) for row in queues[1:]}
    assert set(named) == {"First line", 'Billing, "VIP"', "Total"}
    assert (named["Total"]["queued"], named["Total"]["service_level"], named["Total"]["wait_average_seconds"]) == (
        "8",
        "0.6",
        "82.5",
    )
    agents = _read_csv((await supervisor.get("/api/reports/agents.csv?from=2026-10-24&to=2026-10-25")).body)
    agent_rows = {row[0]: dict(zip(agents[0], row, strict=True)) for row in agents[1:]}
    assert agent_rows[str(scene.tenant.agent.id)]["online_seconds"] == "46800"
    series = _read_csv((await supervisor.get("/api/reports/series.csv?from=2026-10-24&to=2026-10-26")).body)
    assert [row[0] for row in series] == ["day", "2026-10-24", "2026-10-25", "2026-10-26"]


def test_cells_are_defused_and_numbers_kept() -> None:
    zone = Period(date(2026, 1, 1), date(2026, 1, 1), "UTC").zone
    assert [export.cell(v, zone) for v in ("=1+2", "+1", "-1", "@x", "\tx", "plain", 1.5, 2.0, -3, None)] == [
        "'=1+2",
        "'+1",
        "'-1",
        "'@x",
        "'\tx",
        "plain",
        "1.5",
        "2",
        "-3",
        "",
    ]
