"""Benchmark of webhook intake: signed one-message POSTs through the whole path, against a bare aiohttp ceiling.

    python bench/intake.py [--seconds N] [--rounds R] [--rate M] [--concurrency C] [--in-flight F]
                           [--customers U] [--tenants K] [--pool P] [--max-rate X]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or, when unset, the
embedded PostgreSQL in `FIV_DATA_DIR`, it makes a migrated scratch database with 1 + K tenants, each with a
queue and a channel (its own `phone_number_id`), and starts two processes on free loopback ports, so that
neither shares this process (the load generator) or the other:

- ceiling: a bare aiohttp application on uvloop that reads the POST body, parses it with orjson, answers 200;
- server:  `python -m fiv_console serve` on the scratch database, LOG_LEVEL=WARNING, a pool of P connections.

Every request is one message in Meta's envelope, signed (`X-Hub-Signature-256`, HMAC-SHA256 of the body
with WHATSAPP_APP_SECRET) with a unique wamid, from one of U customers; the bodies of a slice are built and
signed before it starts, so the client's signing is not measured (a closed-loop slice gets X bodies per
second of it; were they used up, it would end early and say so). Three scenarios, each measured for N
seconds per mode in R interleaved rounds (a slow stretch of a shared machine then hurts each alike), each
round running:

- closed loop: C requests in flight for N/R seconds, each sent when the previous answered: messages/s;
- open loop:   M requests a second for N/R seconds, on a fixed schedule, at most F in flight: the ack
               latency is measured from the scheduled send time, so queueing behind a slow server is
               counted (coordinated omission) instead of hidden.

The scenarios: the ceiling; the intake with every message for the first tenant (its event seq, a counter
row taken last in each transaction, serializes that tenant's commits); the intake with the messages spread
over the other K tenants. Before the rounds, each intake scenario is sent one message per customer (which
opens the customer's conversation), so the measured messages mostly join an open conversation.

Evidence of what limits it, gathered during each closed-loop slice: the CPU each process used (this one,
the server, PostgreSQL's backends of the scratch database, the rest of the machine, via psutil), how long
their threads waited for a CPU (Linux `schedstat`: starved, as opposed to idle), and the states and wait
events of the scratch database's backends sampled from `pg_stat_activity`. After the rounds, the rows of
each scenario's tenants are counted as the owner and compared with the 200 answers it got: every
acknowledged message must be stored, and none that was not.

It prints a table and, last, one JSON line; stops both processes with SIGINT and drops the scratch database.
The targets (>= 5,000 messages/s, ack p99 <= 50 ms at 2,000/s) are reported, not asserted: this is a
measurement, not a test. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import psutil
from _scratch import (
    BenchError,
    Scratch,
    Server,
    fail,
    in_tenant,
    measure_and_report,
    report_header,
    scratch_database,
    stop,
    wait_healthy,
)

from fiv_console.accounts import tenants
from fiv_console.db.pool import create_database, tenant_tx
from fiv_console.routing import channels, queues
from fiv_console.serving import free_port
from fiv_console.simulation.envelopes import text_message_envelope, webhook_headers

TARGET_MESSAGES_PER_S = 5_000.0
TARGET_P99_MS = 50.0
WEBHOOK_PATH = "/webhooks/whatsapp"
MAX_SECONDS = 600
CLIENT_TIMEOUT_SECONDS = 60.0
CEILING_WARMUP_SECONDS = 1.0
# pg_stat_activity every 50 ms: enough samples in a few seconds, and a negligible load of its own.
WAIT_SAMPLE_SECONDS = 0.05
# The ceiling does not store anything, so a fixed set of bodies can be sent over and over.
CEILING_BODIES = 20_000

# The ceiling: what aiohttp on uvloop costs to read a JSON POST and answer it, before any of our code.
_BARE_SERVER = """
import sys
import orjson
import uvloop
from aiohttp import web

async def health(request):
    return web.json_response({"status": "ok"})

