"""Benchmark of the reports: a month's summary on a busy tenant, and a 1,000,000-row CSV export streamed.

    python bench/reports.py [--conversations N] [--messages-each M] [--export-rows R] [--runs K]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or, when unset, the
embedded PostgreSQL in `FIV_DATA_DIR`, it makes a scratch database, migrates it and seeds, set-based as the
owner (triggers off while rows are copied in, as a restore would):

- the busy tenant: N conversations (100,000) in November 2026, M messages each (10: a million), 10 queues,
  50 agents and a supervisor; 2% still waiting, 3% assigned, the rest closed; one in ten handed to another
  agent before the close; the conversations' segments (sql/0016) built from them as the triggers would,
  first replies from the agents' messages; presence changes every 3 hours per agent;
- the export tenant: R conversations (1,000,000) in one month, each assigned and closed, with its segment.

Then `python -m fiv_console serve` runs on it. Measured, each K times (5), median and spread:

- `GET /api/reports/summary` for the month (all, one queue, one agent), over HTTP as the supervisor, and the
  same statements run directly as the server's role in a tenant transaction (the database's share);
- `GET /api/reports/conversations.csv` for the busy tenant's month and then the export tenant's million
  rows, read as fast as the client can, with the server's RSS sampled every 50 ms (psutil) before, at its
  peak during and after; the ceiling: the same rows produced by PostgreSQL alone (`COPY (the export's
  statement) TO STDOUT`, discarded as they arrive) on one connection of the server's role;
- `GET /health`, the server's own ceiling in the same run.

Prints a table, then one JSON line; the scratch database is dropped at the end. Not a test: nothing here
asserts a timing (the targets, a month under 1 s and an export's memory flat, are read off the table).
`--conversations 5000 --messages-each 2 --export-rows 50000 --runs 2` is a smoke of about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import asyncpg
import psutil
from _scratch import Server, measure_and_report, report_header, scratch_database, serve_env
from console_api import _FIRST, _LAST, _SEED_CONTACTS_SQL, _SEED_MESSAGES_SQL, _WORDS, PASSWORD, RARE_EVERY, RARE_WORD
from intake import child_process, free_port

from fiv_console.accounts.passwords import hash_password
from fiv_console.db.pool import create_database, tenant_tx
from fiv_console.reports import export, figures
from fiv_console.reports.period import Period

QUEUES = 10
AGENTS = 50
MONTH = ("2026-11-01", "2026-11-30")
RSS_SAMPLE_SECONDS = 0.05

# November 2026, evenly; waits of 0-5 min, handled for 5-65 min; 2% waiting, 3% assigned, the rest closed.
_SEED_CONVERSATIONS_SQL = """
insert into conversations (tenant_id, channel_id, contact_id, queue_id, agent_id, status, assigned_at, closed_at,
                           close_reason, created_at, enqueued_at, last_inbound_at, last_message_at, updated_at)
select $1, $2, k.id, ($3::uuid[])[1 + (k.g / 7) % $5],
       case when k.g % 100 < 2 then null else ($4::uuid[])[1 + (k.g / 100) % $6] end,
       case when k.g % 100 < 2 then 'waiting' when k.g % 100 < 5 then 'assigned' else 'closed' end,
       case when k.g % 100 >= 2 then k.at + make_interval(secs => k.g % 300) end,
       case when k.g % 100 >= 5 then k.at + make_interval(secs => k.g % 300 + 300 + (k.g * 13) % 3600) end,
       case when k.g % 100 >= 5 then 'done' end, k.at, k.at, k.at, k.at + interval '9 minutes', k.at
from (
    select id, (wa_id::bigint - 5511900000000)::int as g,
           timestamptz '2026-11-01 00:00+00' + make_interval(secs => ((wa_id::bigint * 7919) % (30 * 86400))::int) as at
    from contacts where tenant_id = $1
) k
"""
# What 0016's triggers write for such rows: one segment each, its agent's first reply from their messages.
_SEED_SEGMENTS_SQL = """
insert into conversation_segments (tenant_id, conversation_id, queue_id, agent_id, opened_at, start_kind, started_at,
                                   queued, assigned_at, agent_reply_at, episode_reply_at, episode_reply_by,
                                   episode_reply_here, ended_at, end_kind)
