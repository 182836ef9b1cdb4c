"""Reports: `GET /api/reports/summary` (the figures) and the CSV exports under `/api/reports/*.csv`.

Staff only. The summary runs its statements on connections of its own (`figures.summarize`), so none of
these holds the request's transaction. The conversations' CSV is streamed from a cursor inside a transaction of its own
(`transaction=False`), chunk by chunk with the client's pace setting the pace: a client that stops reading
holds its connection and one chunk, never the whole export. Failures before the first byte are envelopes;
after it only the connection can be cut, so the client sees a truncated file rather than a whole-looking one.
"""

from __future__ import annotations

from aiohttp import web

from fiv_console.accounts import tenants
from fiv_console.keys import database_key
from fiv_console.reports import export, figures
from fiv_console.reports.period import Period, ReportQuery
from fiv_console.web.api.routing import STAFF, ApiCall, NoInput, RouteTable

routes = RouteTable()

_TAG = "reports"


async def _period(call: ApiCall[NoInput, ReportQuery]) -> Period:
    async with call.transaction() as conn:
        tenant = await tenants.get_tenant(conn, tenant_id=call.caller.tenant_id)
    assert tenant is not None, "the caller's tenant exists"
    return Period.of(call.query, tenant.time_zone)


async def _summary(call: ApiCall[NoInput, ReportQuery], period: Period) -> figures.Summary:
    return await figures.summarize(
        call.request.app[database_key],
        tenant_id=call.caller.tenant_id,
        period=period,
        queue_id=call.query.queue_id,
        agent_id=call.query.agent_id,
    )


@routes.route(
    "GET", "/api/reports/summary", roles=STAFF,
    summary="A date range's figures in the tenant's time zone: totals, by queue, by agent (with presence time), "
    "and over time (hours up to two days, else days); definitions in docs/reports.md",
    tag=_TAG, query=ReportQuery, response=figures.Summary, transaction=False,
)  # fmt: skip
async def get_report_summary(call: ApiCall[NoInput, ReportQuery]) -> figures.Summary:
    return await _summary(call, await _period(call))


def _attachment(name: str, period: Period) -> web.StreamResponse:
    filename = f"{name}-{period.start.isoformat()}-{period.end.isoformat()}.csv"
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        }
    )
    response.enable_chunked_encoding()
    return response


@routes.route(
    "GET", "/api/reports/conversations.csv", roles=STAFF,
    summary="One CSV row per conversation created in the range, with every timestamp and its figures (streamed)",
    tag=_TAG, query=ReportQuery, transaction=False, stream_answer="text/csv",
)  # fmt: skip
async def get_report_conversations_csv(call: ApiCall[NoInput, ReportQuery]) -> web.StreamResponse:
    period = await _period(call)
    response = _attachment("conversations", period)
    async with call.transaction() as conn:
        chunks = export.conversation_csv(
            conn, period=period, queue_id=call.query.queue_id, agent_id=call.query.agent_id
        )
        first = await anext(chunks)
        await response.prepare(call.request)
        await response.write(first.encode())
        async for chunk in chunks:
            await response.write(chunk.encode())
    await response.write_eof()
    return response


async def _table(call: ApiCall[NoInput, ReportQuery], table: str) -> web.StreamResponse:
    period = await _period(call)
    summary = await _summary(call, period)
    response = _attachment(table, period)
    await response.prepare(call.request)
    await response.write(export.table_csv(summary, table).encode())
    await response.write_eof()
    return response


@routes.route(
    "GET", "/api/reports/queues.csv", roles=STAFF,
    summary="The report's table by queue as CSV, with a last row of the totals",
    tag=_TAG, query=ReportQuery, transaction=False, stream_answer="text/csv",
)  # fmt: skip
async def get_report_queues_csv(call: ApiCall[NoInput, ReportQuery]) -> web.StreamResponse:
    return await _table(call, "queues")


@routes.route(
    "GET", "/api/reports/agents.csv", roles=STAFF,
    summary="The report's table by agent as CSV, with their time online, away and offline",
    tag=_TAG, query=ReportQuery, transaction=False, stream_answer="text/csv",
)  # fmt: skip
async def get_report_agents_csv(call: ApiCall[NoInput, ReportQuery]) -> web.StreamResponse:
    return await _table(call, "agents")


@routes.route(
    "GET", "/api/reports/series.csv", roles=STAFF,
    summary="The report's figures per hour or day as CSV",
    tag=_TAG, query=ReportQuery, transaction=False, stream_answer="text/csv",
)  # fmt: skip
async def get_report_series_csv(call: ApiCall[NoInput, ReportQuery]) -> web.StreamResponse:
    return await _table(call, "series")