async def receive(request):
    orjson.loads(await request.read())
    return web.Response(text="ok")

app = web.Application(client_max_size=4 * 1024 * 1024)
app.router.add_get("/health", health)
app.router.add_post("/webhooks/whatsapp", receive)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=uvloop.new_event_loop())
"""

Request = tuple[bytes, dict[str, str]]
# One POST: the answer's status as text ("200", "503") or the name of the client error that ended it.
Post = Callable[[bytes, dict[str, str]], Awaitable[str]]


# --- the load -----------------------------------------------------------------------------------------


class Envelopes:
    """Signed one-message webhooks: a unique wamid each, from customers of a fixed population.

    Customer c always writes to the same business number (c mod the numbers), so a customer belongs to one
    tenant and has at most one open conversation, as in real traffic.
    """

    def __init__(self, app_secret: bytes, phone_number_ids: list[str], customers: int, *, seed: int) -> None:
        self._secret = app_secret
        self._numbers = phone_number_ids
        self._customers = customers
        self._random = random.Random(seed)  # noqa: S311 - the order of customers, not a secret
        self._serial = itertools.count()
        self._run = secrets.token_hex(4)  # so two generators never make the same wamid

    def random_customers(self, count: int) -> list[Request]:
        return [self.one(self._random.randrange(self._customers)) for _ in range(count)]

    def every_customer(self) -> list[Request]:
        return [self.one(customer) for customer in range(self._customers)]

    def one(self, customer: int) -> Request:
        serial = next(self._serial)
        wa_id = f"55119{customer:08d}"
        body = text_message_envelope(
            self._numbers[customer % len(self._numbers)],
            "15550100",
            wa_id,
            f"Customer {customer}",
            f"Hello, this is message {serial}. Is my order on its way?",
            wamid=f"wamid.bench.{self._run}.{serial:010d}",
            timestamp=int(time.time()),
            waba_id="WABA-BENCH",
        )
        return body, webhook_headers(self._secret, body)


@dataclass(slots=True)
class Slice:
    """What one timed run of the load got back."""

    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    unsent: int = 0  # open loop: scheduled, but not sent within the grace
    exhausted: bool = False  # closed loop: the bodies ran out before the time did

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


def poster(session: aiohttp.ClientSession, url: str) -> Post:
    async def post(body: bytes, headers: dict[str, str]) -> str:
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    return post


async def closed_loop(post: Post, requests: Iterable[Request], *, seconds: float, concurrency: int) -> Slice:
    """`concurrency` workers, each sending its next request once the last one answered, until the deadline.

    Nothing is cancelled at the deadline: the requests in flight finish, so every answer is known and the
    200s can be compared with the rows stored.
    """
    result = Slice()
    pending: Iterator[Request] = iter(requests)
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        for body, headers in pending:  # shared by the workers: each request is sent once
            if time.perf_counter() >= deadline:
                return
            sent_at = time.perf_counter_ns()
            result.statuses[await post(body, headers)] += 1
            result.latencies_ns.append(time.perf_counter_ns() - sent_at)
        result.exhausted = True

    async with asyncio.timeout(seconds + CLIENT_TIMEOUT_SECONDS + 10):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


async def open_loop(post: Post, requests: list[Request], *, rate: float, in_flight: int, grace: float) -> Slice:
    """Request i is due at start + i/rate; its latency runs from then, whenever a worker could send it.

    At most `in_flight` are outstanding. What is still unsent `grace` seconds after the schedule ended is
    counted as unsent (the server fell that far behind); what was sent is always waited for.
    """
    result = Slice()
    started = time.perf_counter() + 0.01
    stop_at = started + len(requests) / rate + grace
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(requests) and time.perf_counter() < stop_at:
            index = next_index
            next_index += 1
            due = started + index / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)  # uvloop's timers tick in ms: a send may start up to ~1 ms late
            body, headers = requests[index]
            result.statuses[await post(body, headers)] += 1
            result.latencies_ns.append(int((time.perf_counter() - due) * 1e9))

    async with asyncio.timeout(stop_at - started + CLIENT_TIMEOUT_SECONDS + 10):
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    result.elapsed = time.perf_counter() - started
    result.unsent = len(requests) - next_index
    return result


# --- evidence: CPU per process, and what PostgreSQL's backends wait for ------------------------------------


def _busy_seconds(times: Any) -> float:
    # guest time is already inside user on Linux; idle and iowait are not work.
    return float(sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal")))


def _run_queue_wait(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (Linux schedstat; 0 elsewhere)."""
    waited = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            waited += int((task / "schedstat").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        pass  # the process or one of its threads ended between the listing and the read
    return waited / 1e9


GROUPS = ("client", "server", "postgres_bench_db", "postgres_other")


class CpuMeter:
    """CPU per group of processes between two snapshots: the load generator, the process under load,
    PostgreSQL's backends of the scratch database, PostgreSQL's other processes, and the rest of the machine;
    and how long each group's threads waited for a CPU, which says whether a group was starved or idle."""

    def __init__(self, database: str) -> None:
        self._marker = f" {database} "  # a backend's title: "postgres: 15/main: fiv_app <database> 127.0.0.1(...)"
        self._client = psutil.Process()

    def snapshot(self, target_pid: int) -> dict[str, Any]:
        processes: dict[int, tuple[str, float, float]] = {}
        for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            info = process.info
            if info["name"] != "postgres" or info["cpu_times"] is None:
                continue
            group = "postgres_bench_db" if self._marker in " ".join(info["cmdline"] or ()) + " " else "postgres_other"
            cpu = info["cpu_times"].user + info["cpu_times"].system
            processes[process.pid] = (group, cpu, _run_queue_wait(process.pid))
        for group, pid in (("client", self._client.pid), ("server", target_pid)):
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            processes[pid] = (group, times.user + times.system, _run_queue_wait(pid))
        return {"at": time.perf_counter(), "busy": _busy_seconds(psutil.cpu_times()), "processes": processes}

    @staticmethod
    def cores(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
        """Per group: cores busy on average (CPU seconds / wall seconds; `other` is everything else), and threads
        waiting for a CPU on average (run-queue seconds / wall seconds)."""
        wall = after["at"] - before["at"]
        used = dict.fromkeys(GROUPS, 0.0)
        waited = dict.fromkeys(GROUPS, 0.0)
        for pid, (group, cpu, wait) in after["processes"].items():
            _, cpu_before, wait_before = before["processes"].get(pid, (group, 0.0, 0.0))
            used[group] += cpu - cpu_before
            waited[group] += wait - wait_before
        total = after["busy"] - before["busy"]
        used["other"] = max(0.0, total - sum(used.values()))
        used["total"] = total
        return {g: v / wall for g, v in used.items()}, {g: v / wall for g, v in waited.items()}


# A lock wait names the table it waits in by the statement's first words (`insert into event_counters`).
_ACTIVITY_SQL = """
select state, wait_event_type, wait_event,
       case when wait_event_type = 'Lock' then left(regexp_replace(query, '\\s+', ' ', 'g'), 60) end as statement
from pg_stat_activity
where datname = $1 and backend_type = 'client backend' and pid <> pg_backend_pid()
"""


def _activity_key(state: str | None, wait_type: str | None, wait_event: str | None, statement: str | None) -> str:
    if state == "active" and wait_type is None:
        return "active, on CPU"
    if wait_type is None:
        return state or "unknown"
    return f"{state}, {wait_type}:{wait_event}" + (f" in `{statement.strip()}`" if statement else "")


@asynccontextmanager
async def sampling_waits(owner_url: str, database: str) -> AsyncIterator[dict[str, float]]:
    """Samples the scratch database's backends while the block runs; the counter ends holding the mean
    number of backends in each state (`active, Lock:transactionid`, `idle in transaction, Client:ClientRead`, ...)."""
    counts: Counter[str] = Counter()
    samples = 0
    conn = await asyncpg.connect(owner_url)

    async def sample() -> None:
        nonlocal samples
        while True:
            for row in await conn.fetch(_ACTIVITY_SQL, database):
                counts[_activity_key(*row)] += 1
            samples += 1
            await asyncio.sleep(WAIT_SAMPLE_SECONDS)

    task = asyncio.create_task(sample())
    means: dict[str, float] = {}
    try:
        yield means
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await conn.close()
        for key, count in counts.items():
            means[key] = count / max(samples, 1)


# --- the processes under load ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Child:
    name: str
    pid: int
    url: str


@asynccontextmanager
async def child_process(name: str, command: list[str], env: dict[str, str], port: int) -> AsyncIterator[Child]:
    """The process started and answering `/health` with 200; stopped with SIGINT (then SIGKILL) at the end.

    Its output goes to a file, quoted when it fails to start: a pipe nobody reads could block its logging.
    """
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as output:
        process = await asyncio.create_subprocess_exec(*command, env=env, stdout=output, stderr=output)
        try:
            try:
                async with aiohttp.ClientSession() as session:
                    await wait_healthy(session, f"{base}/health", process)
            except BenchError as exc:
                output.seek(0)
                tail = output.read()[-3000:].decode(errors="replace")
                raise BenchError(f"{name}: {exc}\n{tail}") from None
            yield Child(name, process.pid, base + WEBHOOK_PATH)
        finally:
            await stop(process, signal.SIGINT)


# --- the scenarios --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchTenant:
    tenant_id: UUID
    phone_number_id: str


async def make_tenants(scratch: Scratch, count: int) -> list[BenchTenant]:
    """`count` tenants, each with a queue and a channel, made as the server's role through the package."""
    db = await create_database(scratch.app_url, min_size=1, max_size=2, acquire_timeout=10, command_timeout=30)
    made = []
    try:
        for n in range(count):
            tenant = await tenants.create_tenant(db, tenants.TenantCreate(name=f"Bench tenant {n}"))
            phone_number_id = f"1555{n:08d}"
            async with tenant_tx(db, tenant.id) as conn:
                queue = await queues.create_queue(conn, tenant_id=tenant.id, data=queues.QueueCreate(name="Support"))
                await channels.create_channel(
                    conn,
                    tenant_id=tenant.id,
                    data=channels.ChannelCreate(
                        phone_number_id=phone_number_id, display_number=f"+1 555 {n:04d}", default_queue_id=queue.id
                    ),
                )
            made.append(BenchTenant(tenant.id, phone_number_id))
    finally:
        await db.pool.close()
    return made


@dataclass(slots=True)
class Scenario:
    name: str
    envelopes: Envelopes
    tenant_ids: list[UUID]  # empty for the ceiling, which stores nothing
    target: Child | None = None
    closed_rates: list[float] = field(default_factory=list)
    closed_latencies_ns: list[int] = field(default_factory=list)
    closed_exhausted: bool = False
    open_latencies_ns: list[int] = field(default_factory=list)
    open_round_p99_ms: list[float] = field(default_factory=list)
    open_sent: int = 0
    open_unsent: int = 0
    open_elapsed: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)  # every answer, warm-up included
    cpu: list[dict[str, float]] = field(default_factory=list)
    cpu_waiting: list[dict[str, float]] = field(default_factory=list)
    waits: list[dict[str, float]] = field(default_factory=list)

    @property
    def stores(self) -> bool:
        return bool(self.tenant_ids)


def _percentile_ms(sorted_ns: list[int], fraction: float) -> float:
    if not sorted_ns:
        return 0.0
    return sorted_ns[min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))] / 1e6