select c.tenant_id, c.id, c.queue_id, c.agent_id, c.enqueued_at, 'new', c.enqueued_at, true, c.assigned_at,
       r.at, r.at, case when r.at is not null then c.agent_id end, r.at is not null,
       c.closed_at, case when c.status = 'closed' then 'close' end
from conversations c
left join lateral (
    select greatest(min(m.created_at), c.assigned_at) as at from messages m
    where m.tenant_id = c.tenant_id and m.conversation_id = c.id and m.direction = 'outbound'
      and m.author_id is not null
) r on c.agent_id is not null
where c.tenant_id = $1
"""
# One closed conversation in ten was handed by its first agent to the next one, two minutes in.
_SEED_TRANSFERS_SQL = [
    """
    insert into conversation_segments (tenant_id, conversation_id, queue_id, agent_id, opened_at, start_kind,
                                       started_at, queued, assigned_at, agent_reply_at, episode_reply_at,
                                       episode_reply_by, ended_at, end_kind)
    select s.tenant_id, s.conversation_id, s.queue_id, s.agent_id, s.opened_at, 'transfer',
           s.assigned_at + interval '2 minutes', false, s.assigned_at + interval '2 minutes',
           greatest(s.agent_reply_at, s.assigned_at + interval '2 minutes'), s.episode_reply_at, s.episode_reply_by,
           s.ended_at, 'close'
    from conversation_segments s
    where s.tenant_id = $1 and s.end_kind = 'close' and s.agent_id is not null
      and hashtext(s.conversation_id::text) % 10 = 0
    """,
    """
    update conversation_segments s
    set ended_at = s.assigned_at + interval '2 minutes', end_kind = 'transfer', agent_id = ($2::uuid[])[1],
        agent_reply_at = null, episode_reply_here = false
    where s.tenant_id = $1 and s.start_kind = 'new' and s.end_kind = 'close' and s.agent_id is not null
      and hashtext(s.conversation_id::text) % 10 = 0
    """,
]
_SEED_PRESENCE_SQL = """
insert into agent_presence_log (tenant_id, user_id, status, connected, changed_at)
select $1, a, (array['online', 'away', 'online', 'offline'])[1 + (g + n) % 4], (g + n) % 4 <> 3,
       timestamptz '2026-10-31 21:00+00' + make_interval(hours => 3 * g)
