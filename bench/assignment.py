"""Benchmark of the assignment engine: a burst of waiting conversations drained by one and by three instances,
and the latency from an agent freeing capacity to their next conversation being assigned.

    python bench/assignment.py [--agents A] [--capacity C] [--conversations N] [--queues Q] [--memberships M]
                               [--instances 1,3] [--rate R] [--seconds S] [--warmup W] [--backlog B]
                               [--pool P] [--batch K] [--grace G] [--timeout T] [--profile DIR]
                               [--skip-burst] [--skip-latency]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or, when unset, the
embedded PostgreSQL in `FIV_DATA_DIR`, it makes a migrated scratch database, and for each run a tenant of its
own (deleted after the run): Q queues, a channel, A agents (role agent, `online`, max_concurrent C, each a
member of M queues: agent i of queues i, i+1, ... mod Q, and connected: a row in `agent_connections` with a
fresh `seen_at`, and a presence grace of G seconds, so no lease lapses during the run). The tables are
analyzed once the run's rows are in, as autovacuum would have done on a live database.

An instance is a separate process (this script run with `--worker`) with its own pool of P connections to
the scratch database as `fiv_app`, running the package's `AssignmentLoop` (batch K); what it announces goes
to a recorder that notes CLOCK_MONOTONIC (one clock for every process on the machine) right after each
commit, and, as the hub does for `hub.listen` in fiv_console/app.py, tells the instance's own loop.

1. Burst: N waiting conversations (queue i mod Q, one millisecond apart in their line) are inserted in one
   transaction; then each of the run's instances, told to start at the same instant, calls
   `AssignmentLoop.run_once(tenant)` over and over until nothing waits (or every agent is full). Throughput =
   the assignments / (the last assignment's commit - the start). Then, as the owner: every conversation
   assigned, each by exactly one `conversation.assigned` event; no agent over capacity; the tenant's event
   seqs without a gap; and how many conversations were assigned after a younger one of the same queue.
2. Freed -> assigned: every agent holds C conversations (inserted assigned) and B more wait. Agents free
   capacity one at a time, at R a second for W + S seconds: close k is agent k mod A's oldest conversation,
   closed by that agent (`conversations.close` inside `events.changing`, as the API's close does, minus the
   HTTP request) on instance (k mod A) mod I, the instance the agent's console would talk to. Each instance
   runs `AssignmentLoop.run()` as a server does: woken only by what it announces itself (so a close wakes
   the instance it was made on, and no other), and sweeping every tenant every `SWEEP_INTERVAL` seconds.
   Latency = the commit of the agent's next `conversation.assigned` (the first with a higher seq than the
   close's, whichever instance made it) - the commit of the close; the closes of the first W seconds are
   not counted. After the schedule it waits until every agent is full again (at most two sweeps more).

The ceilings, measured in the same run on a pool of one connection as the owner, one transaction at a
time: a bare `begin; select 1; commit`, and a transaction updating 100 rows of a 5,000-row table by id
(the write a claim of 100 makes, without the claim).

Evidence, per run: the CPU of the instances, of PostgreSQL's backends of the scratch database and of the
machine (psutil), the states of those backends sampled from `pg_stat_activity` (bench/intake.py), and the
worst freed -> assigned latency of each measured second (a stall shows as a few bad seconds).
With `--profile DIR` each instance also runs under cProfile (DIR/<run>-<i>.prof) and times every statement
it sends (asyncpg's query logger: wall time per statement, round trip included); the slowest statements
are printed. Profiling slows the instances: its figures are for finding where the time goes, not results.

It prints a table and, last, one JSON line; stops the instances and drops the scratch database. The targets
(>= 2,000 assignments/s draining 5,000 over 500 agents; freed -> assigned p99 <= 50 ms; no double
assignment with three instances) are reported, not asserted: this is a measurement, not a test. Results go
in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import orjson
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
    start_worker,
    stop_workers,
)
from intake import _busy_seconds, _percentile_ms, _run_queue_wait, sampling_waits

from fiv_console import events
from fiv_console.access import Viewer
from fiv_console.accounts import tenants
from fiv_console.assignment.loop import SWEEP_INTERVAL, AssignmentLoop
from fiv_console.conversations import lifecycle as conversations
from fiv_console.db.pool import DATABASE_TROUBLE, Database, create_database, tenant_tx
from fiv_console.errors import Conflict, Forbidden, NotFound
from fiv_console.events import Event
from fiv_console.routing import channels, queues
from fiv_console.serving import run_async

TARGET_ASSIGNMENTS_PER_S = 2_000.0
TARGET_P99_MS = 50.0
WORKER_SCRIPT = str(Path(__file__).resolve())
# The instances start together this long after they are told, so that none has a head start.
START_DELAY_SECONDS = 0.3
READY_TIMEOUT_SECONDS = 60.0
CEILING_SECONDS = 2.0
CEILING_ROWS = 5_000
CEILING_BATCH = 100
SETTLE_POLL_SECONDS = 0.02
MAX_SECONDS = 600


# --- an instance (this script run with --worker) ----------------------------------------------------------
#
# It reads one JSON line on stdin ({"app_url", "pool", "grace", "batch", "statements"}), opens its pool and
# prints {"ready": pid}. Then, one JSON line per command, one JSON line back:
#   {"do": "warm", "tenant"}                                  -> {"warm": assigned}
#   {"do": "burst", "tenant", "start_ns", "deadline_s", "full", "profile"}  -> the burst's record
#   {"do": "latency", "tenant", "start_ns", "rate", "closes", "profile"}    -> {"scheduled": closes}, once
#       every close it was given is done; its loop keeps running until
#   {"do": "stop"}                                            -> the latency run's record
# It exits when stdin closes.


@dataclass(slots=True)
class Recorder:
    """The instance's announcer: when each committed event was announced, and the instance's own loop told,
    as `hub.listen(assignment.heard)` tells it in a server."""

    listener: AssignmentLoop | None = None
    # (agent id, seq, CLOCK_MONOTONIC ns when announced)
    assigned: list[tuple[str, int, int]] = field(default_factory=list)
    closed: list[tuple[str, int, int]] = field(default_factory=list)
    # One per committed claim that assigned something: (ns, how many)
    claims: list[tuple[int, int]] = field(default_factory=list)

    def announce(self, tenant_id: UUID, announced: Sequence[Event]) -> None:
        at = time.monotonic_ns()
        count = 0
        for event in announced:
            if event.type == "conversation.assigned":
                self.assigned.append((event.payload["conversation"]["agent_id"], event.seq, at))
                count += 1
            elif event.type == "conversation.closed":
                self.closed.append((event.payload["conversation"]["agent_id"], event.seq, at))
        if count:
            self.claims.append((at, count))
        if self.listener is not None and announced:
            self.listener.heard(tenant_id, announced)


class Statements:
    """Wall time per statement (round trip included) over every connection of the pool: asyncpg's query logger."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def log(self, record: Any) -> None:
        key = " ".join(record.query.split())[:110]
        entry = self.times[key]
        entry[0] += 1
        entry[1] += record.elapsed

    def take(self) -> dict[str, list[float]]:
        taken, self.times = dict(self.times), defaultdict(lambda: [0, 0.0])
        return taken