async def run_round(
    scenario: Scenario, args: argparse.Namespace, session: aiohttp.ClientSession, meter: CpuMeter, scratch: Scratch
) -> None:
    assert scenario.target is not None
    post = poster(session, scenario.target.url)
    slice_seconds = args.seconds / args.rounds
    if scenario.stores:
        closed_requests: Iterable[Request] = scenario.envelopes.random_customers(int(slice_seconds * args.max_rate))
    else:
        closed_requests = itertools.cycle(scenario.envelopes.random_customers(CEILING_BODIES))
    open_requests = scenario.envelopes.random_customers(int(slice_seconds * args.rate))

    before = meter.snapshot(scenario.target.pid)
    if scenario.stores:
        async with sampling_waits(scratch.owner_url, scratch.name) as waits:
            closed = await closed_loop(post, closed_requests, seconds=slice_seconds, concurrency=args.concurrency)
        scenario.waits.append(waits)
    else:
        closed = await closed_loop(post, closed_requests, seconds=slice_seconds, concurrency=args.concurrency)
    cores, waiting = CpuMeter.cores(before, meter.snapshot(scenario.target.pid))
    scenario.cpu.append(cores)
    scenario.cpu_waiting.append(waiting)
    scenario.closed_rates.append(closed.sent / closed.elapsed)
    scenario.closed_latencies_ns += closed.latencies_ns
    scenario.closed_exhausted |= closed.exhausted
    scenario.statuses += closed.statuses

    opened = await open_loop(
        post, open_requests, rate=args.rate, in_flight=args.in_flight, grace=max(10.0, slice_seconds)
    )
    scenario.open_latencies_ns += opened.latencies_ns
    scenario.open_round_p99_ms.append(_percentile_ms(sorted(opened.latencies_ns), 0.99))
    scenario.open_sent += opened.sent
    scenario.open_unsent += opened.unsent
    scenario.open_elapsed += opened.elapsed
    scenario.statuses += opened.statuses


