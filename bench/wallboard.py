"""Benchmark of the wallboard on one busy tenant: the board's server time, and its pushes under traffic.

    python bench/wallboard.py [--conversations N] [--messages-each M] [--reads R] [--seconds S] [--movers C]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or, when unset, the
embedded PostgreSQL in `FIV_DATA_DIR`, it makes a scratch database and seeds the tenant `console_api.py`
seeds (N conversations, 100,000, of M messages each, 10: a million; 10 queues, 50 agents), then what the
triggers would have kept had the rows come in one by one: the counters of migrations 0007 and 0015 (today's
figures from the conversations closed and assigned today) and a few hundred deltas not folded yet, as
between two folds under traffic. Then:

1. the board read in-process as the server role (`wallboard.board.read` in a tenant transaction), R times
   (2,000): its own `server_ms`, and the whole transaction's time, against a bare pooled tenant transaction
   (`select 1`) of the same run, the ceiling;
2. `python -m fiv_console serve` on it: `GET /api/wallboard` as the supervisor R/4 times, one at a time,
   its `server_ms` and the round trip, against `/health` of the same server;
3. the push: a supervisor's socket watches the board while C clients (8) move conversations as fast as the
   server answers (assign, close, reopen) for S seconds (10): moves per second, `queue.stats` frames per
   second and the gaps between them, their size, and how long after the last move its push came.

It prints a table and one JSON line; the scratch database is dropped at the end. Not a test: nothing here
asserts a timing (the target, at most 5 ms of server time per board and at most one push a second per
tenant, is read off the table).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import orjson
from _scratch import Server, measure_and_report, report_header, scratch_database, serve_env
from console_api import seed, signed_in
from intake import child_process, free_port

from fiv_console.db.pool import Database, create_database, tenant_tx
from fiv_console.wallboard import board

MOVERS = 8
# Today's figures as the trigger of 0015 would have counted them (the tenant is in UTC).
_SEED_COUNTERS_SQL = [
    """
    insert into assignment_counters (tenant_id, kind, subject_id, value)
    select tenant_id, 'queue_waiting', queue_id, count(*) from conversations
    where tenant_id = $1 and status = 'waiting' group by tenant_id, queue_id
    union all
    select tenant_id, 'queue_open', queue_id, count(*) from conversations
    where tenant_id = $1 and status = 'assigned' group by tenant_id, queue_id
    union all
    select tenant_id, 'agent_open', agent_id, count(*) from conversations
    where tenant_id = $1 and status = 'assigned' group by tenant_id, agent_id
    """,
    """
    insert into wallboard_day_counters (tenant_id, day, kind, subject_id, value)
    select tenant_id, current_date, kind, subject_id, sum(value) from (
        select tenant_id, 'answered' as kind, queue_id as subject_id, 1::bigint as value from conversations
        where tenant_id = $1 and assigned_at::date = current_date
        union all
        select tenant_id, 'wait_ms', queue_id, 60000 from conversations
        where tenant_id = $1 and assigned_at::date = current_date
        union all
        select tenant_id, 'answered_in_sla', queue_id, 1 from conversations
        where tenant_id = $1 and assigned_at::date = current_date and hashtext(id::text) % 5 <> 0
        union all
        select tenant_id, 'closed', queue_id, 1 from conversations
        where tenant_id = $1 and closed_at::date = current_date
        union all
        select tenant_id, 'handled', agent_id, 1 from conversations
        where tenant_id = $1 and closed_at::date = current_date
    ) today group by tenant_id, kind, subject_id
    """,
    # Deltas appended since the last fold: a few seconds of traffic on every queue.
    """
    insert into wallboard_day_counter_deltas (tenant_id, day, kind, subject_id, delta)
    select $1, current_date, 'closed', q.id, 1 from queues q, generate_series(1, 30) where q.tenant_id = $1
    """,
    """
    insert into assignment_counter_deltas (tenant_id, kind, subject_id, delta)
    select $1, 'queue_waiting', q.id, 1 from queues q, generate_series(1, 30) where q.tenant_id = $1
    """,
]


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": ordered[-1]}


async def in_process(app_url: str, tenant_id: UUID, reads: int) -> dict[str, Any]:
    db: Database = await create_database(app_url, min_size=1, max_size=1, acquire_timeout=10, command_timeout=60)
    try:
        ceiling: list[float] = []
        server: list[float] = []
        whole: list[float] = []
        size = 0
        for _ in range(reads // 10):  # warm the connection's plans
            async with tenant_tx(db, tenant_id) as conn:
                await board.read(conn)
        for _ in range(reads):
            started = time.perf_counter()
            async with tenant_tx(db, tenant_id) as conn:
                await conn.fetchval("select 1")
            ceiling.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            async with tenant_tx(db, tenant_id) as conn:
                shown = await board.read(conn)
            whole.append((time.perf_counter() - started) * 1000)
            server.append(shown.server_ms)
            size = len(shown.model_dump_json())
        return {
            "ceiling_tx": percentiles(ceiling),
            "board_server_ms": percentiles(server),
            "board_tx": percentiles(whole),
            "board_bytes": size,
            "queues": len(shown.queues),
            "agents": len(shown.agents),
        }
    finally:
        await db.pool.close()


async def over_http(session: aiohttp.ClientSession, reads: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, path in (("health (ceiling)", "/health"), ("GET /api/wallboard", "/api/wallboard")):
        round_trips: list[float] = []
        server: list[float] = []
        for n in range(reads + reads // 10):
            started = time.perf_counter()
            async with session.get(path) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{path}: {response.status}")
            if n < reads // 10:
                continue  # warm-up
            round_trips.append((time.perf_counter() - started) * 1000)
            if path == "/api/wallboard":
                server.append(orjson.loads(body)["data"]["server_ms"])
        results[name] = {"round_trip": percentiles(round_trips)}
        if server:
            results[name]["server_ms"] = percentiles(server)
    return results


async def pushes(
    base: str, supervisor: aiohttp.ClientSession, owner_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    conn = await asyncpg.connect(owner_url)
    try:
        waiting = [
            r["id"] for r in await conn.fetch("select id from conversations where status = 'waiting' limit 2000")
        ]
        agent_id = await conn.fetchval("select id from users where role = 'agent' order by email limit 1")
    finally:
        await conn.close()
    loop = asyncio.get_running_loop()
    frames: list[tuple[float, int]] = []
    moves = 0
    last_move = 0.0
    async with supervisor.ws_connect(f"{base}/ws", origin=base) as ws:
        hello = orjson.loads((await ws.receive(timeout=10)).data)
        await ws.send_str(orjson.dumps({"type": "resume", "last_seq": hello["data"]["last_seq"]}).decode())
        await ws.send_str(orjson.dumps({"type": "wallboard"}).decode())

        async def read_frames() -> None:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    return
                if orjson.loads(message.data)["type"] == "queue.stats":
                    frames.append((loop.time(), len(message.data)))

        reader = asyncio.create_task(read_frames())
        await asyncio.sleep(2.0)  # the whole board first
        frames.clear()
        started = loop.time()
        deadline = started + args.seconds

        async def mover(share: list[UUID]) -> None:
            nonlocal moves, last_move
            while loop.time() < deadline:
                for conversation_id in share:
                    if loop.time() >= deadline:
                        return
                    for path, body in (
                        ("assign", {"agent_id": str(agent_id), "force": True}),
                        ("close", {"reason": "bench"}),
                        ("reopen", None),
                    ):
                        async with supervisor.post(
                            f"/api/conversations/{conversation_id}/{path}", json=body, headers={"X-CSRF-Token": csrf}
                        ) as response:
                            await response.read()
                            if response.status != 200:
                                raise RuntimeError(f"{path}: {response.status}")
                        moves += 1
                        last_move = loop.time()

        me = await (await supervisor.get("/api/me")).json()
        csrf = me["data"]["csrf_token"]
        await asyncio.gather(*(mover(waiting[n :: args.movers]) for n in range(args.movers)))
        await asyncio.sleep(2.0)  # the last moves' push
        reader.cancel()
    # Pushes while the moves went on (the last one's may come up to a second after them).
    during = [at for at, _ in frames if at <= deadline]
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(during)]
    return {
        "seconds": args.seconds,
        "movers": args.movers,
        "moves": moves,
        "moves_per_s": moves / args.seconds,
        "pushes": len(during),
        "pushes_per_s": len(during) / args.seconds,
        "gap_ms": percentiles(gaps) | {"min_ms": min(gaps)} if gaps else None,
        "frame_bytes_median": statistics.median(size for _, size in frames) if frames else None,
        "last_move_to_push_ms": (frames[-1][0] - last_move) * 1000 if frames else None,
    }


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    async with scratch_database(server, "fiv_bench_wallboard") as scratch:
        seeded = await seed(scratch.owner_url, args.conversations, args.messages_each)
        conn = await asyncpg.connect(scratch.owner_url)
        try:
            await conn.execute("select set_config('app.current_tenant', $1, false)", str(seeded.tenant_id))
            for statement in _SEED_COUNTERS_SQL:
                await conn.execute(statement, seeded.tenant_id)
            await conn.execute("vacuum analyze")
        finally:
            await conn.close()
        print(f"seeded in {seeded.seconds:.0f} s", file=sys.stderr)
        local = await in_process(scratch.app_url, seeded.tenant_id, args.reads)
        print(f"  in-process board: p50 {local['board_server_ms']['p50_ms']:.2f} ms", file=sys.stderr)
        port = free_port()
        env = serve_env(scratch.owner_url, HOST="127.0.0.1", PORT=str(port))
        async with child_process(
            "fiv-console serve", [sys.executable, "-m", "fiv_console", "serve"], env, port
        ) as child:
            base = child.url.split("/webhook")[0]
            supervisor = await signed_in(base, "supervisor@busy.example", MOVERS * 2)
            try:
                http = await over_http(supervisor, max(50, args.reads // 4))
                pushed = await pushes(base, supervisor, scratch.owner_url, args)
            finally:
                await supervisor.close()
        version = scratch.postgres_version
    return {
        **report_header("wallboard", server, version, load_before),
        "conversations": args.conversations,
        "messages": args.conversations * args.messages_each,
        "seed_seconds": seeded.seconds,
        "in_process": local,
        "http": http,
        "push": pushed,
    }


def print_table(report: dict[str, Any]) -> None:
    local, http, push = report["in_process"], report["http"], report["push"]
    print(
        f"wallboard on {report['server']} PostgreSQL {report['postgres']}, {report['cpus']} cpus; "
        f"{report['conversations']:,} conversations, {report['messages']:,} messages; "
        f"{local['queues']} queues, {local['agents']} agents, board {local['board_bytes']:,} bytes"
    )
    print(f"{'measure':<44} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")

    def row(name: str, p: dict[str, float]) -> None:
        print(f"{name:<44} {p['p50_ms']:>8.2f} {p['p95_ms']:>8.2f} {p['p99_ms']:>8.2f} {p['max_ms']:>8.2f}")

    row("tenant tx, select 1 (ceiling)", local["ceiling_tx"])
    row("board: server_ms (in-process)", local["board_server_ms"])
    row("board: whole tenant tx (in-process)", local["board_tx"])
    row("/health round trip (ceiling)", http["health (ceiling)"]["round_trip"])
    row("GET /api/wallboard: server_ms", http["GET /api/wallboard"]["server_ms"])
    row("GET /api/wallboard: round trip", http["GET /api/wallboard"]["round_trip"])
    print(
        f"push: {push['moves']:,} moves in {push['seconds']:g} s "
        f"({push['moves_per_s']:.0f}/s, {push['movers']} clients); "
        f"{push['pushes']} queue.stats ({push['pushes_per_s']:.2f}/s), median {push['frame_bytes_median']} bytes; "
        f"last move to its push {push['last_move_to_push_ms']:.0f} ms"
    )
    if push["gap_ms"]:
        row("gap between pushes", push["gap_ms"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000, help="conversations (100000)")
    parser.add_argument("--messages-each", type=int, default=10, help="messages per conversation (10)")
    parser.add_argument("--reads", type=int, default=2000, help="boards read in-process (2000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of traffic for the pushes (10)")
    parser.add_argument("--movers", type=int, default=MOVERS, help="clients moving conversations (8)")
    args = parser.parse_args()
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