def _emit(value: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


async def _sleep_until(at_ns: int) -> None:
    if (delay := (at_ns - time.monotonic_ns()) / 1e9) > 0:
        await asyncio.sleep(delay)


_COUNTS_SQL = """
select count(*) filter (where status = 'waiting') as waiting, count(*) filter (where status = 'assigned') as assigned
from conversations
"""


async def _burst(db: Database, command: dict[str, Any], batch: int, grace: float) -> dict[str, Any]:
    """run_once until nothing waits or every agent is full; a run_once that assigned nothing while something
    waits (another instance holds it) is tried again a millisecond later."""
    tenant_id = UUID(command["tenant"])
    recorder = Recorder()
    loop = AssignmentLoop(db, recorder, grace=grace, batch=batch)
    rounds = empty_rounds = assigned = 0
    await _sleep_until(command["start_ns"])
    deadline = time.monotonic() + command["deadline_s"]
    while time.monotonic() < deadline:
        done = await loop.run_once(tenant_id)
        rounds += 1
        assigned += done
        if done:
            continue
        empty_rounds += 1
        async with tenant_tx(db, tenant_id) as conn:
            counts = await conn.fetchrow(_COUNTS_SQL)
        assert counts is not None
        if counts["waiting"] == 0 or counts["assigned"] >= command["full"]:
            break
        await asyncio.sleep(0.001)
    return {
        "assigned": assigned,
        "rounds": rounds,
        "empty_rounds": empty_rounds,
        "claims": recorder.claims,
        "timed_out": time.monotonic() >= deadline,
    }


# What a close may meet and count instead of ending the run.
_CLOSE_FAILURES: tuple[type[BaseException], ...] = (*DATABASE_TROUBLE, Conflict, Forbidden, NotFound)
# The agent's oldest conversation that no close of this instance is taking already.
_PICK_SQL = """
select id from conversations
where status = 'assigned' and agent_id = $1 and not (id = any($2::uuid[]))
order by assigned_at, id
limit 1
"""


@dataclass(slots=True)
class Closer:
    """Closes conversations on a schedule, as their agents would through the API: each close its own task,
    so a slow one does not hold the next back."""

    db: Database
    recorder: Recorder
    tenant_id: UUID
    taking: dict[str, set[UUID]] = field(default_factory=lambda: defaultdict(set))
    errors: Counter[str] = field(default_factory=Counter)
    # (due ns, committed ns) of each close that committed
    done: list[tuple[int, int]] = field(default_factory=list)

    async def close_one(self, agent: str, due_ns: int) -> None:
        agent_id = UUID(agent)
        taking = self.taking[agent]
        conversation_id: UUID | None = None
        try:
            async with tenant_tx(self.db, self.tenant_id) as conn:
                conversation_id = await conn.fetchval(_PICK_SQL, agent_id, list(taking))
            if conversation_id is None:
                self.errors["nothing to close"] += 1
                return
            taking.add(conversation_id)
            viewer = Viewer(tenant_id=self.tenant_id, role="agent", user_id=agent_id)
            async with events.changing(self.db, self.recorder, self.tenant_id) as (conn, batch):
                moved = await conversations.close(conn, viewer=viewer, conversation_id=conversation_id, reason="done")
                conversations.announce_move(batch, "conversation.closed", moved)
            self.done.append((due_ns, time.monotonic_ns()))
        except _CLOSE_FAILURES as exc:
            self.errors[type(exc).__name__] += 1
        finally:
            if conversation_id is not None:
                taking.discard(conversation_id)

    async def run(self, start_ns: int, rate: float, closes: list[tuple[int, str]]) -> None:
        tasks = []
        for serial, agent in closes:
            due = start_ns + int(serial * 1e9 / rate)
            await _sleep_until(due)
            tasks.append(asyncio.create_task(self.close_one(agent, due)))
        await asyncio.gather(*tasks)


@dataclass(slots=True)
class LatencyRun:
    recorder: Recorder
    closer: Closer
    loop_task: asyncio.Task[None]
    profiler: cProfile.Profile | None
    profile_path: str | None


async def _start_latency(db: Database, command: dict[str, Any], batch: int, grace: float) -> LatencyRun:
    tenant_id = UUID(command["tenant"])
    recorder = Recorder()
    loop = AssignmentLoop(db, recorder, grace=grace, batch=batch)
    recorder.listener = loop
    profiler = _start_profile(command)
    run = LatencyRun(
        recorder,
        Closer(db, recorder, tenant_id),
        asyncio.create_task(loop.run(), name="assignment-loop"),
        profiler,
        command["profile"],
    )
    await run.closer.run(command["start_ns"], command["rate"], [(k, a) for k, a in command["closes"]])
    return run


def _start_profile(command: dict[str, Any]) -> cProfile.Profile | None:
    if not command["profile"]:
        return None
    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _stop_profile(profiler: cProfile.Profile | None, path: str | None) -> None:
    if profiler is not None and path:
        profiler.disable()
        profiler.dump_stats(path)


async def _log_statements(db: Database, pool_size: int, statements: Statements) -> None:
    """The logger on every connection of the pool (it stays with a connection when it goes back)."""
    held = [await db.pool.acquire() for _ in range(pool_size)]
    for conn in held:
        conn.add_query_logger(statements.log)
    for conn in held:
        await db.pool.release(conn)


async def _worker() -> int:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=2**27)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    config = orjson.loads(await commands.readline())
    db = await create_database(
        config["app_url"],
        min_size=config["pool"],
        max_size=config["pool"],
        acquire_timeout=5.0,
        command_timeout=30.0,
    )
    statements = Statements()
    if config["statements"]:
        await _log_statements(db, config["pool"], statements)
    batch, grace = config["batch"], config["grace"]
    latency: LatencyRun | None = None
    _emit({"ready": os.getpid()})
    try:
        while line := await commands.readline():
            command = orjson.loads(line)
            if command["do"] == "warm":
                assigned = await AssignmentLoop(db, Recorder(), grace=grace, batch=batch).run_once(
                    UUID(command["tenant"])
                )
                statements.take()
                _emit({"warm": assigned})
            elif command["do"] == "burst":
                profiler = _start_profile(command)
                result = await _burst(db, command, batch, grace)
                _stop_profile(profiler, command["profile"])
                _emit(result | {"statements": statements.take()})
            elif command["do"] == "latency":
                latency = await _start_latency(db, command, batch, grace)
                _emit({"scheduled": len(command["closes"])})
            elif command["do"] == "stop" and latency is not None:
                latency.loop_task.cancel()
                await asyncio.gather(latency.loop_task, return_exceptions=True)
                _stop_profile(latency.profiler, latency.profile_path)
                _emit(
                    {
                        "assigned": latency.recorder.assigned,
                        "closed": latency.recorder.closed,
                        "claims": latency.recorder.claims,
                        "close_times": latency.closer.done,
                        "close_errors": dict(latency.closer.errors),
                        "statements": statements.take(),
                    }
                )
                latency = None
    finally:
        if latency is not None:
            latency.loop_task.cancel()
            await asyncio.gather(latency.loop_task, return_exceptions=True)
        await db.pool.close()
    return 0


