"""Benchmark of `tenant_tx`: what a tenant transaction costs against the bare round trips underneath it.

    python bench/tenant_tx.py [--seconds N] [--concurrency C] [--rounds R] [--tenants K] [--breakdown]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles, as for the tests)
or, when unset, the embedded PostgreSQL in `FIV_DATA_DIR`, it makes a scratch database, migrates it, and
runs each scenario for N seconds in all with C concurrent tasks over a pool of C connections as the
server's role (`fiv_app`, which row-level security holds):

- ceiling:      pool acquire + `begin; select 1; commit` (the bare price of a pooled transaction)
- tenant_tx:    `tenant_tx` + `select 1` (what setting the tenant adds: the `set_config` round trip)
- read tenant:  `tenant_tx` + `tenants.get_tenant` (a one-row primary-key read through the RLS policy)
- insert queue: `tenant_tx` + `queues.create_queue` (a one-row insert and commit, under WITH CHECK)

`--breakdown` adds two variants of the ceiling that split what `tenant_tx` adds to it: the acquire through
`Database.connection()` (its deadline) and the `set_config` round trip.

It prints a table (ops/s, p50/p99 latency, ratio to the ceiling, the spread over rounds) and, last, one
JSON line. The scratch database is dropped at the end. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from _scratch import Scratch, Server, fail, measure_and_report, scratch_database

from fiv_console.accounts import tenants

# The very statement tenant_tx runs, so the breakdown's bare variant cannot drift from it.
from fiv_console.db.pool import _SET_TENANT_SQL as SET_TENANT_SQL
from fiv_console.db.pool import Database, create_database, tenant_tx
from fiv_console.routing import queues

# One operation: (worker number, iteration) -> None; workers use both to spread over the tenants.
Operation = Callable[[int, int], Awaitable[None]]

MAX_SECONDS = 600
# Long enough to open every pooled connection and fill asyncpg's statement cache before measuring.
WARMUP_SECONDS = 1.0
# A stuck operation must not hold the benchmark forever: each slice gets this on top of its time.
SLICE_GRACE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    ops: int
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    ratio: float  # ops/s relative to the ceiling measured in the same run
    round_min_ops_per_s: float
    round_max_ops_per_s: float


@dataclass(slots=True)
class _Tally:
    """One scenario's samples, gathered over the rounds."""

    latencies_ns: list[int] = field(default_factory=list)
    elapsed: float = 0.0
    round_rates: list[float] = field(default_factory=list)


def _percentile(sorted_ns: list[int], fraction: float) -> float:
    if not sorted_ns:
        return 0.0
    return sorted_ns[min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))] / 1e6