from unnest($2::uuid[]) with ordinality as p(a, n), generate_series(0, 240) g
"""
# The export tenant: R conversations over October 2026, each assigned and closed; no messages.
_SEED_EXPORT_SQL = [
    """
    insert into contacts (tenant_id, wa_id, name)
    select $1, (5521900000000 + g)::text, 'Customer ' || g from generate_series(1, $2) g
    """,
    """
    insert into conversations (tenant_id, channel_id, contact_id, queue_id, agent_id, status, assigned_at,
                               closed_at, close_reason, created_at, enqueued_at, last_message_at, updated_at)
    select $1, $2, k.id, $3, $4, 'closed', k.at + interval '1 minute', k.at + interval '30 minutes', 'done',
           k.at, k.at, k.at, k.at
    from (select id, timestamptz '2026-10-01 00:00+00'
                     + make_interval(secs => ((wa_id::bigint * 7919) % (31 * 86400))::int) as at
          from contacts where tenant_id = $1) k
    """,
]


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: UUID
    queue_ids: list[UUID]
    agent_ids: list[UUID]
    supervisor_email: str
    slug: str


async def _people(
    conn: asyncpg.Connection, tenant_id: UUID, slug: str, password_hash: str, queues: int, agents: int
) -> Tenant:
    queue_ids = [uuid4() for _ in range(queues)]
    agent_ids = [uuid4() for _ in range(agents)]
    await conn.execute("insert into tenants (id, name, slug) values ($1, $2, $2)", tenant_id, slug)
    await conn.executemany(
        "insert into queues (id, tenant_id, name) values ($1, $2, $3)",
        [(q, tenant_id, f"Queue {n}") for n, q in enumerate(queue_ids)],
    )
    people = [(a, f"agent{n}@{slug}.example", f"Agent {n}", "agent") for n, a in enumerate(agent_ids)]
    people.append((uuid4(), f"supervisor@{slug}.example", "Supervisor", "supervisor"))
    await conn.executemany(
        "insert into users (id, tenant_id, email, name, role, password_hash) values ($1, $2, $3, $4, $5, $6)",
        [(p[0], tenant_id, *p[1:], password_hash) for p in people],
    )
    await conn.executemany(
        "insert into queue_members (tenant_id, queue_id, user_id) values ($1, $2, $3)",
        [(tenant_id, queue_ids[n % queues], a) for n, a in enumerate(agent_ids)],
    )
    return Tenant(tenant_id, queue_ids, agent_ids, f"supervisor@{slug}.example", slug)


async def seed(owner_url: str, args: argparse.Namespace) -> tuple[Tenant, Tenant, float]:
    started = time.monotonic()
    password_hash = hash_password(PASSWORD)
    conn = await asyncpg.connect(owner_url)
    try:
        async with conn.transaction():
            await conn.execute("set local session_replication_role = replica")
            busy = await _people(conn, uuid4(), "busy", password_hash, QUEUES, AGENTS)
            channel = uuid4()
            await conn.execute(
                "insert into channels (id, tenant_id, phone_number_id, display_number, default_queue_id)"
                " values ($1, $2, '100200300', '+55 11 4000-0000', $3)",
                channel,
                busy.tenant_id,
                busy.queue_ids[0],
            )
            await conn.execute(_SEED_CONTACTS_SQL, busy.tenant_id, _FIRST, _LAST, args.conversations)
            await conn.execute(
                _SEED_CONVERSATIONS_SQL, busy.tenant_id, channel, busy.queue_ids, busy.agent_ids, QUEUES, AGENTS
            )
            await conn.execute(_SEED_MESSAGES_SQL, busy.tenant_id, args.messages_each, RARE_EVERY, _WORDS, RARE_WORD)
            await conn.execute(_SEED_SEGMENTS_SQL, busy.tenant_id)
            await conn.execute(_SEED_TRANSFERS_SQL[0], busy.tenant_id)
            await conn.execute(_SEED_TRANSFERS_SQL[1], busy.tenant_id, busy.agent_ids)
            await conn.execute(_SEED_PRESENCE_SQL, busy.tenant_id, busy.agent_ids)

            exporting = await _people(conn, uuid4(), "export", password_hash, 1, 1)
            export_channel = uuid4()
            await conn.execute(
                "insert into channels (id, tenant_id, phone_number_id, display_number, default_queue_id)"
                " values ($1, $2, '100200301', '+55 21 4000-0000', $3)",
                export_channel,
                exporting.tenant_id,
                exporting.queue_ids[0],
            )
            await conn.execute(_SEED_EXPORT_SQL[0], exporting.tenant_id, args.export_rows)
            await conn.execute(
                _SEED_EXPORT_SQL[1],
                exporting.tenant_id,
                export_channel,
                exporting.queue_ids[0],
                exporting.agent_ids[0],
            )
            await conn.execute(_SEED_SEGMENTS_SQL, exporting.tenant_id)
        await conn.execute("vacuum analyze")
    finally:
        await conn.close()
    return busy, exporting, time.monotonic() - started


def _utc_period(start: str, end: str) -> Period:
    return Period(date.fromisoformat(start), date.fromisoformat(end), "UTC")


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def signed_in(base: str, tenant: Tenant) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(
        base_url=base, timeout=aiohttp.ClientTimeout(total=1800), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )
    body = {"workspace": tenant.slug, "email": tenant.supervisor_email, "password": PASSWORD}
    async with session.post("/api/auth/login", json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"sign-in: {response.status} {await response.text()}")
    return session


async def timed_get(session: aiohttp.ClientSession, path: str) -> float:
    started = time.perf_counter()
    async with session.get(path) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {await response.text()}")
    return (time.perf_counter() - started) * 1000


async def summary_in_database(app_url: str, tenant_id: UUID, runs: int, **filters: Any) -> dict[str, Any]:
    """`figures.summarize` called directly as the server's role (no HTTP): what the database takes of the
    request, in wall time and in CPU time of the PostgreSQL backends (the machine is shared; CPU is not)."""
    db = await create_database(app_url, min_size=2, max_size=2, acquire_timeout=10, command_timeout=600)
    period = _utc_period(*MONTH)
    times, cpu = [], []
    try:
        async with db.pool.acquire() as conn:
            pids = await conn.fetch(
                "select pid from pg_stat_activity where datname = current_database() and usename = current_user"
            )
        backends = [psutil.Process(r["pid"]) for r in pids]

        def used() -> float:
            return sum(sum(p.cpu_times()[:2]) for p in backends)

        for _ in range(runs):
            before, started = used(), time.perf_counter()
            await figures.summarize(db, tenant_id=tenant_id, period=period, **filters)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((used() - before) * 1000)
    finally:
        await db.pool.close()
    return spread(times) | {"cpu_ms": spread(cpu)}


async def copy_ceiling(app_url: str, tenant_id: UUID, start: str, end: str) -> dict[str, float]:
    """The export's rows produced by PostgreSQL alone: `COPY (statement) TO STDOUT` as CSV, discarded."""
    db = await create_database(app_url, min_size=1, max_size=1, acquire_timeout=10, command_timeout=1800)
    period = _utc_period(start, end)
    received = 0

    async def sink(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    try:
        async with tenant_tx(db, tenant_id) as conn:
            started = time.perf_counter()
            await conn.copy_from_query(
                export.CONVERSATIONS_SQL, period.starts_at, period.ends_at, None, None, output=sink, format="csv"
            )
            seconds = time.perf_counter() - started
    finally:
        await db.pool.close()
    return {"seconds": seconds, "bytes": received}


async def streamed_export(session: aiohttp.ClientSession, path: str, pid: int) -> dict[str, float]:
    """The CSV read as fast as the client can, with the server's RSS sampled meanwhile."""
    process = psutil.Process(pid)
    before = process.memory_info().rss
    peak = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(RSS_SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample())
    rows = size = 0
    started = time.perf_counter()
    first_byte = None
    async with session.get(path) as response:
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {await response.text()}")
        async for chunk in response.content.iter_chunked(256 * 1024):
            if first_byte is None:
                first_byte = time.perf_counter() - started
            size += len(chunk)
            rows += chunk.count(b"\r\n")
    seconds = time.perf_counter() - started
    done.set()
    await sampler
    await asyncio.sleep(1)
    after = process.memory_info().rss
    return {
        "rows": rows - 1,
        "bytes": size,
        "seconds": seconds,
        "rows_per_s": (rows - 1) / seconds,
        "first_byte_s": first_byte or 0.0,
        "rss_before_mib": before / 2**20,
        "rss_peak_mib": peak / 2**20,
        "rss_after_mib": after / 2**20,
    }


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    async with scratch_database(server, "fiv_bench_reports") as scratch:
        busy, exporting, seed_seconds = await seed(scratch.owner_url, args)
        print(f"seeded in {seed_seconds:.0f} s", file=sys.stderr)
        database = {
            "month, all": await summary_in_database(scratch.app_url, busy.tenant_id, args.runs),
            "month, one queue": await summary_in_database(
                scratch.app_url, busy.tenant_id, args.runs, queue_id=busy.queue_ids[3]
            ),
            "month, one agent": await summary_in_database(
                scratch.app_url, busy.tenant_id, args.runs, agent_id=busy.agent_ids[7]
            ),
        }
        copies = {
            "busy month": await copy_ceiling(scratch.app_url, busy.tenant_id, *MONTH),
            "export": await copy_ceiling(scratch.app_url, exporting.tenant_id, "2026-10-01", "2026-10-31"),
        }
        port = free_port()
        env = serve_env(scratch.owner_url, HOST="127.0.0.1", PORT=str(port))
        command = [sys.executable, "-m", "fiv_console", "serve"]
        http: dict[str, dict[str, float]] = {}
        exports: dict[str, dict[str, float]] = {}
        async with child_process("fiv-console serve", command, env, port) as child:
            base = child.url.split("/webhook")[0]
            supervisor = await signed_in(base, busy)
            exporter = await signed_in(base, exporting)
            month = f"from={MONTH[0]}&to={MONTH[1]}"
            try:
                paths = {
                    "health (ceiling)": "/health",
                    "month, all": f"/api/reports/summary?{month}",
                    "month, one queue": f"/api/reports/summary?{month}&queue_id={busy.queue_ids[3]}",
                    "month, one agent": f"/api/reports/summary?{month}&agent_id={busy.agent_ids[7]}",
                }
                for name, path in paths.items():
                    await timed_get(supervisor, path)  # warm: plans, caches
                    http[name] = spread([await timed_get(supervisor, path) for _ in range(args.runs)])
                    print(f"  {name}: median {http[name]['median']:.0f} ms", file=sys.stderr)
                exports["busy month"] = await streamed_export(
                    supervisor, f"/api/reports/conversations.csv?{month}", child.pid
                )
                exports["export"] = await streamed_export(
                    exporter, "/api/reports/conversations.csv?from=2026-10-01&to=2026-10-31", child.pid
                )
                for name, result in exports.items():
                    print(f"  export {name}: {result['rows']:,} rows in {result['seconds']:.1f} s", file=sys.stderr)
            finally:
                await supervisor.close()
                await exporter.close()
        version = scratch.postgres_version
    return {
        **report_header("reports", server, version, load_before),
        "conversations": args.conversations,
        "messages": args.conversations * args.messages_each,
        "export_rows": args.export_rows,
        "runs": args.runs,
        "seed_seconds": seed_seconds,
        "summary_http_ms": http,
        "summary_database_ms": database,
        "exports": exports,
        "copy_ceiling": copies,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"reports on {report['server']} PostgreSQL {report['postgres']}, {report['cpus']} cpus; "
        f"{report['conversations']:,} conversations, {report['messages']:,} messages in the month; "
        f"export tenant {report['export_rows']:,} conversations; {report['runs']} runs each"
    )
    print(f"{'summary':<20} {'HTTP ms (median, min-max)':>28} {'database ms (median, min-max), CPU ms':>40}")
    for name, r in report["summary_http_ms"].items():
        d = report["summary_database_ms"].get(name)
        in_db = f"{d['median']:.0f} ({d['min']:.0f}-{d['max']:.0f}), cpu {d['cpu_ms']['median']:.0f}" if d else "-"
        print(f"{name:<20} {r['median']:>14.1f} ({r['min']:.1f}-{r['max']:.1f}) {in_db:>40}")
    print(f"{'export':<12} {'rows':>10} {'s':>7} {'rows/s':>9} {'RSS MiB before/peak/after':>27} {'COPY s':>8}")
    for name, r in report["exports"].items():
        rss = f"{r['rss_before_mib']:.0f} / {r['rss_peak_mib']:.0f} / {r['rss_after_mib']:.0f}"
        copy = report["copy_ceiling"][name]["seconds"]
        print(f"{name:<12} {r['rows']:>10,} {r['seconds']:>7.1f} {r['rows_per_s']:>9,.0f} {rss:>27} {copy:>8.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000, help="the busy tenant's month (100000)")
    parser.add_argument("--messages-each", type=int, default=10, help="messages per conversation (10)")
    parser.add_argument("--export-rows", type=int, default=1_000_000, help="the export tenant's (1000000)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each summary (5)")
    args = parser.parse_args()
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