async def warm_up(scenario: Scenario, args: argparse.Namespace, session: aiohttp.ClientSession) -> None:
    """The intake: every customer's first message (opening its conversation); the ceiling: a second of load.
    Either way the connections are open and the server's statement caches full before anything is timed."""
    assert scenario.target is not None
    post = poster(session, scenario.target.url)
    if scenario.stores:
        warm = await closed_loop(
            post, scenario.envelopes.every_customer(), seconds=MAX_SECONDS, concurrency=args.concurrency
        )
    else:
        bodies = itertools.cycle(scenario.envelopes.random_customers(CEILING_BODIES))
        warm = await closed_loop(post, bodies, seconds=CEILING_WARMUP_SECONDS, concurrency=args.concurrency)
    scenario.statuses += warm.statuses


# --- counting what was stored -------------------------------------------------------------------------------

# Filtered by tenant as well: a superuser owner bypasses row-level security and would see every tenant.
_COUNT_SQL = """
select (select count(*) from messages where tenant_id = $1) as messages,
       (select count(*) from conversations where tenant_id = $1) as conversations,
       (select count(*) from contacts where tenant_id = $1) as contacts,
       (select count(*) from events where tenant_id = $1) as events,
       (select coalesce(sum(last_seq), 0) from event_counters where tenant_id = $1) as last_seq
"""