async def _run_for(operation: Operation, *, seconds: float, concurrency: int) -> tuple[list[int], float]:
    """Run `operation` in `concurrency` loops until the deadline; latencies (ns) and the elapsed time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    latencies: list[int] = []

    async def worker(number: int) -> None:
        for iteration in itertools.count():
            if loop.time() >= deadline:
                return
            started = time.perf_counter_ns()
            await operation(number, iteration)
            latencies.append(time.perf_counter_ns() - started)

    started = time.perf_counter()
    async with asyncio.timeout(seconds + SLICE_GRACE_SECONDS):
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return latencies, time.perf_counter() - started


async def measure_all(
    named: list[tuple[str, Operation]], *, seconds: float, concurrency: int, rounds: int
) -> list[Result]:
    """Each scenario for `seconds` in all, in `rounds` interleaved slices (A B C D, A B C D, ...).

    Interleaving keeps the ratios honest on a shared or throttled machine: a slow stretch hurts every
    scenario alike instead of whichever happened to run during it. The first scenario is the ceiling.
    """
    for _, operation in named:
        await _run_for(operation, seconds=min(WARMUP_SECONDS, seconds), concurrency=concurrency)
    tallies = {name: _Tally() for name, _ in named}
    for _ in range(rounds):
        for name, operation in named:
            latencies, elapsed = await _run_for(operation, seconds=seconds / rounds, concurrency=concurrency)
            tally = tallies[name]
            tally.latencies_ns.extend(latencies)
            tally.elapsed += elapsed
            tally.round_rates.append(len(latencies) / elapsed)
    rates = {name: len(t.latencies_ns) / t.elapsed for name, t in tallies.items()}
    ceiling = rates[named[0][0]]
    results = []
    for name, tally in tallies.items():
        tally.latencies_ns.sort()
        results.append(
            Result(
                name=name,
                ops=len(tally.latencies_ns),
                ops_per_s=rates[name],
                p50_ms=_percentile(tally.latencies_ns, 0.50),
                p99_ms=_percentile(tally.latencies_ns, 0.99),
                ratio=rates[name] / ceiling if ceiling else 0.0,
                round_min_ops_per_s=min(tally.round_rates),
                round_max_ops_per_s=max(tally.round_rates),
            )
        )
    return results


def scenarios(
    db: Database, tenant_ids: list[UUID], concurrency: int, *, breakdown: bool
) -> list[tuple[str, Operation]]:
    unique = itertools.count()  # queue names are unique per tenant, across warm-up and rounds

    def tenant_for(number: int, iteration: int) -> UUID:
        return tenant_ids[(iteration * concurrency + number) % len(tenant_ids)]

    async def ceiling(number: int, iteration: int) -> None:
        async with db.pool.acquire() as conn, conn.transaction():
            await conn.fetchval("select 1")

    async def ceiling_via_connection(number: int, iteration: int) -> None:
        async with db.connection() as conn, conn.transaction():
            await conn.fetchval("select 1")

    async def ceiling_with_set_config(number: int, iteration: int) -> None:
        async with db.pool.acquire() as conn, conn.transaction():
            await conn.execute(SET_TENANT_SQL, str(tenant_for(number, iteration)))
            await conn.fetchval("select 1")

    async def bare_tenant_tx(number: int, iteration: int) -> None:
        async with tenant_tx(db, tenant_for(number, iteration)) as conn:
            await conn.fetchval("select 1")

    async def read_tenant(number: int, iteration: int) -> None:
        tenant_id = tenant_for(number, iteration)
        async with tenant_tx(db, tenant_id) as conn:
            tenant = await tenants.get_tenant(conn, tenant_id=tenant_id)
        # A read that row-level security hid would be fast and wrong; it must not pass for a result.
        if tenant is None:
            raise RuntimeError(f"tenant {tenant_id} is not visible inside its own tenant_tx")

    async def insert_queue(number: int, iteration: int) -> None:
        tenant_id = tenant_for(number, iteration)
        data = queues.QueueCreate(name=f"bench {next(unique)}")
        async with tenant_tx(db, tenant_id) as conn:
            await queues.create_queue(conn, tenant_id=tenant_id, data=data)

    named: list[tuple[str, Operation]] = [("ceiling: acquire+begin+select 1+commit", ceiling)]
    if breakdown:
        # The two halves of what tenant_tx adds, measured apart: the acquire deadline, and set_config.
        named += [
            ("  ceiling via Database.connection()", ceiling_via_connection),
            ("  ceiling + set_config round trip", ceiling_with_set_config),
        ]
    return [
        *named,
        ("tenant_tx + select 1", bare_tenant_tx),
        ("tenant_tx + read own tenant row", read_tenant),
        ("tenant_tx + insert queue", insert_queue),
    ]


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    async with scratch_database(server, "fiv_bench") as scratch:
        results = await _run_on(scratch, args)
    return {
        "bench": "tenant_tx",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": server.kind,
        "postgres": scratch.postgres_version,
        "cpus": os.cpu_count(),
        # Other work on the machine skews absolute figures (ratios less so); a reader should see it.
        "load_1min_before": load_before,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "tenants": args.tenants,
        "breakdown": args.breakdown,
        "results": [asdict(r) for r in results],
    }


async def _run_on(scratch: Scratch, args: argparse.Namespace) -> list[Result]:
    # Sized to the concurrency so no task waits for a connection: the figures are round trips, not queueing.
    db = await create_database(
        scratch.app_url,
        min_size=args.concurrency,
        max_size=args.concurrency,
        acquire_timeout=10,
        command_timeout=30,
    )
    try:
        tenant_ids = [
            (await tenants.create_tenant(db, tenants.TenantCreate(name=f"Bench tenant {n}"))).id
            for n in range(args.tenants)
        ]
        return await measure_all(
            scenarios(db, tenant_ids, args.concurrency, breakdown=args.breakdown),
            seconds=args.seconds,
            concurrency=args.concurrency,
            rounds=args.rounds,
        )
    finally:
        await db.pool.close()


def print_table(report: dict[str, Any]) -> None:
    print(
        f"tenant_tx on {report['server']} PostgreSQL {report['postgres']}: {report['seconds']:g} s per "
        f"scenario in {report['rounds']} rounds, {report['concurrency']} tasks, {report['tenants']} tenants, "
        f"load {report['load_1min_before']:.2f} before"
    )
    print(f"{'scenario':<40} {'ops':>7} {'ops/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6} {'rounds ops/s':>13}")
    for r in report["results"]:
        spread = f"{r['round_min_ops_per_s']:.0f}-{r['round_max_ops_per_s']:.0f}"
        print(
            f"{r['name']:<40} {r['ops']:>7} {r['ops_per_s']:>7.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
            f"{r['ratio']:>6.2f} {spread:>13}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure tenant_tx against the bare pooled transaction.")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per scenario (5)")
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent tasks and pool size (20)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved slices per scenario (5)")
    parser.add_argument("--tenants", type=int, default=100, help="tenants the tasks spread over (100)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure the acquire deadline and the set_config round trip apart",
    )
    args = parser.parse_args()
    if not 0 < args.seconds <= MAX_SECONDS:
        return fail(f"--seconds must be more than 0 and at most {MAX_SECONDS}")
    if not 1 <= args.concurrency <= 500:
        return fail("--concurrency must be between 1 and 500")
    if not 1 <= args.rounds <= 100:
        return fail("--rounds must be between 1 and 100")
    if not 1 <= args.tenants <= 10_000:
        return fail("--tenants must be between 1 and 10000")
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
