"""Reports: known traffic at chosen times, every figure checked against values computed by hand.

The traffic is written as the owner with explicit times, in the same columns the domain's statements set
(status, queue, agent, assigned_at, closed_at, enqueued_at, updated_at; a reply queued then sent), so the
triggers of sql/0016 record segments as they do for the server, at those times. The tenant is in
Europe/Lisbon, and the range crosses midnight and the end of summer time (2026-10-25 02:00 WEST -> 01:00
WET). A second test moves conversations through the real domain functions and checks the segments'
kinds; the API tests check roles, validation and the CSV exports (quoting, formula injection).
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from fiv_console.access import Viewer
from fiv_console.accounts.tenants import get_tenant
from fiv_console.assignment import absence, unanswered
from fiv_console.conversations import lifecycle
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.events import EventBatch
from fiv_console.reports import export, figures, presence
from fiv_console.reports.period import Period
from tests.api import Browsers, TenantPeople
from tests.conftest import TestDatabase
from tests.report_traffic import Scene, Traffic, scene

__all__ = ["scene"]


async def _summary(db: Database, scene: Scene, start: str, end: str, **filters: Any) -> figures.Summary:
    async with tenant_tx(db, scene.tenant.id) as conn:
        tenant = await get_tenant(conn, tenant_id=scene.tenant.id)
    assert tenant is not None
    period = Period(date.fromisoformat(start), date.fromisoformat(end), tenant.time_zone)
    return await figures.summarize(db, tenant_id=scene.tenant.id, period=period, **filters)


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
    nothing = await _summary(db, scene, "2000-01-01", "2000-01-01", queue_id=uuid.uuid4())
    assert (nothing.totals.model_dump(), nothing.queues, nothing.agents) == (_figures(), [], [])


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


# A year of traffic, 20 conversations a day, each queued, assigned and closed: a month is a twelfth of it,
# so a plan that reads the month through the indexes is the planner's own choice, not a forced one.
_YEAR_SQL = """
with made as (
    insert into contacts (tenant_id, wa_id)
    select $1, (5511800000000 + g)::text from generate_series(1, $2) g
    returning id, (wa_id::bigint - 5511800000000)::int as g
)
insert into conversations (tenant_id, channel_id, contact_id, queue_id, agent_id, status, created_at, enqueued_at,
                           assigned_at, closed_at, close_reason, last_message_at)
select $1, $3, m.id, $4, $5, 'closed', t, t, t + interval '1 minute', t + interval '20 minutes', 'done', t
from made m, lateral (select timestamptz '2026-01-01 00:00+00' + make_interval(mins => m.g * 72) as t) s
"""
_PRESENCE_YEAR_SQL = """
insert into agent_presence_log (tenant_id, user_id, status, connected, changed_at)
select $1, $2, case when g % 2 = 0 then 'online' else 'away' end, true,
       timestamptz '2026-01-01 00:00+00' + make_interval(hours => g)
from generate_series(1, 8760) g
"""


def _plan_scans(document: Any) -> set[str]:
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node or node["Node Type"] == "Bitmap Index Scan":
            found.add(f"{node.get('Relation Name', '')}:{node['Node Type']}:{node.get('Index Name', '')}")
        for child in node.get("Plans", []):
            walk(child)

    walk((orjson.loads(document) if isinstance(document, str) else document)[0]["Plan"])
    return found


async def test_a_months_report_reads_indexes_as_the_server_role(
    database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    owner = await asyncpg.connect(database.owner_url)
    try:
        channel = await owner.fetchval(
            "insert into channels (tenant_id, phone_number_id, display_number, default_queue_id)"
            " values ($1, $2, '+1 555', $3) returning id",
            tenant.id,
            str(uuid.uuid4().int)[:15],
            tenant.queue_id,
        )
        await owner.execute(_YEAR_SQL, tenant.id, 7300, channel, tenant.queue_id, tenant.agent.id)
        await owner.execute(_PRESENCE_YEAR_SQL, tenant.id, tenant.agent.id)
        await owner.execute("analyze conversations, conversation_segments, agent_presence_log, users")
    finally:
        await owner.close()
    period = Period(date(2026, 3, 1), date(2026, 3, 31), "UTC")
    async with tenant_tx(db, tenant.id) as conn:
        summary_plans = [
            _plan_scans(
                await conn.fetchval(
                    f"explain (format json) {statement}",
                    period.starts_at,
                    period.ends_at,
                    None,
                    None,
                    "day",
                    "UTC",
                )
            )
            for statement in (figures.COUNTS_SQL, figures.PERCENTILES_SQL)
        ]
        export_plan = _plan_scans(
            await conn.fetchval(
                f"explain (format json) {export.CONVERSATIONS_SQL}", period.starts_at, period.ends_at, None, None
            )
        )
        presence_plan = _plan_scans(
            await conn.fetchval(
                f"explain (format json) {presence.PRESENCE_SQL}", period.starts_at, period.ends_at, None, None
            )
        )
    summary = await figures.summarize(db, tenant_id=tenant.id, period=period)
    assert summary.totals.queued == 620  # 31 days of 20
    for summary_plan in summary_plans:
        segments = {scan for scan in summary_plan if scan.startswith("conversation_segments:")}
        assert not any(":Seq Scan:" in scan for scan in segments), summary_plan
        bitmaps = {scan.split(":")[2] for scan in summary_plan if ":Bitmap Index Scan:" in scan}
        assert {
            "conversation_segments_started_idx",
            "conversation_segments_assigned_idx",
            "conversation_segments_agent_reply_idx",
            "conversation_segments_episode_reply_idx",
            "conversation_segments_ended_idx",
        } <= bitmaps, summary_plan
    assert not any(scan.startswith("conversations:Seq Scan") for scan in export_plan), export_plan
    assert "conversation_segments:Index Scan:conversation_segments_conversation_idx" in export_plan, export_plan
    assert not any(scan.startswith("agent_presence_log:Seq Scan") for scan in presence_plan), presence_plan


async def test_the_page_is_for_staff(browsers: Browsers, tenant: TenantPeople) -> None:
    anonymous = await browsers.new()
    signed_out = await anonymous.client.get("/reports", allow_redirects=False)
    assert (signed_out.status, signed_out.headers["Location"]) == (302, "/login?next=/reports")
    agent = await browsers.signed_in(tenant.agent)
    refused = await agent.client.get("/reports")
    assert refused.status == 403
    for person in (tenant.supervisor, tenant.admin):
        staff = await browsers.signed_in(person)
        page = await staff.client.get("/reports")
        assert page.status == 200
        html = await page.text()
        assert 'src="/static/reports.js' in html
        assert 'aria-current="page"' in html.split('href="/reports"')[1].split(">")[0]