async def count_rows(owner_url: str, tenant_ids: list[UUID]) -> dict[str, int]:
    """Rows of the tenants, as the owner, each tenant set as the server sets it: row-level security is forced
    on these tables, so an owner that is not a superuser sees a tenant's rows only this way. The dead letters
    belong to no tenant: the whole database's are counted."""
    totals: Counter[str] = Counter()
    conn = await asyncpg.connect(owner_url)
    try:
        for tenant_id in tenant_ids:
            async with in_tenant(conn, tenant_id):
                row = await conn.fetchrow(_COUNT_SQL, tenant_id)
                totals.update({key: int(value) for key, value in dict(row or {}).items()})
        totals["dead_letters"] = int(await conn.fetchval("select count(*) from webhook_dead_letters"))
    finally:
        await conn.close()
    return dict(totals)


# --- the run ---------------------------------------------------------------------------------------------


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    app_secret = secrets.token_urlsafe(32)
    async with scratch_database(server, "fiv_bench_intake") as scratch:
        made = await make_tenants(scratch, 1 + args.tenants)
        secret = app_secret.encode()
        scenarios = [
            Scenario("ceiling: bare aiohttp + orjson", Envelopes(secret, [made[0].phone_number_id], 1000, seed=1), []),
            Scenario(
                "intake, 1 tenant",
                Envelopes(secret, [made[0].phone_number_id], args.customers, seed=2),
                [made[0].tenant_id],
            ),
            Scenario(
                f"intake, {args.tenants} tenants",
                Envelopes(secret, [t.phone_number_id for t in made[1:]], args.customers, seed=3),
                [t.tenant_id for t in made[1:]],
            ),
        ]
        base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_APP_URL", "REDIS_URL")}
        ceiling_port, server_port = free_port(), free_port()
        server_env = {
            **base_env,
            "DATABASE_URL": scratch.owner_url,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "WHATSAPP_APP_SECRET": app_secret,
            "HOST": "127.0.0.1",
            "PORT": str(server_port),
            # At info every request logs an access line and a "webhook stored" line: the logging would be
            # measured, not the intake.
            "LOG_LEVEL": "WARNING",
            "DB_POOL_MIN_SIZE": str(args.pool),
            "DB_POOL_MAX_SIZE": str(args.pool),
        }
        async with (
            child_process(
                "bare aiohttp", [sys.executable, "-c", _BARE_SERVER, str(ceiling_port)], base_env, ceiling_port
            ) as ceiling,
            child_process(
                "fiv-console serve", [sys.executable, "-m", "fiv_console", "serve"], server_env, server_port
            ) as ours,
        ):
            scenarios[0].target = ceiling
            scenarios[1].target = scenarios[2].target = ours
            meter = CpuMeter(scratch.name)
            connector = aiohttp.TCPConnector(limit=max(args.concurrency, args.in_flight), limit_per_host=0)
            async with aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS),
                cookie_jar=aiohttp.DummyCookieJar(),
            ) as session:
                for scenario in scenarios:
                    await warm_up(scenario, args, session)
                for _ in range(args.rounds):
                    for scenario in scenarios:
                        await run_round(scenario, args, session, meter, scratch)
        stored = {s.name: await count_rows(scratch.owner_url, s.tenant_ids) for s in scenarios if s.stores}
        version = scratch.postgres_version
    return _report(server, version, args, scenarios, stored, load_before)


