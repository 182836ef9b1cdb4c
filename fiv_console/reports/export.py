"""The reports as CSV: one row per conversation, streamed from a cursor, and the aggregated tables.

RFC 4180: fields separated by commas, records by CRLF, a field with a comma, quote or line break quoted with
its quotes doubled. A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
leading `'`, so a spreadsheet shows a customer's name such as `=HYPERLINK(...)` as text and never runs it.
Times are ISO 8601 in the tenant's time zone with their offset; durations are seconds.

The conversations' rows come from a server-side cursor in the caller's transaction, a batch at a time, and
leave as chunks of about 64 KiB, so an export of a million rows holds one batch and one chunk in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fiv_console.db.pool import Connection
from fiv_console.reports.figures import Duration, Figures, Summary
from fiv_console.reports.period import Period

_RISKY_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_CHARACTERS = 64 * 1024
CURSOR_PREFETCH = 1000


def cell(value: Any, zone: ZoneInfo) -> str:
    """One value as CSV text, before quoting."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    text = str(value)
    if isinstance(value, str) and text.startswith(_RISKY_STARTS):
        return "'" + text
    return text


class _Lines:
    """Records into CSV text, quoted as RFC 4180 asks."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def __call__(self, record: Iterable[str]) -> str:
        self._writer.writerow(record)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text


def render(header: Sequence[str], rows: Iterable[Sequence[Any]], zone: ZoneInfo) -> str:
    """A small table, whole (the aggregated tables: a few hundred rows at most)."""
    lines = _Lines()
    return lines(header) + "".join(lines(cell(v, zone) for v in row) for row in rows)


CONVERSATION_COLUMNS = (
    "conversation_id", "contact_name", "contact_number", "queue", "agent", "status",
    "created_at", "enqueued_at", "assigned_at", "first_response_at", "sla_breached_at", "closed_at", "close_reason",
    "segments", "reopens", "transfers", "reroutes",
    "first_wait_seconds", "first_response_seconds", "agent_first_response_seconds", "handle_seconds",
    "resolution_seconds",
)  # fmt: skip


def _first(expression: str, condition: str, *, last: bool = False) -> str:
    order = "s.started_at desc, s.id desc" if last else "s.started_at, s.id"
    return f"(array_agg({expression} order by {order}) filter (where {condition}))[1]"


# Conversations created in the range ($1, $2), in that order; $3 a queue, $4 an agent (their current ones).
# The figures are each conversation's own, from its segments (one index range of them per conversation).
CONVERSATIONS_SQL = f"""
select c.id, coalesce(k.name, k.profile_name), k.wa_id, q.name, u.name, c.status,
       c.created_at, c.enqueued_at, c.assigned_at, c.first_response_at, c.sla_breached_at, c.closed_at,
       c.close_reason, f.*
from conversations c
join contacts k on k.tenant_id = c.tenant_id and k.id = c.contact_id
join queues q on q.tenant_id = c.tenant_id and q.id = c.queue_id
left join users u on u.tenant_id = c.tenant_id and u.id = c.agent_id
cross join lateral (
    select count(*) as segments,
           count(*) filter (where s.start_kind = 'reopen') as reopens,
           count(*) filter (where s.end_kind = 'transfer') as transfers,
           count(*) filter (where s.end_kind = 'reroute') as reroutes,
           {
    _first("extract(epoch from s.assigned_at - s.started_at)::float8", "s.queued and s.assigned_at is not null")
},
           {_first("extract(epoch from s.episode_reply_at - s.opened_at)::float8", "s.episode_reply_here")},
           {_first("extract(epoch from s.agent_reply_at - s.assigned_at)::float8", "s.agent_reply_at is not null")},
           {
    _first(
        "extract(epoch from s.ended_at - s.assigned_at)::float8",
        "s.end_kind = 'close' and s.assigned_at is not null",
        last=True,
    )
},
           {
    _first(
        "extract(epoch from s.ended_at - s.opened_at)::float8",
        "s.end_kind = 'close' and s.episode_reply_at is not null",
        last=True,
    )
}
    from conversation_segments s
    where s.tenant_id = c.tenant_id and s.conversation_id = c.id
) f
where c.created_at >= $1 and c.created_at < $2
  and ($3::uuid is null or c.queue_id = $3) and ($4::uuid is null or c.agent_id = $4)
