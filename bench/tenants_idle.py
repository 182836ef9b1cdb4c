"""Benchmark of what idle tenants cost: CPU of `serve` instances and of PostgreSQL while nothing happens.

    python bench/tenants_idle.py [--tenants N] [--instances K] [--seconds S] [--settle W]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or, when unset, the
embedded PostgreSQL in `FIV_DATA_DIR`, it makes a scratch database, migrates it and seeds N tenants
(10,000) as a deployment of small companies has them: each a queue, a channel, two agents in the queue and
assignment settings, nobody online, no conversation open, in a few set-based statements as the owner. Then K
instances of `python -m fiv_console serve` (3) run on it, sharing Redis (`REDIS_URL`, else
`redis://127.0.0.1:6379/0`); after W seconds to settle (10), it reads the CPU time of every instance and of
every PostgreSQL backend of the scratch database (psutil, by process) over S seconds (30), and prints
cores used (CPU seconds / wall seconds). It runs the same with one tenant first, the ceiling of the run:
whatever an instance costs doing nothing at all. The target (docs/benchmarks.md): under 0.05 cores for the
instances together and under 0.05 for PostgreSQL at 10,000 tenants. Nothing here asserts it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import asyncpg
import psutil
from _scratch import (
    Scratch,
    Server,
    fail,
    measure_and_report,
    report_header,
    scratch_database,
    serve_env,
    stop,
    wait_healthy,
)

from fiv_console.serving import free_port

TARGET_CORES = 0.05

_SEED_SQL = """
with made as (
    insert into tenants (id, name, slug, settings)
    select gen_random_uuid(), 'Idle ' || g, 'idle-' || g,
           '{"unanswered_reroute_seconds": 300, "inactivity_close_seconds": 3600, "priority_rise_seconds": 60}'
    from generate_series(1, $1) g
    returning id
), queue as (
    insert into queues (tenant_id, name) select id, 'Support' from made returning tenant_id, id
), people as (
    insert into users (tenant_id, email, name, role, password_hash)
    select q.tenant_id, 'agent' || n || '@idle.example', 'Agent ' || n, 'agent', 'x'
    from queue q cross join generate_series(1, 2) n
    returning tenant_id, id
), members as (
    insert into queue_members (tenant_id, queue_id, user_id)
    select p.tenant_id, q.id, p.id from people p join queue q using (tenant_id)
)
insert into channels (tenant_id, phone_number_id, display_number, default_queue_id)
select q.tenant_id, (1000000000 + row_number() over ())::text, '+1 555', q.id from queue q
"""


async def _seed(scratch: Scratch, tenants: int) -> None:
    owner = await asyncpg.connect(scratch.owner_url)
    try:
        await owner.execute("truncate tenants cascade")
        await owner.execute(_SEED_SQL, tenants)
        await owner.execute("analyze")
    finally:
        await owner.close()


def _backends(database: str) -> list[psutil.Process]:
    """The PostgreSQL backends serving the scratch database (their command line names it)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.info["name"] == "postgres" and f" {database} " in f" {cmdline} ":
            found.append(process)
    return found


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def _measure(scratch: Scratch, args: argparse.Namespace, tenants: int) -> dict[str, Any]:
    await _seed(scratch, tenants)
    env = serve_env(
        scratch.owner_url, REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), DB_POOL_MIN_SIZE="1"
    )
    async with AsyncExitStack() as stack:
        instances: list[asyncio.subprocess.Process] = []
        async with aiohttp.ClientSession() as session:
            for _ in range(args.instances):
                port = free_port()
                stderr = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - the stack closes it
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "fiv_console", "serve", "--port", str(port),
                    env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
                )  # fmt: skip
                stack.push_async_callback(stop, process, signal.SIGTERM)
                instances.append(process)
                await wait_healthy(session, f"http://127.0.0.1:{port}/health", process)
        await asyncio.sleep(args.settle)
        servers = [psutil.Process(p.pid) for p in instances]
        backends = _backends(scratch.name)
        loop = asyncio.get_running_loop()
        started, server_before, pg_before = loop.time(), _cpu_seconds(servers), _cpu_seconds(backends)
        await asyncio.sleep(args.seconds)
        # Backends opened meanwhile count from zero; those that ended are lost (the pools keep theirs open).
        backends += [b for b in _backends(scratch.name) if b.pid not in {p.pid for p in backends}]
        wall = loop.time() - started
        server_cores = (_cpu_seconds(servers) - server_before) / wall
        pg_cores = (_cpu_seconds(backends) - pg_before) / wall
    return {"tenants": tenants, "server_cores": server_cores, "postgres_cores": pg_cores}


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    async with scratch_database(server, "fiv_bench_idle") as scratch:
        results = [await _measure(scratch, args, 1), await _measure(scratch, args, args.tenants)]
        header = report_header("tenants_idle", server, scratch.postgres_version, load_before)
    return {
        **header,
        "instances": args.instances,
        "seconds": args.seconds,
        "settle_seconds": args.settle,
        "target_cores": TARGET_CORES,
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"idle tenants: {report['instances']} instances, CPU over {report['seconds']:g} s after "
        f"{report['settle_seconds']:g} s; {report['cpus']} cores, load {report['load_1min_before']:.2f} before; "
        f"target < {report['target_cores']:g} cores each"
    )
    print(f"{'tenants':>8} {'instances, cores':>17} {'PostgreSQL, cores':>18}")
    for r in report["results"]:
        print(f"{r['tenants']:>8,} {r['server_cores']:>17.3f} {r['postgres_cores']:>18.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure the CPU idle tenants cost the instances and PostgreSQL.")
    parser.add_argument("--tenants", type=int, default=10_000, help="idle tenants (10000)")
    parser.add_argument("--instances", type=int, default=3, help="serve processes (3)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds (30)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after start before measuring (10)")
    args = parser.parse_args()
    if not 1 <= args.tenants <= 100_000:
        return fail("--tenants must be between 1 and 100000")
    if not 1 <= args.instances <= 8:
        return fail("--instances must be between 1 and 8")
    if not 1 <= args.seconds <= 600 or not 0 <= args.settle <= 300:
        return fail("--seconds must be between 1 and 600, --settle between 0 and 300")
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