def _report(
    server: Server,
    version: str,
    args: argparse.Namespace,
    scenarios: list[Scenario],
    stored: dict[str, dict[str, int]],
    load_before: float,
) -> dict[str, Any]:
    ceiling_rate = statistics.median(scenarios[0].closed_rates)
    results = []
    for s in scenarios:
        s.closed_latencies_ns.sort()
        s.open_latencies_ns.sort()
        rate = statistics.median(s.closed_rates)
        open_p99 = _percentile_ms(s.open_latencies_ns, 0.99)
        result: dict[str, Any] = {
            "name": s.name,
            "tenants": len(s.tenant_ids),
            "closed_messages_per_s": rate,
            "closed_round_min_per_s": min(s.closed_rates),
            "closed_round_max_per_s": max(s.closed_rates),
            "closed_p50_ms": _percentile_ms(s.closed_latencies_ns, 0.50),
            "closed_p99_ms": _percentile_ms(s.closed_latencies_ns, 0.99),
            "closed_bodies_ran_out": s.closed_exhausted,
            "ratio": rate / ceiling_rate if ceiling_rate else 0.0,
            "open_rate": args.rate,
            "open_sent": s.open_sent,
            "open_unsent": s.open_unsent,
            "open_achieved_per_s": s.open_sent / s.open_elapsed if s.open_elapsed else 0.0,
            "open_p50_ms": _percentile_ms(s.open_latencies_ns, 0.50),
            "open_p99_ms": open_p99,
            "open_round_p99_ms": s.open_round_p99_ms,
            "answers": dict(s.statuses),
            "cpu_cores": {group: statistics.median(c[group] for c in s.cpu) for group in s.cpu[0]},
            "waiting_for_cpu": {group: statistics.median(c[group] for c in s.cpu_waiting) for group in GROUPS},
            # CPU per message hardly depends on what else the machine runs, unlike messages/s; the cores
            # divided by the three together is what this machine could do if the benchmark had it alone.
            "cpu_ms_per_message": {
                group: statistics.median(c[group] / r * 1000 for c, r in zip(s.cpu, s.closed_rates, strict=True))
                for group in ("client", "server", "postgres_bench_db")
            },
        }
        if s.stores:
            waits: dict[str, float] = {}
            for sample in s.waits:
                for key, value in sample.items():
                    waits[key] = waits.get(key, 0.0) + value / len(s.waits)
            rows = stored[s.name]
            acked = s.statuses["200"]
            result |= {
                "backends": dict(sorted(waits.items(), key=lambda item: -item[1])),
                "acked": acked,
                "stored": rows,
                # Every 200 durable, and nothing stored that was not acknowledged.
                "acked_equals_stored": acked == rows["messages"],
                # One message.created per message, one conversation.created per conversation; seqs gapless.
                "events_consistent": rows["events"] == rows["messages"] + rows["conversations"] == rows["last_seq"],
                "throughput_target_met": rate >= TARGET_MESSAGES_PER_S,
                "latency_target_met": open_p99 <= TARGET_P99_MS and s.open_unsent == 0,
            }
        result["cpu_bound_per_s"] = (os.cpu_count() or 1) * 1000 / sum(result["cpu_ms_per_message"].values())
        results.append(result)
    return {
        **report_header("intake", server, version, load_before),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "rate": args.rate,
        "concurrency": args.concurrency,
        "in_flight": args.in_flight,
        "customers": args.customers,
        "tenants": args.tenants,
        "pool": args.pool,
        "target_messages_per_s": TARGET_MESSAGES_PER_S,
        "target_p99_ms": TARGET_P99_MS,
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"intake on {report['server']} PostgreSQL {report['postgres']}, {report['cpus']} cpus, "
        f"{report['memory_gib']:.0f} GiB: {report['seconds']:g} s per mode and scenario in {report['rounds']} rounds, "
        f"{report['customers']} customers, server pool {report['pool']}; load {report['load_1min_before']:.2f} "
        f"before, {report['load_1min_after']:.2f} after"
    )
    print(
        f"{'':<32} {'closed loop, ' + str(report['concurrency']) + ' in flight':<44} "
        f"open loop at {report['rate']:g}/s, <= {report['in_flight']} in flight"
    )
    print(
        f"{'scenario':<32} {'msg/s':>7} {'rounds':>13} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>5}  "
        f"{'msg/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'unsent':>7}"
    )
    for r in report["results"]:
        spread = f"{r['closed_round_min_per_s']:.0f}-{r['closed_round_max_per_s']:.0f}"
        print(
            f"{r['name']:<32} {r['closed_messages_per_s']:>7.0f} {spread:>13} {r['closed_p50_ms']:>7.2f} "
            f"{r['closed_p99_ms']:>7.2f} {r['ratio']:>5.2f}  {r['open_achieved_per_s']:>7.0f} "
            f"{r['open_p50_ms']:>7.2f} {r['open_p99_ms']:>8.2f} {r['open_unsent']:>7}"
        )
    print("\nCPU during the closed loop (cores busy, median of the rounds):")
    groups = ("client", "server", "postgres_bench_db", "postgres_other", "other", "total")
    print(f"{'scenario':<32} " + " ".join(f"{g:>17}" for g in groups))
    for r in report["results"]:
        print(f"{r['name']:<32} " + " ".join(f"{r['cpu_cores'][g]:>17.2f}" for g in groups))
    print("\nCPU per message during the closed loop (ms, median of the rounds), and the cores divided by their sum:")
    print(f"{'scenario':<32} {'client':>9} {'server':>9} {'postgres':>9} {'sum':>9} {'bound msg/s':>12}")
    for r in report["results"]:
        per = r["cpu_ms_per_message"]
        print(
            f"{r['name']:<32} {per['client']:>9.3f} {per['server']:>9.3f} {per['postgres_bench_db']:>9.3f} "
            f"{sum(per.values()):>9.3f} {r['cpu_bound_per_s']:>12.0f}"
        )
    print("\nThreads runnable but waiting for a CPU during the closed loop (mean number, median of the rounds):")
    print(f"{'scenario':<32} " + " ".join(f"{g:>17}" for g in GROUPS))
    for r in report["results"]:
        print(f"{r['name']:<32} " + " ".join(f"{r['waiting_for_cpu'][g]:>17.2f}" for g in GROUPS))
    print("\nPostgreSQL backends of the scratch database during the closed loop (mean number in each state):")
    for r in report["results"]:
        if "backends" in r:
            states = ", ".join(f"{key} {value:.1f}" for key, value in list(r["backends"].items())[:6])
            print(f"{r['name']:<32} {states}")
    print("\nStored (as the owner, after the run) against acknowledged (200 answers, warm-up included):")
    for r in report["results"]:
        if "stored" in r:
            rows = r["stored"]
            others = {k: v for k, v in r["answers"].items() if k != "200"}
            print(
                f"{r['name']:<32} acked {r['acked']}, messages {rows['messages']} "
                f"({'equal' if r['acked_equals_stored'] else 'NOT EQUAL'}); conversations {rows['conversations']}, "
                f"contacts {rows['contacts']}, events {rows['events']} "
                f"({'= messages + conversations = last seq' if r['events_consistent'] else 'INCONSISTENT'}), "
                f"dead letters {rows['dead_letters']}, other answers {others or 'none'}"
            )
    print(
        f"\ntargets: >= {report['target_messages_per_s']:.0f} messages/s; ack p99 <= {report['target_p99_ms']:g} ms at "
        f"{report['rate']:g}/s"
    )
    for r in report["results"]:
        if "stored" in r:
            print(
                f"{r['name']:<32} throughput {'met' if r['throughput_target_met'] else 'not met'}, "
                f"latency {'met' if r['latency_target_met'] else 'not met'}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure webhook intake against a bare aiohttp JSON POST.")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured time per mode and scenario (15)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices the seconds are split in (3)")
    parser.add_argument("--rate", type=float, default=2000.0, help="open loop: messages a second (2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="closed loop: requests in flight (64)")
    parser.add_argument("--in-flight", type=int, default=256, help="open loop: most requests in flight (256)")
    parser.add_argument("--customers", type=int, default=3000, help="distinct customers writing (3000)")
    parser.add_argument("--tenants", type=int, default=8, help="tenants of the multi-tenant scenario (8)")
    parser.add_argument("--pool", type=int, default=20, help="the server's database connections (20)")
    parser.add_argument(
        "--max-rate", type=float, default=10_000.0, help="closed loop: bodies signed per second of a slice (10000)"
    )
    args = parser.parse_args()
    if not 0 < args.seconds <= MAX_SECONDS:
        return fail(f"--seconds must be more than 0 and at most {MAX_SECONDS}")
    if not 1 <= args.rounds <= 100:
        return fail("--rounds must be between 1 and 100")
    if not 1 <= args.rate <= 50_000:
        return fail("--rate must be between 1 and 50000")
    if not 1 <= args.concurrency <= 1000 or not 1 <= args.in_flight <= 1000:
        return fail("--concurrency and --in-flight must be between 1 and 1000")
    if not 1 <= args.customers <= 1_000_000:
        return fail("--customers must be between 1 and 1000000")
    if not 2 <= args.tenants <= 1000:
        return fail("--tenants must be between 2 and 1000")
    if not 1 <= args.pool <= 90:
        return fail("--pool must be between 1 and 90 (PostgreSQL's default max_connections is 100)")
    if not 100 <= args.max_rate <= 100_000:
        return fail("--max-rate must be between 100 and 100000")
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