# --- the instances, seen from here ---------------------------------------------------------------------------


class Instances:
    """The run's instance processes, asked and stopped together."""

    def __init__(self, processes: list[asyncio.subprocess.Process], errors: list[Any]) -> None:
        self.processes = processes
        self._errors = errors

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def _read(self, index: int) -> dict[str, Any]:
        process = self.processes[index]
        assert process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            await process.wait()
            self._errors[index].seek(0)
            tail = self._errors[index].read()[-3000:].decode(errors="replace")
            raise BenchError(f"instance {index} exited (code {process.returncode}):\n{tail}")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    async def ask(self, commands: Sequence[dict[str, Any] | None], seconds: float) -> list[dict[str, Any]]:
        """Command i to instance i (None: just read its next line); every answer, within `seconds`."""

        async def one(index: int, command: dict[str, Any] | None) -> dict[str, Any]:
            process = self.processes[index]
            assert process.stdin is not None
            if command is not None:
                process.stdin.write(orjson.dumps(command) + b"\n")
                await process.stdin.drain()
            return await self._read(index)

        async with asyncio.timeout(seconds):
            return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(commands))))

    async def ask_all(self, command: dict[str, Any], seconds: float) -> list[dict[str, Any]]:
        return await self.ask([command] * len(self.processes), seconds)


@asynccontextmanager
async def instances(count: int, scratch: Scratch, args: argparse.Namespace) -> AsyncIterator[Instances]:
    """`count` instance processes, each with its pool open; every one gone on the way out."""
    processes: list[asyncio.subprocess.Process] = []
    config = {
        "app_url": scratch.app_url,
        "pool": args.pool,
        "grace": args.grace,
        "batch": args.batch,
        "statements": bool(args.profile),
    }
    with ExitStack() as files:
        errors = [files.enter_context(tempfile.TemporaryFile()) for _ in range(count)]
        try:
            for index in range(count):
                processes.append(await start_worker(WORKER_SCRIPT, config, errors[index]))
            fleet = Instances(processes, errors)
            await fleet.ask([None] * count, READY_TIMEOUT_SECONDS)
            yield fleet
        finally:
            await stop_workers(processes, 30)