order by c.created_at, c.id
"""


async def conversation_csv(
    conn: Connection, *, period: Period, queue_id: UUID | None, agent_id: UUID | None
) -> AsyncIterator[str]:
    """The header and one row per conversation, in chunks; inside the caller's transaction (a cursor needs
    one)."""
    zone, lines = period.zone, _Lines()
    chunk = [lines(CONVERSATION_COLUMNS)]
    size = len(chunk[0])
    cursor = conn.cursor(
        CONVERSATIONS_SQL, period.starts_at, period.ends_at, queue_id, agent_id, prefetch=CURSOR_PREFETCH
    )
    async for record in cursor:
        line = lines(cell(value, zone) for value in record.values())
        chunk.append(line)
        size += len(line)
        if size >= CHUNK_CHARACTERS:
            yield "".join(chunk)
            chunk, size = [], 0
    yield "".join(chunk)


_FIGURE_COLUMNS = (
    "queued", "answered", "answered_in_target", "service_level", "abandoned", "short_abandoned", "abandon_rate",
    "wait_average_seconds", "wait_p50_seconds", "wait_p90_seconds",
    "first_response_count", "first_response_average_seconds", "first_response_p50_seconds",
    "first_response_p90_seconds",
    "agent_first_response_count", "agent_first_response_average_seconds", "agent_first_response_p50_seconds",
    "agent_first_response_p90_seconds",
    "handled", "handle_average_seconds", "handle_p50_seconds", "handle_p90_seconds",
    "closed", "resolved", "resolution_average_seconds", "resolution_p50_seconds", "resolution_p90_seconds",
    "transfers_in", "transfers_out", "reroutes", "reopened",
)  # fmt: skip


def _duration(d: Duration, *, counted: bool) -> list[Any]:
    return ([d.count] if counted else []) + [d.average, d.p50, d.p90]


def _figure_cells(f: Figures) -> list[Any]:
    return [
        f.queued, f.answered, f.answered_in_target, f.service_level, f.abandoned, f.short_abandoned, f.abandon_rate,
        *_duration(f.wait, counted=False),
        *_duration(f.first_response, counted=True),
        *_duration(f.agent_first_response, counted=True),
        *_duration(f.handle, counted=True),
        f.closed, *_duration(f.resolution, counted=True),
        f.transfers_in, f.transfers_out, f.reroutes, f.reopened,
    ]  # fmt: skip


TABLES = ("queues", "agents", "series")


def table_csv(summary: Summary, table: str) -> str:
    """One of the summary's tables (`TABLES`), with a last row of the totals where it has rows to total."""
    zone = ZoneInfo(summary.time_zone)
    if table == "queues":
        rows = [[q.queue_id, q.name, q.sla_seconds, *_figure_cells(q.figures)] for q in summary.queues]
        rows.append(["", "Total", "", *_figure_cells(summary.totals)])
        return render(("queue_id", "queue", "sla_seconds", *_FIGURE_COLUMNS), rows, zone)
    if table == "agents":
        presence = ("online_seconds", "away_seconds", "offline_seconds")
        agent_rows = [
            [a.agent_id, a.name, *_figure_cells(a.figures), a.presence.online, a.presence.away, a.presence.offline]
            for a in summary.agents
        ]
        return render(("agent_id", "agent", *_FIGURE_COLUMNS, *presence), agent_rows, zone)
    rows = [[b.bucket, *_figure_cells(b.figures)] for b in summary.series]
    return render((summary.unit, *_FIGURE_COLUMNS), rows, zone)