# --- CPU ---------------------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds, and seconds spent runnable but waiting for a CPU, of the instances, of PostgreSQL's
    backends of the scratch database, of this process, and the machine's busy time."""

    def __init__(self, database: str, pids: list[int]) -> None:
        self._marker = f" {database} "
        self._pids = pids

    def snapshot(self) -> dict[str, Any]:
        cpu: defaultdict[str, float] = defaultdict(float)
        waited: defaultdict[str, float] = defaultdict(float)
        for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            info = process.info
            ours = self._marker in " ".join(info["cmdline"] or ()) + " "
            if info["name"] == "postgres" and info["cpu_times"] is not None and ours:
                cpu["postgres_bench_db"] += info["cpu_times"].user + info["cpu_times"].system
                waited["postgres_bench_db"] += _run_queue_wait(process.pid)
        for index, pid in enumerate(self._pids):
            with suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                cpu[f"instance {index}"] = times.user + times.system
                waited["instances"] += _run_queue_wait(pid)
        times = psutil.Process().cpu_times()
        cpu["this process"] = times.user + times.system
        return {"at": time.perf_counter(), "busy": _busy_seconds(psutil.cpu_times()), "cpu": cpu, "waited": waited}

    @staticmethod
    def cores(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        """Cores busy on average per group, the instances' sum, the machine's; threads waiting for a CPU."""
        wall = after["at"] - before["at"]
        used = {k: (after["cpu"][k] - before["cpu"].get(k, 0.0)) / wall for k in after["cpu"]}
        used["instances"] = sum(v for k, v in used.items() if k.startswith("instance "))
        used["machine"] = (after["busy"] - before["busy"]) / wall
        # Whatever else the machine ran: a shared machine's other work shows here.
        used["other"] = max(
            0.0, used["machine"] - used["instances"] - used["this process"] - used.get("postgres_bench_db", 0.0)
        )
        for key in after["waited"]:
            used[f"waiting: {key}"] = (after["waited"][key] - before["waited"].get(key, 0.0)) / wall
        used["wall"] = wall
        return used

    @staticmethod
    def ms_per(cores: dict[str, float], count: int) -> dict[str, float]:
        """CPU ms per assignment of the instances and of PostgreSQL: it hardly depends on what else runs."""
        return {
            group: cores.get(group, 0.0) * cores["wall"] * 1000 / count if count else 0.0
            for group in ("instances", "postgres_bench_db")
        }


# --- the tenant of a run --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cast:
    tenant_id: UUID
    channel_id: UUID
    queue_ids: list[UUID]
    agent_ids: list[UUID]

    def agent_queue(self, agent: int) -> UUID:
        """The first of the agent's queues."""
        return self.queue_ids[agent % len(self.queue_ids)]


_AGENTS_SQL = """
insert into users (tenant_id, email, name, role, password_hash, max_concurrent, status, status_changed_at,
                   connected, connected_changed_at)
select $1, 'agent-' || g || '@' || $2 || '.bench.invalid', 'Agent ' || g, 'agent', 'not a password hash', $3,
       'online', now(), true, now()
from generate_series(1, $4) g
returning id
"""
_MEMBERS_SQL = """
insert into queue_members (tenant_id, queue_id, user_id) select $1, q, u from unnest($2::uuid[], $3::uuid[]) as t(q, u)
"""
_CONNECTIONS_SQL = """
insert into agent_connections (tenant_id, user_id, instance_id, sockets, seen_at)
select $1, u, gen_random_uuid(), 1, now() from unnest($2::uuid[]) as u
"""
_CONTACTS_SQL = """
insert into contacts (tenant_id, wa_id) select $1, $2 || lpad(g::text, 9, '0') from generate_series(1, $3) g
returning id
"""
# Conversation i entered its line `offset` seconds ago; an agent given means it is assigned to them.
_CONVERSATIONS_SQL = """
insert into conversations (tenant_id, channel_id, contact_id, queue_id, agent_id, status, enqueued_at, assigned_at)
select $1, $2, contact, queue, agent, case when agent is null then 'waiting' else 'assigned' end,
       now() - make_interval(secs => offset_s),
       case when agent is null then null else now() - make_interval(secs => offset_s) end
from unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::float8[]) as t(contact, queue, agent, offset_s)
"""


async def make_cast(db: Database, serial: int, args: argparse.Namespace) -> Cast:
    """A tenant with its queues, a channel and the agents, every agent available, through the server's role."""
    tenant = await tenants.create_tenant(db, tenants.TenantCreate(name=f"Bench assignment {serial}"))
    async with tenant_tx(db, tenant.id) as conn:
        queue_ids = [
            (await queues.create_queue(conn, tenant_id=tenant.id, data=queues.QueueCreate(name=f"Queue {q}"))).id
            for q in range(args.queues)
        ]
        channel = await channels.create_channel(
            conn,
            tenant_id=tenant.id,
            data=channels.ChannelCreate(
                phone_number_id=f"1777{serial:08d}",
                display_number=f"+1 777 {serial:04d}",
                default_queue_id=queue_ids[0],
            ),
        )
        agent_ids = [
            r["id"] for r in await conn.fetch(_AGENTS_SQL, tenant.id, tenant.id.hex[:12], args.capacity, args.agents)
        ]
        pairs = [
            (queue_ids[(a + m) % args.queues], agent_id)
            for a, agent_id in enumerate(agent_ids)
            for m in range(args.memberships)
        ]
        await conn.execute(_MEMBERS_SQL, tenant.id, [q for q, _ in pairs], [u for _, u in pairs])
        await conn.execute(_CONNECTIONS_SQL, tenant.id, agent_ids)
    return Cast(tenant.id, channel.id, queue_ids, agent_ids)


async def add_conversations(
    db: Database, cast: Cast, prefix: str, queue_ids: list[UUID], agent_ids: list[UUID | None], offsets: list[float]
) -> None:
    """One conversation per item (each with a new contact), in one transaction."""
    async with tenant_tx(db, cast.tenant_id) as conn:
        contacts = [r["id"] for r in await conn.fetch(_CONTACTS_SQL, cast.tenant_id, prefix, len(queue_ids))]
        await conn.execute(_CONVERSATIONS_SQL, cast.tenant_id, cast.channel_id, contacts, queue_ids, agent_ids, offsets)


async def analyze(owner_url: str) -> None:
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute("analyze")
    finally:
        await conn.close()


async def delete_tenant(owner_url: str, tenant_id: UUID) -> None:
    conn = await asyncpg.connect(owner_url)
    try:
        async with in_tenant(conn, tenant_id):
            await conn.execute("delete from tenants where id = $1", tenant_id)
    finally:
        await conn.close()


# --- checking what was done, as the owner ---------------------------------------------------------------------

# Filtered by tenant as well: a superuser owner bypasses row-level security.
_CHECK_SQL = """
select
  (select count(*) from conversations where tenant_id = $1 and status = 'waiting') as waiting,
  (select count(*) from conversations where tenant_id = $1 and status = 'assigned') as assigned,
  (select count(*) from conversations where tenant_id = $1 and status = 'closed') as closed,
  (select count(*) from (
     select c.agent_id from conversations c join users u on u.id = c.agent_id
     where c.tenant_id = $1 and c.status = 'assigned' group by c.agent_id, u.max_concurrent
     having count(*) > u.max_concurrent) x) as agents_over_capacity,
  (select count(*) from users u where u.tenant_id = $1 and u.role = 'agent' and u.max_concurrent > (
     select count(*) from conversations c where c.tenant_id = $1 and c.status = 'assigned' and c.agent_id = u.id))
     as agents_with_room,
  (select count(*) from (
     select conversation_id from events where tenant_id = $1 and type = 'conversation.assigned'
     group by conversation_id having count(*) > 1) x) as assigned_twice,
  (select count(*) from events where tenant_id = $1 and type = 'conversation.assigned') as assigned_events,
  (select count(*) from events where tenant_id = $1) as events,
  (select coalesce(max(seq), 0) from events where tenant_id = $1) as last_seq
"""
# In the order of the assignments' commits, each conversation's place in its queue's line. Events of one
# transaction have consecutive seqs (one append per transaction) and the same xmin.
_ORDER_SQL = """
select e.xmin::text as claim, c.queue_id, c.enqueued_at, c.id
from events e join conversations c on c.tenant_id = e.tenant_id and c.id = e.conversation_id
where e.tenant_id = $1 and e.type = 'conversation.assigned'
order by e.seq
"""


def _out_of_order(rows: list[asyncpg.Record]) -> int:
    """Conversations assigned by a later claim than a conversation of the same queue that entered the line
    after them (inside one claim the order of the events is not the order of choosing, and all commit at once)."""
    latest: dict[UUID, tuple[Any, UUID]] = {}
    out_of_order = 0
    claim_rows: list[asyncpg.Record] = []
    for index, row in enumerate(rows):
        claim_rows.append(row)
        if index + 1 < len(rows) and rows[index + 1]["claim"] == row["claim"]:
            continue
        for r in claim_rows:
            if r["queue_id"] in latest and (r["enqueued_at"], r["id"]) < latest[r["queue_id"]]:
                out_of_order += 1
        for r in claim_rows:
            latest[r["queue_id"]] = max(
                latest.get(r["queue_id"], (r["enqueued_at"], r["id"])), (r["enqueued_at"], r["id"])
            )
        claim_rows = []
    return out_of_order


async def check(owner_url: str, tenant_id: UUID) -> dict[str, int]:
    conn = await asyncpg.connect(owner_url)
    try:
        async with in_tenant(conn, tenant_id):
            row = await conn.fetchrow(_CHECK_SQL, tenant_id)
            order = await conn.fetch(_ORDER_SQL, tenant_id)
    finally:
        await conn.close()
    counts = {k: int(v) for k, v in dict(row or {}).items()}
    return counts | {"assigned_out_of_order": _out_of_order(order)}


# --- the ceilings -------------------------------------------------------------------------------------------


async def ceilings(scratch: Scratch) -> dict[str, float]:
    """One transaction at a time on a pool of one: `select 1`, and an update of 100 rows by id."""
    db = await create_database(scratch.owner_url, min_size=1, max_size=1, acquire_timeout=10, command_timeout=30)
    try:
        async with db.connection() as conn:
            await conn.execute(
                "create table bench_rows (id integer primary key, n integer not null, pad text not null);"
                f"insert into bench_rows select g, 0, repeat('x', 200) from generate_series(1, {CEILING_ROWS}) g;"
                "analyze bench_rows"
            )
        transactions = 0
        deadline = time.perf_counter() + CEILING_SECONDS
        while time.perf_counter() < deadline:
            async with db.connection() as conn, conn.transaction():
                await conn.fetchval("select 1")
            transactions += 1
        bare = transactions / CEILING_SECONDS
        updates = 0
        started = time.perf_counter()
        while time.perf_counter() < started + CEILING_SECONDS:
            first = updates * CEILING_BATCH % CEILING_ROWS
            async with db.connection() as conn, conn.transaction():
                await conn.execute(
                    "update bench_rows set n = n + 1 where id = any($1::integer[])",
                    list(range(first + 1, first + CEILING_BATCH + 1)),
                )
            updates += 1
        elapsed = time.perf_counter() - started
        async with db.connection() as conn:
            await conn.execute("drop table bench_rows")
    finally:
        await db.pool.close()
    return {
        "bare_transactions_per_s": bare,
        "bare_transaction_ms": 1000 / bare,
        "update_100_transactions_per_s": updates / elapsed,
        "update_100_rows_per_s": updates * CEILING_BATCH / elapsed,
    }


# --- the runs ---------------------------------------------------------------------------------------------------


def _statements(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every instance's statement times together, costliest first."""
    total: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for answer in answers:
        for key, (count, seconds) in answer["statements"].items():
            total[key][0] += count
            total[key][1] += seconds
    ranked = sorted(total.items(), key=lambda item: -item[1][1])
    return [
        {"statement": k, "count": int(c), "seconds": s, "mean_ms": s / c * 1000 if c else 0.0} for k, (c, s) in ranked
    ]


def _profile_path(args: argparse.Namespace, run: str, index: int) -> str | None:
    return str(Path(args.profile) / f"{run}-{index}.prof") if args.profile else None


async def burst_run(
    db: Database, scratch: Scratch, serial: int, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    cast = await make_cast(db, serial, args)
    full = args.agents * args.capacity
    async with instances(count, scratch, args) as fleet:
        await analyze(scratch.owner_url)
        await fleet.ask_all({"do": "warm", "tenant": str(cast.tenant_id)}, 60)
        n = args.conversations
        await add_conversations(
            db,
            cast,
            "55",
            [cast.queue_ids[i % args.queues] for i in range(n)],
            [None] * n,
            [(n - i) / 1000 for i in range(n)],
        )
        await analyze(scratch.owner_url)
        meter = CpuMeter(scratch.name, fleet.pids)
        start_ns = time.monotonic_ns() + int(START_DELAY_SECONDS * 1e9)
        commands = [
            {
                "do": "burst",
                "tenant": str(cast.tenant_id),
                "start_ns": start_ns,
                "deadline_s": args.timeout,
                "full": full,
                "profile": _profile_path(args, f"burst-{count}", i),
            }
            for i in range(count)
        ]
        await _sleep_until(start_ns - int(0.1e9))
        before = meter.snapshot()
        async with sampling_waits(scratch.owner_url, scratch.name) as waits:
            answers = await fleet.ask(commands, args.timeout + 60)
        after = meter.snapshot()
    checked = await check(scratch.owner_url, cast.tenant_id)
    await delete_tenant(scratch.owner_url, cast.tenant_id)
    claims = sorted(c for a in answers for c in a["claims"])
    assigned = sum(a["assigned"] for a in answers)
    last_ns = claims[-1][0] if claims else start_ns
    elapsed = (last_ns - start_ns) / 1e9
    half_ns = start_ns
    running = 0
    for at, n_claimed in claims:
        running += n_claimed
        if running >= assigned / 2:
            half_ns = at
            break
    rate = assigned / elapsed if elapsed > 0 else 0.0
    cores = CpuMeter.cores(before, after)
    expected = min(args.conversations, full)
    return {
        "name": f"burst, {count} instance{'s' if count > 1 else ''}",
        "instances": count,
        "conversations": args.conversations,
        "assigned": assigned,
        "assigned_per_instance": [a["assigned"] for a in answers],
        "seconds": elapsed,
        "assignments_per_s": rate,
        "first_ms": (claims[0][0] - start_ns) / 1e6 if claims else 0.0,
        "half_ms": (half_ns - start_ns) / 1e6,
        "claims": len(claims),
        "per_claim": assigned / len(claims) if claims else 0.0,
        "run_once_calls": sum(a["rounds"] for a in answers),
        "empty_run_once_calls": sum(a["empty_rounds"] for a in answers),
        "timed_out": any(a["timed_out"] for a in answers),
        "cpu_cores": cores,
        "cpu_ms_per_assignment": CpuMeter.ms_per(cores, assigned),
        "backends": dict(sorted(waits.items(), key=lambda item: -item[1])),
        "checked": checked,
        "every_one_assigned_once": (
            checked["assigned"] == expected == assigned == checked["assigned_events"] and checked["assigned_twice"] == 0
        ),
        "nobody_over_capacity": checked["agents_over_capacity"] == 0,
        "events_gapless": checked["events"] == checked["last_seq"],
        "target_met": rate >= TARGET_ASSIGNMENTS_PER_S and assigned == expected,
        "statements": _statements(answers) if args.profile else [],
    }


def _match(
    closes: list[tuple[str, int, int, int]], assigned: list[tuple[str, int, int, int]]
) -> list[tuple[int, int, int, int]]:
    """Each close to the agent's first assignment after it (by seq) not matched to an earlier close:
    (close ns, assigned ns or -1 if none came, the instance that closed, the one that assigned or -1)."""
    by_agent: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for agent, seq, at, index in assigned:
        by_agent[agent].append((seq, at, index))
    for found in by_agent.values():
        found.sort()
    used: dict[str, int] = defaultdict(int)
    matched = []
    for agent, seq, at, index in sorted(closes, key=lambda c: c[1]):
        found = by_agent[agent]
        position = used[agent]
        while position < len(found) and found[position][0] < seq:
            position += 1
        if position < len(found):
            matched.append((at, found[position][1], index, found[position][2]))
            used[agent] = position + 1
        else:
            matched.append((at, -1, index, -1))
    return matched


async def latency_run(
    db: Database, scratch: Scratch, serial: int, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    cast = await make_cast(db, serial, args)
    agents, capacity = args.agents, args.capacity
    full = agents * capacity
    total_closes = math.ceil(args.rate * (args.warmup + args.seconds))
    backlog = args.backlog if args.backlog is not None else total_closes + 1000
    # Every agent full (their conversations in their own queue), and the backlog waiting behind.
    await add_conversations(
        db,
        cast,
        "56",
        [cast.agent_queue(a) for a in range(agents) for _ in range(capacity)],
        [cast.agent_ids[a] for a in range(agents) for _ in range(capacity)],
        [3600.0 + a * capacity + c for a in range(agents) for c in range(capacity)],
    )
    await add_conversations(
        db,
        cast,
        "57",
        [cast.queue_ids[i % args.queues] for i in range(backlog)],
        [None] * backlog,
        [(backlog - i) / 1000 for i in range(backlog)],
    )
    await analyze(scratch.owner_url)
    schedule: list[list[tuple[int, str]]] = [[] for _ in range(count)]
    for k in range(total_closes):
        agent = k % agents
        schedule[agent % count].append((k, str(cast.agent_ids[agent])))
    async with instances(count, scratch, args) as fleet:
        await fleet.ask_all({"do": "warm", "tenant": str(cast.tenant_id)}, 60)
        meter = CpuMeter(scratch.name, fleet.pids)
        start_ns = time.monotonic_ns() + int(START_DELAY_SECONDS * 1e9)
        measured_from = start_ns + int(args.warmup * 1e9)
        commands = [
            {
                "do": "latency",
                "tenant": str(cast.tenant_id),
                "start_ns": start_ns,
                "rate": args.rate,
                "closes": schedule[i],
                "profile": _profile_path(args, f"latency-{count}", i),
            }
            for i in range(count)
        ]
        schedule_seconds = args.warmup + args.seconds + START_DELAY_SECONDS
        # The CPU and the backends' states over the measured seconds only.
        async with sampling_waits(scratch.owner_url, scratch.name) as waits:
            asked = asyncio.create_task(fleet.ask(commands, schedule_seconds + 60))
            await _sleep_until(measured_from)
            before = meter.snapshot()
            await _sleep_until(start_ns + int((args.warmup + args.seconds) * 1e9))
            after = meter.snapshot()
            scheduled = await asked
        settled = await _settle(scratch.owner_url, cast.tenant_id, full)
        answers = await fleet.ask_all({"do": "stop"}, 60)
    checked = await check(scratch.owner_url, cast.tenant_id)
    await delete_tenant(scratch.owner_url, cast.tenant_id)

    closes = [(agent, seq, at, i) for i, a in enumerate(answers) for agent, seq, at in a["closed"]]
    assigned = [(agent, seq, at, i) for i, a in enumerate(answers) for agent, seq, at in a["assigned"]]
    matched = [m for m in _match(closes, assigned) if m[0] >= measured_from]
    latencies = sorted(assigned_at - closed_at for closed_at, assigned_at, _, _ in matched if assigned_at >= 0)
    close_times = sorted(done - due for a in answers for due, done in a["close_times"] if due >= measured_from)
    errors: Counter[str] = Counter()
    for a in answers:
        errors.update(a["close_errors"])
    by_instance = Counter(index for _, at, _, index in matched if at >= 0)
    # Assigned by the instance the close was made on (woken by it) rather than by another's sweep.
    by_closer = sum(1 for _, at, closer, index in matched if at >= 0 and closer == index)
    claims = sorted(c for a in answers for c in a["claims"])
    measured_claims = [
        n for at, n in claims if measured_from <= at < start_ns + int((args.warmup + args.seconds) * 1e9)
    ]
    p99 = _percentile_ms(latencies, 0.99)
    # The worst of each measured second: a stall (a sweep, a lock queue) shows as a few bad seconds.
    worst: dict[int, int] = {}
    for closed_at, assigned_at, _, _ in matched:
        if assigned_at >= 0:
            second = (closed_at - measured_from) // 1_000_000_000
            worst[second] = max(worst.get(second, 0), assigned_at - closed_at)
    cores = CpuMeter.cores(before, after)
    unmatched = sum(1 for _, at, _, _ in matched if at < 0)
    return {
        "name": f"freed -> assigned, {count} instance{'s' if count > 1 else ''}",
        "instances": count,
        "rate": args.rate,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "backlog": backlog,
        "closes_scheduled": sum(a["scheduled"] for a in scheduled),
        "closes_committed": len(closes),
        "close_errors": dict(errors),
        "closes_measured": len(matched),
        "closes_per_s": len(close_times) / args.seconds,
        "close_commit_after_due_p50_ms": _percentile_ms(close_times, 0.50),
        "close_commit_after_due_p99_ms": _percentile_ms(close_times, 0.99),
        "reassigned": len(latencies),
        "not_reassigned": unmatched,
        "p50_ms": _percentile_ms(latencies, 0.50),
        "p95_ms": _percentile_ms(latencies, 0.95),
        "p99_ms": p99,
        "max_ms": latencies[-1] / 1e6 if latencies else 0.0,
        "over_1s": sum(1 for n in latencies if n > 1e9),
        "max_ms_by_second": [round(worst[k] / 1e6, 1) for k in sorted(worst)],
        "assigned_by_instance": [by_instance[i] for i in range(count)],
        "assigned_by_the_closing_instance": by_closer,
        "claims_measured": len(measured_claims),
        "per_claim": sum(measured_claims) / len(measured_claims) if measured_claims else 0.0,
        "settle_seconds": settled,
        "cpu_cores": cores,
        "cpu_ms_per_assignment": CpuMeter.ms_per(cores, sum(measured_claims)),
        "backends": dict(sorted(waits.items(), key=lambda item: -item[1])),
        "checked": checked,
        "everyone_full_at_end": checked["agents_with_room"] == 0,
        "nobody_over_capacity": checked["agents_over_capacity"] == 0,
        "no_double_assignment": checked["assigned_twice"] == 0,
        "events_gapless": checked["events"] == checked["last_seq"],
        "target_met": p99 <= TARGET_P99_MS and unmatched == 0 and bool(latencies),
        "statements": _statements(answers) if args.profile else [],
    }


async def _settle(owner_url: str, tenant_id: UUID, full: int) -> float:
    """Seconds until every agent is full again (at most two sweeps and five seconds)."""
    started = time.perf_counter()
    deadline = started + 2 * SWEEP_INTERVAL + 5
    conn = await asyncpg.connect(owner_url)
    try:
        while time.perf_counter() < deadline:
            assigned = await conn.fetchval(
                "select count(*) from conversations where tenant_id = $1 and status = 'assigned'", tenant_id
            )
            if assigned >= full:
                break
            await asyncio.sleep(SETTLE_POLL_SECONDS)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    bursts: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    async with scratch_database(server, "fiv_bench_assignment") as scratch:
        ceiling = await ceilings(scratch)
        db = await create_database(scratch.app_url, min_size=1, max_size=2, acquire_timeout=10, command_timeout=120)
        try:
            serial = 0
            for count in args.instances:
                if not args.skip_burst:
                    serial += 1
                    bursts.append(await burst_run(db, scratch, serial, count, args))
            for count in args.instances:
                if not args.skip_latency:
                    serial += 1
                    latency.append(await latency_run(db, scratch, serial, count, args))
        finally:
            await db.pool.close()
        version = scratch.postgres_version
    return {
        **report_header("assignment", server, version, load_before),
        "agents": args.agents,
        "capacity": args.capacity,
        "queues": args.queues,
        "memberships": args.memberships,
        "pool": args.pool,
        "batch": args.batch,
        "grace": args.grace,
        "sweep_interval": SWEEP_INTERVAL,
        "profiled": bool(args.profile),
        "targets": {"assignments_per_s": TARGET_ASSIGNMENTS_PER_S, "p99_ms": TARGET_P99_MS},
        "ceiling": ceiling,
        "burst": bursts,
        "latency": latency,
    }


# --- the report -------------------------------------------------------------------------------------------


def _met(flag: bool) -> str:
    return "met" if flag else "NOT met"


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _cpu_line(r: dict[str, Any]) -> str:
    cores, per = r["cpu_cores"], r["cpu_ms_per_assignment"]
    instances = ", ".join(f"{cores[k]:.2f}" for k in sorted(cores) if k.startswith("instance "))
    return (
        f"instances {cores['instances']:.2f} ({instances}), postgres {cores.get('postgres_bench_db', 0.0):.2f}, "
        f"this process {cores['this process']:.2f}, other {cores['other']:.2f}, machine {cores['machine']:.2f}; "
        "waiting for a CPU: instances "
        f"{cores.get('waiting: instances', 0.0):.2f}, postgres {cores.get('waiting: postgres_bench_db', 0.0):.2f}; "
        f"ms per assignment: instances {per['instances']:.3f}, postgres {per['postgres_bench_db']:.3f}"
    )


def _print_statements(rows: list[dict[str, Any]]) -> None:
    for row in rows[:12]:
        print(f"    {row['seconds']:>7.2f} s {row['count']:>7} x {row['mean_ms']:>7.3f} ms  {row['statement']}")


def print_table(report: dict[str, Any]) -> None:
    print(
        f"assignment on {report['server']} PostgreSQL {report['postgres']}, {report['cpus']} cpus, "
        f"{report['memory_gib']:.0f} GiB; {report['agents']} agents x {report['capacity']}, {report['queues']} "
        f"queue(s), {report['memberships']} membership(s) each; pool {report['pool']} per instance, batch "
        f"{report['batch']}; load {report['load_1min_before']:.2f} before, {report['load_1min_after']:.2f} after"
        + ("; PROFILED (cProfile + statement timing): not results" if report["profiled"] else "")
    )
    c = report["ceiling"]
    print(
        f"ceilings, one at a time on one pooled connection: begin; select 1; commit "
        f"{c['bare_transactions_per_s']:.0f}/s "
        f"({c['bare_transaction_ms']:.2f} ms); a 100-row update by id {c['update_100_transactions_per_s']:.0f}/s = "
        f"{c['update_100_rows_per_s']:.0f} rows/s"
    )
    if report["burst"]:
        print(f"\nburst: {report['burst'][0]['conversations']} waiting conversations drained")
        print(
            f"{'run':<24} {'assigned':>8} {'s':>6} {'per s':>7} {'first ms':>9} {'half ms':>8} {'claims':>7} "
            f"{'per claim':>9} {'per instance':>18} {'once':>5} {'capacity':>8} {'gapless':>7}"
        )
        for r in report["burst"]:
            print(
                f"{r['name']:<24} {r['assigned']:>8} {r['seconds']:>6.2f} {r['assignments_per_s']:>7.0f} "
                f"{r['first_ms']:>9.1f} {r['half_ms']:>8.1f} {r['claims']:>7} {r['per_claim']:>9.1f} "
                f"{'/'.join(map(str, r['assigned_per_instance'])):>18} {_yes(r['every_one_assigned_once']):>5} "
                f"{_yes(r['nobody_over_capacity']):>8} {_yes(r['events_gapless']):>7}"
            )
        for r in report["burst"]:
            print(f"{r['name']:<24} CPU cores: {_cpu_line(r)}")
            states = ", ".join(f"{k} {v:.1f}" for k, v in list(r["backends"].items())[:5])
            print(f"{'':<24} backends: {states}")
            print(
                f"{'':<24} run_once calls {r['run_once_calls']} ({r['empty_run_once_calls']} assigned nothing); "
                f"assigned after a younger one of their queue: {r['checked']['assigned_out_of_order']}"
                + ("; TIMED OUT" if r["timed_out"] else "")
            )
            if r["statements"]:
                _print_statements(r["statements"])
    if report["latency"]:
        first = report["latency"][0]
        print(
            f"\nfreed -> assigned: closes at {first['rate']:g}/s for {first['seconds']:g} s after {first['warmup']:g} "
            f"s of warm-up, every agent full, {first['backlog']} waiting; ms from the close's commit to the "
            f"agent's next assignment's commit"
        )
        print(
            f"{'run':<30} {'closes/s':>8} {'p50':>7} {'p95':>7} {'p99':>8} {'max':>8} {'> 1 s':>6} {'none':>5} "
            f"{'by instance':>15} {'per claim':>9} {'full':>5} {'capacity':>8} {'once':>5}"
        )
        for r in report["latency"]:
            print(
                f"{r['name']:<30} {r['closes_per_s']:>8.0f} {r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} "
                f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.1f} {r['over_1s']:>6} {r['not_reassigned']:>5} "
                f"{'/'.join(map(str, r['assigned_by_instance'])):>15} {r['per_claim']:>9.2f} "
                f"{_yes(r['everyone_full_at_end']):>5} {_yes(r['nobody_over_capacity']):>8} "
                f"{_yes(r['no_double_assignment']):>5}"
            )
        for r in report["latency"]:
            print(f"{r['name']:<30} CPU cores: {_cpu_line(r)}")
            states = ", ".join(f"{k} {v:.1f}" for k, v in list(r["backends"].items())[:5])
            print(f"{'':<30} backends: {states}")
            print(
                f"{'':<30} closes committed {r['closes_committed']}/{r['closes_scheduled']}, errors "
                f"{r['close_errors'] or 'none'}, commit after its due time p50 "
                f"{r['close_commit_after_due_p50_ms']:.1f} p99 {r['close_commit_after_due_p99_ms']:.1f} ms; "
                f"full again {r['settle_seconds']:.2f} s after the schedule"
            )
            print(f"{'':<30} worst ms of each second {r['max_ms_by_second']}")
            if r["statements"]:
                _print_statements(r["statements"])
    targets = report["targets"]
    print(
        f"\ntargets: >= {targets['assignments_per_s']:.0f} assignments/s; freed -> assigned p99 <= "
        f"{targets['p99_ms']:g} ms; no double assignment"
    )
    for r in report["burst"]:
        print(f"{r['name']:<30} {r['assignments_per_s']:.0f}/s: {_met(r['target_met'])}")
    for r in report["latency"]:
        print(f"{r['name']:<30} p99 {r['p99_ms']:.1f} ms: {_met(r['target_met'])}")


def _instance_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or not all(1 <= c <= 8 for c in counts):
        raise argparse.ArgumentTypeError("a comma-separated list of 1 to 8")
    return counts


def main() -> int:
    if sys.argv[1:] == ["--worker"]:
        return run_async(_worker)
    parser = argparse.ArgumentParser(description="Measure the assignment engine: a burst, and freed -> assigned.")
    parser.add_argument("--agents", type=int, default=500, help="agents (500)")
    parser.add_argument("--capacity", type=int, default=10, help="each agent's max_concurrent (10)")
    parser.add_argument("--conversations", type=int, default=5000, help="waiting conversations of the burst (5000)")
    parser.add_argument("--queues", type=int, default=1, help="queues (1)")
    parser.add_argument("--memberships", type=int, default=1, help="queues each agent is a member of (1)")
    parser.add_argument(
        "--instances", type=_instance_counts, default=[1, 3], help="instance counts, one run each (1,3)"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="closes a second (200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds of closes (20)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of closes before the measured ones (2)")
    parser.add_argument("--backlog", type=int, help="waiting behind the full agents (default: closes + 1000)")
    parser.add_argument("--pool", type=int, default=20, help="each instance's database connections (20)")
    parser.add_argument("--batch", type=int, default=100, help="the loop's batch: conversations per claim (100)")
    parser.add_argument("--grace", type=float, default=3600.0, help="presence grace period, seconds (3600)")
    parser.add_argument("--timeout", type=float, default=120.0, help="most seconds a burst may take (120)")
    parser.add_argument("--profile", help="profile the instances (cProfile files and statement times) into DIR")
    parser.add_argument("--skip-burst", action="store_true", help="only the freed -> assigned runs")
    parser.add_argument("--skip-latency", action="store_true", help="only the bursts")
    args = parser.parse_args()
    if not 1 <= args.agents <= 10_000 or not 1 <= args.capacity <= 100:
        return fail("--agents must be 1-10000 and --capacity 1-100 (users.max_concurrent's range)")
    if not 1 <= args.conversations <= 200_000:
        return fail("--conversations must be between 1 and 200000")
    if not 1 <= args.queues <= 100 or not 1 <= args.memberships <= args.queues:
        return fail("--queues must be 1-100 and --memberships 1 to --queues")
    if not 1 <= args.rate <= 5_000 or not 0 < args.seconds <= MAX_SECONDS or not 0 <= args.warmup <= 60:
        return fail(f"--rate must be 1-5000, --seconds more than 0 and at most {MAX_SECONDS}, --warmup 0-60")
    if args.backlog is not None and not 0 <= args.backlog <= 1_000_000:
        return fail("--backlog must be between 0 and 1000000")
    if not 1 <= args.pool <= 30 or not 1 <= args.batch <= 1000:
        return fail("--pool must be 1-30 (three instances share max_connections) and --batch 1-1000")
    if not 1 <= args.grace <= 3600 or not 1 <= args.timeout <= MAX_SECONDS:
        return fail(f"--grace must be 1-3600 and --timeout 1-{MAX_SECONDS}")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
