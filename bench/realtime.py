"""Benchmark of realtime delivery: webhook -> agent socket latency, and the memory of an authenticated socket.

    python bench/realtime.py [--agents A] [--rate R] [--seconds N] [--warmup W] [--sockets S] [--workers K]
                             [--connecting C] [--in-flight F] [--pool P] [--compress] [--redis-url U]
                             [--logs DIR] [--skip-latency] [--skip-memory]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or, when unset, the
embedded PostgreSQL in `FIV_DATA_DIR`, it makes a migrated scratch database with one tenant, its queue and
channel, an admin and A agents (members of the queue), and runs `python -m fiv_console serve` processes on
it (LOG_LEVEL=WARNING, a pool of P connections; each one's log is kept, in DIR with --logs, and its warnings
and errors are counted in the report). The load comes from other processes: this one signs and posts the
webhooks, and K worker processes (this script with `--worker`) hold the sockets, opening at most C at once.

Set-up: every agent signs in once (`POST /api/auth/login`; the cookies serve every later server, as they
share SECRET_KEY), each of A customers sends one message (opening a waiting conversation), and the admin
assigns customer i's conversation to agent i (`POST /api/conversations/{id}/assign`), so that a later
message of customer i reaches agent i's socket and no other (no supervisor or admin is connected). The
users' password hash is Argon2id with small parameters (t=1, 1 MiB), made once: the server verifies it with
its own code in a millisecond instead of ~130 ms, so A sign-ins take seconds (sign-in is not measured here).

1. Latency, twice: one instance with the in-process bus; then two instances sharing PostgreSQL and Redis
   (U: REDIS_URL, else redis://127.0.0.1:6379/0), the sockets spread over both (agent i on instance i mod 2)
   and the webhooks posted to them in turn. Each agent has one socket (`GET /ws` with the cookie and the
   server's own `Origin`; it answers `hello` with `resume` at hello's seq, so live delivery starts at
   once). Webhooks are posted on a fixed schedule at R a second (intake.open_loop, at most F in flight;
   customer = serial mod A) for W seconds of warm-up, then N measured seconds; each text ends with the
   message's serial. Latency = CLOCK_MONOTONIC (shared by all the processes) when the POST is handed to the
   client -> when the worker holding the agent's socket reads the matching `message.created` frame. Lost =
   a measured message answered 200 whose frame never came (the workers are asked until every frame came or
   15 s passed); misrouted = a frame read on another agent's socket. Also: the 200 answers' latency from
   the schedule (as bench/intake.py); the frame's time less the time the POST's answer was read (negative:
   the frame came first), which is what the bus and the socket add beyond the intake; the worst latency of
   each measured second (a stall shows as a few bad seconds); the CPU each group of processes used during
   the measured seconds (intake.CpuMeter's groups: client = this process and the workers, server = every
   instance); and the servers' RSS before and after.
2. Memory: a bare aiohttp WebSocket server (uvloop; one `web.WebSocketResponse` handler that holds the
   socket), then a fresh `fiv-console serve` with the in-process bus; for each, 10 sockets are opened and
   closed (warm-up), VmRSS is read, S sockets are opened (the server's authenticated, S/A per agent; the
   cap WS_MAX_SOCKETS_PER_USER is raised only if S/A > 10), it settles 3 + 3 s, VmRSS is read again and
   the sockets still open are counted, then they are closed and VmRSS is read once more (what stays).
   Per socket = (VmRSS after - before) / the sockets still open.

With `--compress` the sockets offer permessage-deflate, as browsers do (aiohttp's server accepts it and then
keeps zlib state per socket once it has sent a frame); by default they do not.

It prints a table and, last, one JSON line; stops every process and drops the scratch database. The targets
(p99 <= 50 ms and p50 <= 10 ms through one instance, p99 <= 75 ms through two, at 1,000 messages/s with
1,000 agents, none lost; <= 30 KB per authenticated socket with 10,000 open) are reported, not asserted.
Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
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
from argon2 import PasswordHasher
from intake import (
    WEBHOOK_PATH,
    Child,
    CpuMeter,
    Post,
    Request,
    _percentile_ms,
    _run_queue_wait,
    child_process,
    closed_loop,
    count_rows,
    make_tenants,
    open_loop,
    poster,
)
from pydantic import SecretStr

from fiv_console.accounts import users
from fiv_console.constants import CSRF_HEADER, SESSION_COOKIE
from fiv_console.db.pool import create_database, tenant_tx
from fiv_console.routing import queues
from fiv_console.serving import free_port, run_async
from fiv_console.simulation.envelopes import text_message_envelope
from fiv_console.whatsapp.signature import SIGNATURE_HEADER, sign

TARGET_P50_ONE_MS = 10.0  # the targets: p50 <= 10 ms, p99 <= 50 ms on one instance
TARGET_P99_ONE_MS = 50.0
TARGET_P99_TWO_MS = 75.0
TARGET_SOCKET_KB = 30.0
PASSWORD = "bench realtime password"  # noqa: S105 - the scratch database's users only
CLIENT_TIMEOUT_SECONDS = 60.0
READY_TIMEOUT_SECONDS = 600.0
DRAIN_SECONDS = 15.0
SETTLE_SECONDS = 3.0
WARM_SOCKETS = 10
MAX_SECONDS = 300
# How many sign-ins and assignments are in flight at once.
SETUP_CONCURRENCY = 16
TEXT_PREFIX = "bench-rt"
WORKER_SCRIPT = str(Path(__file__).resolve())

# The ceiling for memory: what aiohttp on uvloop keeps for a WebSocket that nobody uses, before any of our code.
_BARE_SERVER = """
import sys
import uvloop
from aiohttp import web

async def health(request):
    return web.json_response({"status": "ok"})

async def hold(request):
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    async for _ in socket:
        pass
    return socket

app = web.Application()
app.router.add_get("/health", health)
app.router.add_get("/ws", hold)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=uvloop.new_event_loop())
"""


# --- the socket workers (this script run with --worker) --------------------------------------------------
#
# A worker reads one JSON line on stdin: {"sockets": [[agent, base_url, cookie or null], ...], "handshake": bool,
# "compress": bool, "connecting": n}. It opens the sockets, at most n at a time, answers each `hello` with
# `resume` (handshake), and prints {"ready": opened, "failed": {...}, "seconds": s}. Then, per line on stdin:
# "count" -> {"count": matched frames read so far, "open": sockets not closed}; "stop" -> {"received":
# [[serial, monotonic ns, agent], ...], "frames": {...}, "closed": {...}}, after which it closes its sockets
# and exits (as it does when stdin closes).


@dataclass(slots=True)
class _Held:
    received: list[tuple[int, int, int]] = field(default_factory=list)
    frames: Counter[str] = field(default_factory=Counter)
    closed: Counter[str] = field(default_factory=Counter)
    stopping: bool = False


async def _read_frames(ws: aiohttp.ClientWebSocketResponse, agent: int, held: _Held) -> None:
    marker = f'"text":"{TEXT_PREFIX} '
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        data: str = message.data
        if '"message.created"' in data and marker in data:
            at = time.monotonic_ns()
            frame = orjson.loads(data)
            serial = int(frame["data"]["message"]["text"].rsplit(" ", 1)[1])
            held.received.append((serial, at, agent))
            held.frames["event:message.created"] += 1
            continue
        frame = orjson.loads(data)
        held.frames[f"{frame.get('type')}:{frame.get('event', '')}".rstrip(":")] += 1
    if not held.stopping:
        held.closed[f"{ws.close_code}"] += 1


async def _open(
    session: aiohttp.ClientSession, spec: Sequence[Any], *, handshake: bool, compress: bool
) -> aiohttp.ClientWebSocketResponse:
    _, base, cookie = spec
    headers = {"Origin": base}
    if cookie is not None:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    ws = await session.ws_connect(f"{base}/ws", headers=headers, compress=15 if compress else 0)
    if handshake:
        hello = await ws.receive(timeout=CLIENT_TIMEOUT_SECONDS)
        if hello.type != aiohttp.WSMsgType.TEXT:
            await ws.close()
            raise BenchError(f"no hello: {hello.type.name}")
        frame = orjson.loads(hello.data)
        if frame.get("type") != "hello":
            await ws.close()
            raise BenchError(f"first frame {frame.get('type')!r}, not hello")
        await ws.send_str(orjson.dumps({"type": "resume", "last_seq": frame["data"]["last_seq"]}).decode())
    return ws


def _emit(value: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


async def _worker() -> int:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=2**27)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    config = orjson.loads(await commands.readline())
    held = _Held()
    failed: Counter[str] = Counter()
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    readers: list[asyncio.Task[None]] = []
    limit = asyncio.Semaphore(config["connecting"])
    started = time.perf_counter()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def connect(spec: Sequence[Any]) -> None:
            async with limit:
                try:
                    ws = await _open(session, spec, handshake=config["handshake"], compress=config["compress"])
                except aiohttp.WSServerHandshakeError as exc:
                    failed[f"HTTP {exc.status}"] += 1
                    return
                except (aiohttp.ClientError, TimeoutError, BenchError, OSError) as exc:
                    failed[type(exc).__name__] += 1
                    return
            sockets.append(ws)
            readers.append(asyncio.create_task(_read_frames(ws, spec[0], held)))

        await asyncio.gather(*(connect(spec) for spec in config["sockets"]))
        _emit({"ready": len(sockets), "failed": dict(failed), "seconds": time.perf_counter() - started})
        while command := (await commands.readline()).decode().strip():
            if command == "count":
                _emit({"count": len(held.received), "open": sum(1 for ws in sockets if not ws.closed)})
            elif command == "stop":
                held.stopping = True
                _emit(
                    {
                        "received": held.received,
                        "frames": dict(held.frames),
                        "closed": dict(held.closed),
                    }
                )
                break
        held.stopping = True
        with suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return 0


class Fleet:
    """K worker processes holding sockets; asked and stopped together."""

    def __init__(self, processes: list[asyncio.subprocess.Process], errors: list[Any]) -> None:
        self.processes = processes
        self._errors = errors
        self.ready = 0
        self.failed: Counter[str] = Counter()
        self.connect_seconds = 0.0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def _ask(self, command: str | None, seconds: float) -> list[dict[str, Any]]:
        async def one(index: int, process: asyncio.subprocess.Process) -> dict[str, Any]:
            assert process.stdin is not None
            assert process.stdout is not None
            if command is not None:
                process.stdin.write(command.encode() + b"\n")
                await process.stdin.drain()
            line = await process.stdout.readline()
            if not line:
                self._errors[index].seek(0)
                tail = self._errors[index].read()[-3000:].decode(errors="replace")
                raise BenchError(f"socket worker {index} exited (code {process.returncode}):\n{tail}")
            answer: dict[str, Any] = orjson.loads(line)
            return answer

        async with asyncio.timeout(seconds):
            return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(self.processes))))

    async def wait_ready(self) -> None:
        answers = await self._ask(None, READY_TIMEOUT_SECONDS)
        self.ready = sum(a["ready"] for a in answers)
        for answer in answers:
            self.failed.update(answer["failed"])
        self.connect_seconds = max(a["seconds"] for a in answers)

    async def count(self) -> int:
        """The matched `message.created` frames read so far."""
        return sum(a["count"] for a in await self._ask("count", 30))

    async def still_open(self) -> int:
        """The sockets not closed (by either side) so far."""
        return sum(a["open"] for a in await self._ask("count", 30))

    async def stop(self) -> dict[str, Any]:
        answers = await self._ask("stop", 60)
        frames: Counter[str] = Counter()
        closed: Counter[str] = Counter()
        received: list[list[int]] = []
        for answer in answers:
            frames.update(answer["frames"])
            closed.update(answer["closed"])
            received += answer["received"]
        return {"received": received, "frames": dict(frames), "closed": dict(closed)}


@asynccontextmanager
async def socket_fleet(
    specs: Sequence[tuple[int, str, str | None]], args: argparse.Namespace, *, handshake: bool, workers: int = 0
) -> AsyncIterator[Fleet]:
    """The sockets opened by `workers` processes (default --workers; spec i in worker i mod K), at most
    --connecting openings in flight over them all; all open (or failed) on entry, every worker gone on exit."""
    count = max(1, min(workers or args.workers, len(specs)))
    options = {"handshake": handshake, "compress": args.compress, "connecting": math.ceil(args.connecting / count)}
    processes: list[asyncio.subprocess.Process] = []
    with ExitStack() as files:
        errors = [files.enter_context(tempfile.TemporaryFile()) for _ in range(count)]
        try:
            await _start_workers(processes, errors, specs, options)
            fleet = Fleet(processes, errors)
            await fleet.wait_ready()
            yield fleet
        finally:
            await stop_workers(processes, 40)


async def _start_workers(
    processes: list[asyncio.subprocess.Process],
    errors: list[Any],
    specs: Sequence[tuple[int, str, str | None]],
    options: dict[str, Any],
) -> None:
    """One worker per error file, each given every len(errors)-th spec; appended to `processes` as started."""
    count = len(errors)
    for index in range(count):
        config = {"sockets": list(specs[index::count]), **options}
        processes.append(await start_worker(WORKER_SCRIPT, config, errors[index]))


# --- the processes under measurement ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instance:
    child: Child
    base: str
    log: Path

    @property
    def pid(self) -> int:
        return self.child.pid


def _log_tail(log: Path) -> str:
    try:
        return log.read_bytes()[-3000:].decode(errors="replace")
    except OSError:
        return ""


@asynccontextmanager
async def logged_child(
    name: str, command: list[str], env: dict[str, str], port: int, log: Path
) -> AsyncIterator[Instance]:
    """intake.child_process, with the process's output written to `log`, kept to be read afterwards.

    `sh -c 'exec ...'` replaces the shell with the command, so the pid (whose RSS is read) is the server's.
    """
    wrapped = ["/bin/sh", "-c", 'exec "$@" >"$0" 2>&1', str(log), *command]
    started = False
    try:
        async with child_process(name, wrapped, env, port) as child:
            started = True
            yield Instance(child, f"http://127.0.0.1:{port}", log)
    except BenchError as exc:
        if started:
            raise
        raise BenchError(f"{exc}\n{_log_tail(log)}") from None


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB (Linux)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def log_summary(log: Path) -> dict[str, int]:
    """The server's warnings and errors (JSON lines at LOG_LEVEL=WARNING), counted by level and message; lines
    that are not JSON (a traceback printed by something else) are counted by their first 100 characters."""
    counts: Counter[str] = Counter()
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        if not line.strip() or line.startswith("serving on "):  # the banner `serve` prints
            continue
        try:
            record = json.loads(line)
        except ValueError:
            counts[f"unparsed: {line.strip()[:100]}"] += 1
            continue
        if isinstance(record, dict):
            counts[f"{record.get('level')}: {record.get('msg')}"] += 1
    return dict(counts)


@dataclass(frozen=True, slots=True)
class Setting:
    """What every server of the run shares."""

    scratch: Scratch
    app_secret: str
    secret_key: str
    pool: int
    logs: Path

    def env(self, port: int, *, redis_url: str | None = None, max_sockets: int = 10) -> dict[str, str]:
        # PUBLIC_URL would make the server expect another Origin than the one the workers send.
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_APP_URL", "REDIS_URL", "PUBLIC_URL")}
        env |= {
            "DATABASE_URL": self.scratch.owner_url,
            "SECRET_KEY": self.secret_key,
            "WHATSAPP_APP_SECRET": self.app_secret,
            "WHATSAPP_VERIFY_NUMBERS": "false",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "DB_POOL_MIN_SIZE": str(self.pool),
            "DB_POOL_MAX_SIZE": str(self.pool),
            # Every sign-in of the run comes from 127.0.0.1 (only failures count; none is expected).
            "LOGIN_FAILURES_PER_ADDRESS": "100000",
            "WS_MAX_SOCKETS_PER_USER": str(max_sockets),
        }
        if redis_url:
            env["REDIS_URL"] = redis_url
        return env

    @asynccontextmanager
    async def server(self, name: str, **options: Any) -> AsyncIterator[Instance]:
        port = free_port()
        log = self.logs / f"{name.replace(' ', '-')}.log"
        command = [sys.executable, "-m", "fiv_console", "serve"]
        async with logged_child(name, command, self.env(port, **options), port, log) as instance:
            yield instance


# --- the cast: a tenant, its admin and agents, signed in, each agent with a conversation of their own --------


@dataclass(slots=True)
class Cast:
    tenant_id: UUID
    phone_number_id: str
    admin_email: str
    agent_emails: list[str]
    agent_ids: list[UUID]
    cookies: list[str] = field(default_factory=list)  # agent i's session cookie


async def make_cast(scratch: Scratch, agents: int) -> Cast:
    """One tenant (intake.make_tenants: a queue and a channel), an admin and `agents` agents in the queue."""
    made = (await make_tenants(scratch, 1))[0]
    # One cheap Argon2id hash for everybody (the server verifies it with its own code; see the docstring).
    password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    run = secrets.token_hex(3)
    cast = Cast(made.tenant_id, made.phone_number_id, f"admin-{run}@bench.example", [], [])
    db = await create_database(scratch.app_url, min_size=1, max_size=2, acquire_timeout=10, command_timeout=300)
    try:
        async with tenant_tx(db, made.tenant_id) as conn:
            queue_id = await conn.fetchval("select id from queues")

            async def person(email: str, name: str, role: users.Role) -> UUID:
                data = users.UserCreate(email=email, name=name, role=role, password=SecretStr(PASSWORD))
                user = await users.create_user(conn, tenant_id=made.tenant_id, data=data, password_hash=password_hash)
                return user.id

            await person(cast.admin_email, "Bench admin", "admin")
            for n in range(agents):
                email = f"agent{n:05d}-{run}@bench.example"
                agent_id = await person(email, f"Agent {n}", "agent")
                await queues.add_member(conn, tenant_id=made.tenant_id, queue_id=queue_id, user_id=agent_id)
                cast.agent_emails.append(email)
                cast.agent_ids.append(agent_id)
    finally:
        await db.pool.close()
    return cast


async def sign_in(session: aiohttp.ClientSession, base: str, email: str) -> tuple[str, str]:
    """(session cookie, CSRF token) of a fresh sign-in."""
    async with session.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD}) as response:
        body = await response.json()
        if response.status != 200:
            raise BenchError(f"sign-in of {email}: {response.status} {body}")
        return response.cookies[SESSION_COOKIE].value, str(body["data"]["csrf_token"])


async def gather_limited(work: Sequence[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(item: Any) -> Any:
        async with gate:
            return await item

    return list(await asyncio.gather(*(one(item) for item in work)))


class Messages:
    """Signed one-text-message webhooks: customer c (wa_id 55119 + c) writes to the cast's number; message
    `serial` comes from customer serial mod `customers` and its text ends with the serial."""

    def __init__(self, app_secret: bytes, phone_number_id: str, customers: int) -> None:
        self._secret = app_secret
        self._number = phone_number_id
        self.customers = customers
        self._run = secrets.token_hex(4)
        self._next = 0

    def one(self, serial: int, customer: int) -> Request:
        wa_id = f"55119{customer:08d}"
        body = text_message_envelope(
            self._number,
            "15550100",
            wa_id,
            f"Customer {customer}",
            f"{TEXT_PREFIX} {self._run} {serial}",
            wamid=f"wamid.rt.{self._run}.{serial:010d}",
            timestamp=int(time.time()),
            waba_id="WABA-BENCH",
        )
        return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}

    def batch(self, count: int) -> tuple[list[Request], dict[int, int]]:
        """The next `count` messages, and each body's serial by `id(body)`."""
        serials = range(self._next, self._next + count)
        self._next += count
        requests = [self.one(serial, serial % self.customers) for serial in serials]
        return requests, {id(body): serial for (body, _), serial in zip(requests, serials, strict=True)}


async def open_conversations(
    cast: Cast, messages: Messages, base: str, session: aiohttp.ClientSession, owner_url: str
) -> int:
    """Every agent signs in; each customer writes once; the admin gives customer i's conversation to agent i.
    Returns the 200 answers to the webhooks."""
    admin_cookie, csrf = await sign_in(session, base, cast.admin_email)
    signed = await gather_limited([sign_in(session, base, email) for email in cast.agent_emails], SETUP_CONCURRENCY)
    cast.cookies = [cookie for cookie, _ in signed]

    requests, _ = messages.batch(messages.customers)
    opened = await closed_loop(
        poster(session, base + WEBHOOK_PATH), requests, seconds=MAX_SECONDS, concurrency=SETUP_CONCURRENCY
    )
    if opened.statuses["200"] != len(requests):
        raise BenchError(f"opening the conversations: answers {dict(opened.statuses)}")

    conn = await asyncpg.connect(owner_url)
    try:
        async with in_tenant(conn, cast.tenant_id):
            rows = await conn.fetch(
                "select k.wa_id, c.id from conversations c join contacts k on k.tenant_id = c.tenant_id "
                "and k.id = c.contact_id where c.tenant_id = $1",
                cast.tenant_id,
            )
    finally:
        await conn.close()
    conversation_of = {row["wa_id"]: row["id"] for row in rows}

    headers = {"Cookie": f"{SESSION_COOKIE}={admin_cookie}", CSRF_HEADER: csrf}

    async def assign(customer: int) -> int:
        conversation_id = conversation_of[f"55119{customer:08d}"]
        async with session.post(
            f"{base}/api/conversations/{conversation_id}/assign",
            json={"agent_id": str(cast.agent_ids[customer])},
            headers=headers,
        ) as response:
            await response.read()
            return response.status

    answers = Counter(await gather_limited([assign(c) for c in range(len(cast.agent_ids))], SETUP_CONCURRENCY))
    if answers[200] != len(cast.agent_ids):
        raise BenchError(f"assigning the conversations: answers {dict(answers)}")
    return opened.statuses["200"]


# --- latency ------------------------------------------------------------------------------------------------


def cpu_snapshot(meter: CpuMeter, servers: list[int], clients: list[int]) -> dict[str, Any]:
    """intake.CpuMeter's snapshot (this process is `client`, the first server `server`, PostgreSQL's
    backends), with the other servers and the socket workers added to their groups.

    A backend that ends between two snapshots (asyncpg's pool replaces a connection after 50,000 queries,
    for one) would take its CPU out of PostgreSQL's count and leave it in `other`, so the CPU of the
    postmaster's ended children is counted too, under the key -postmaster pid. On a machine where other
    databases' backends end meanwhile, theirs is in it as well."""
    snapshot = meter.snapshot(servers[0])
    for group, pids in (("server", servers[1:]), ("client", clients)):
        for pid in pids:
            with suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                snapshot["processes"][pid] = (group, times.user + times.system, _run_queue_wait(pid))
    for pid, (group, _, _) in list(snapshot["processes"].items()):
        with suppress(psutil.Error):
            if group.startswith("postgres") and psutil.Process(pid).parent().name() != "postgres":
                times = psutil.Process(pid).cpu_times()
                snapshot["processes"][-pid] = ("postgres_bench_db", times.children_user + times.children_system, 0.0)
    return snapshot


def ended_backends_cores(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Of `postgres_bench_db`'s cores, those of backends that ended in between (see `cpu_snapshot`)."""
    ended = sum(
        float(cpu - before["processes"].get(pid, (group, cpu, 0.0))[1])
        for pid, (group, cpu, _) in after["processes"].items()
        if pid < 0
    )
    return ended / float(after["at"] - before["at"])


@dataclass(slots=True)
class Sends:
    """Per message serial: when its POST was handed to the client, its answer, and when the answer was read."""

    sent_ns: dict[int, int] = field(default_factory=dict)
    answers: dict[int, str] = field(default_factory=dict)
    answered_ns: dict[int, int] = field(default_factory=dict)


def recording(posts: list[Post], serial_of: dict[int, int], sends: Sends) -> Post:
    """A POST that notes the times and the answer of message `serial`; the instances in turn."""

    async def post(body: bytes, headers: dict[str, str]) -> str:
        serial = serial_of[id(body)]
        sends.sent_ns[serial] = time.monotonic_ns()
        answer = await posts[serial % len(posts)](body, headers)
        sends.answered_ns[serial] = time.monotonic_ns()
        sends.answers[serial] = answer
        return answer

    return post


def _ms(sorted_ns: list[int], fraction: float) -> float:
    return _percentile_ms(sorted_ns, fraction) if fraction < 1 else (sorted_ns[-1] / 1e6 if sorted_ns else 0.0)


async def latency_run(
    label: str,
    instances: list[Instance],
    cast: Cast,
    messages: Messages,
    args: argparse.Namespace,
    meter: CpuMeter,
    target_ms: float,
    target_p50_ms: float | None = None,
) -> dict[str, Any]:
    agents = len(cast.agent_ids)
    specs = [(n, instances[n % len(instances)].base, cast.cookies[n]) for n in range(agents)]
    rss_before = [memory_kb(i.pid)["VmRSS"] for i in instances]
    sends = Sends()
    sent_ns, answers = sends.sent_ns, sends.answers
    async with socket_fleet(specs, args, handshake=True) as fleet:
        await asyncio.sleep(1.0)
        connector = aiohttp.TCPConnector(limit=args.in_flight, limit_per_host=0)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS),
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as session:
            posts = [poster(session, i.base + WEBHOOK_PATH) for i in instances]
            warm_requests, warm_serials = messages.batch(int(args.rate * args.warmup))
            measured_requests, measured_serials = messages.batch(int(args.rate * args.seconds))
            warm = await open_loop(
                recording(posts, warm_serials, sends),
                warm_requests,
                rate=args.rate,
                in_flight=args.in_flight,
                grace=10.0,
            )
            servers, clients = [i.pid for i in instances], fleet.pids
            before = cpu_snapshot(meter, servers, clients)
            measured = await open_loop(
                recording(posts, measured_serials, sends),
                measured_requests,
                rate=args.rate,
                in_flight=args.in_flight,
                grace=10.0,
            )
            after = cpu_snapshot(meter, servers, clients)
            cores, waiting = CpuMeter.cores(before, after)
            ended = ended_backends_cores(before, after)
        accepted = sum(1 for a in answers.values() if a == "200")
        deadline = time.monotonic() + DRAIN_SECONDS
        drained = False
        while time.monotonic() < deadline:
            if drained := await fleet.count() >= accepted:
                break
            await asyncio.sleep(0.25)
        held = await fleet.stop()
        ready, failed, connect_seconds = fleet.ready, dict(fleet.failed), fleet.connect_seconds
    rss_after = [memory_kb(i.pid)["VmRSS"] for i in instances]

    first: dict[int, tuple[int, int]] = {}
    duplicates = 0
    for serial, at, agent in held["received"]:
        if serial in first:
            duplicates += 1
            first[serial] = min(first[serial], (at, agent))
        else:
            first[serial] = (at, agent)
    measured_set = set(measured_serials.values())
    latencies = sorted(
        first[s][0] - sent_ns[s] for s in measured_set if answers.get(s) == "200" and s in first and s in sent_ns
    )
    # The frame against the POST's answer: negative when the frame came first (the event is published after
    # commit, before the 200 is written), so what the bus and the socket add beyond the intake shows apart.
    after_answer = sorted(
        first[s][0] - sends.answered_ns[s] for s in measured_set if answers.get(s) == "200" and s in first
    )
    lost = sum(1 for s in measured_set if answers.get(s) == "200" and s not in first)
    warm_lost = sum(1 for s in warm_serials.values() if answers.get(s) == "200" and s not in first)
    misrouted = sum(1 for s, (_, agent) in first.items() if agent != s % messages.customers)
    refused = Counter(answers.get(s, "unsent") for s in measured_set if answers.get(s) != "200")
    p99 = _ms(latencies, 0.99)
    # The worst latency of each second of the measured schedule: a stall shows as a few bad seconds.
    start = min((sent_ns[s] for s in measured_set if s in sent_ns), default=0)
    by_second: dict[int, int] = {}
    for s in measured_set:
        if answers.get(s) == "200" and s in first:
            second = (sent_ns[s] - start) // 1_000_000_000
            by_second[second] = max(by_second.get(second, 0), first[s][0] - sent_ns[s])
    wall_messages = measured.sent or 1
    return {
        "name": label,
        "instances": len(instances),
        "agents": agents,
        "sockets_open": ready,
        "sockets_failed": failed,
        "connect_seconds": connect_seconds,
        "rate": args.rate,
        "warmup_seconds": args.warmup,
        "seconds": args.seconds,
        "measured": len(measured_set),
        "achieved_per_s": measured.sent / measured.elapsed if measured.elapsed else 0.0,
        "warm_achieved_per_s": warm.sent / warm.elapsed if warm.elapsed else 0.0,
        "unsent": measured.unsent,
        "refused": dict(refused),
        "accepted": accepted,  # 200 answers, warm-up included
        "delivered": len(latencies),
        "lost": lost,
        "warmup_lost": warm_lost,
        "misrouted": misrouted,
        "duplicates": duplicates,
        "frames_missing_after_s": None if drained else DRAIN_SECONDS,
        "p50_ms": _ms(latencies, 0.50),
        "p95_ms": _ms(latencies, 0.95),
        "p99_ms": p99,
        "max_ms": _ms(latencies, 1.0),
        "max_ms_by_second": [round(by_second[k] / 1e6, 1) for k in sorted(by_second)],
        "frame_after_answer_p50_ms": _percentile_ms(after_answer, 0.50),
        "frame_after_answer_p99_ms": _percentile_ms(after_answer, 0.99),
        "ack_p50_ms": _percentile_ms(sorted(measured.latencies_ns), 0.50),
        "ack_p99_ms": _percentile_ms(sorted(measured.latencies_ns), 0.99),
        "target_p99_ms": target_ms,
        "target_met": p99 <= target_ms and lost == 0 and not refused and measured.unsent == 0,
        "target_p50_ms": target_p50_ms,
        "p50_target_met": None if target_p50_ms is None else _ms(latencies, 0.50) <= target_p50_ms,
        "frames": held["frames"],
        "sockets_closed_by_server": held["closed"],
        "cpu_cores": cores,
        "ended_backends_cores": ended,
        "waiting_for_cpu": waiting,
        "cpu_ms_per_message": {
            g: cores[g] * measured.elapsed * 1000 / wall_messages for g in ("client", "server", "postgres_bench_db")
        },
        "server_rss_mb_before": [kb / 1024 for kb in rss_before],
        "server_rss_mb_after": [kb / 1024 for kb in rss_after],
        "server_log": {},
    }


# --- memory per socket ---------------------------------------------------------------------------------------


async def socket_memory(
    label: str,
    instance: Instance,
    specs: list[tuple[int, str, str | None]],
    args: argparse.Namespace,
    *,
    handshake: bool,
) -> dict[str, Any]:
    """RSS of the instance before and after `specs` sockets open, and after they closed again."""
    async with socket_fleet(specs[:WARM_SOCKETS], args, handshake=handshake, workers=1):
        pass
    await asyncio.sleep(SETTLE_SECONDS)
    before = memory_kb(instance.pid)
    async with socket_fleet(specs, args, handshake=handshake) as fleet:
        await asyncio.sleep(SETTLE_SECONDS)
        settled = memory_kb(instance.pid)
        await asyncio.sleep(SETTLE_SECONDS)
        after = memory_kb(instance.pid)
        still_open = await fleet.still_open()
        held = await fleet.stop()
        ready, failed, connect_seconds = fleet.ready, dict(fleet.failed), fleet.connect_seconds
    await asyncio.sleep(SETTLE_SECONDS)
    closed = memory_kb(instance.pid)
    return {
        "name": label,
        "sockets": len(specs),
        "sockets_open": ready,
        "sockets_failed": failed,
        "connect_seconds": connect_seconds,
        "connects_per_s": ready / connect_seconds if connect_seconds else 0.0,
        "rss_mb_before": before["VmRSS"] / 1024,
        "rss_mb_open": settled["VmRSS"] / 1024,
        "rss_mb_after": after["VmRSS"] / 1024,
        "hwm_mb_after": after["VmHWM"] / 1024,
        "rss_mb_closed": closed["VmRSS"] / 1024,
        "sockets_open_at_reading": still_open,
        "kb_per_socket": (after["VmRSS"] - before["VmRSS"]) / still_open if still_open else 0.0,
        "frames": held["frames"],
        "sockets_closed_by_server": held["closed"],
    }


# --- the run ---------------------------------------------------------------------------------------------------


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    latency: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fiv-bench-realtime-") as scratch_logs:
        logs = args.logs or scratch_logs
        async with scratch_database(server, "fiv_bench_realtime") as scratch:
            setting = Setting(scratch, secrets.token_urlsafe(32), secrets.token_urlsafe(32), args.pool, Path(logs))
            cast = await make_cast(scratch, args.agents)
            messages = Messages(setting.app_secret.encode(), cast.phone_number_id, args.agents)
            meter = CpuMeter(scratch.name)
            acked = 0
            async with (
                setting.server("one instance") as one,
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS), cookie_jar=aiohttp.DummyCookieJar()
                ) as session,
            ):
                acked += await open_conversations(cast, messages, one.base, session, scratch.owner_url)
                if not args.skip_latency:
                    latency.append(
                        await latency_run(
                            "one instance", [one], cast, messages, args, meter, TARGET_P99_ONE_MS, TARGET_P50_ONE_MS
                        )
                    )
            if latency:
                latency[-1]["server_log"] = log_summary(one.log)
            if not args.skip_latency:
                async with (
                    setting.server("instance A", redis_url=args.redis_url) as a,
                    setting.server("instance B", redis_url=args.redis_url) as b,
                ):
                    result = await latency_run("two instances", [a, b], cast, messages, args, meter, TARGET_P99_TWO_MS)
                latency.append(result | {"server_log": {"A": log_summary(a.log), "B": log_summary(b.log)}})
            acked += sum(r["accepted"] for r in latency)
            if not args.skip_memory:
                memory += await memory_runs(setting, cast, args)
            stored = await count_rows(scratch.owner_url, [cast.tenant_id])
            version = scratch.postgres_version
    return _report(server, version, args, latency, memory, stored | {"acked": acked}, load_before)


async def memory_runs(setting: Setting, cast: Cast, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The bare aiohttp WebSocket server, then a fresh `fiv-console serve`, each holding `--sockets` sockets."""
    results = []
    port = free_port()
    log = setting.logs / "bare-aiohttp.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    async with logged_child("bare aiohttp", [sys.executable, "-c", _BARE_SERVER, str(port)], env, port, log) as bare:
        specs: list[tuple[int, str, str | None]] = [(n, bare.base, None) for n in range(args.sockets)]
        results.append(await socket_memory("bare aiohttp WebSocket", bare, specs, args, handshake=False))
    results[-1]["server_log"] = log_summary(log)

    agents = len(cast.agent_ids)
    per_user = math.ceil(args.sockets / agents)
    async with setting.server("memory", max_sockets=max(10, per_user)) as ours:
        specs = [(n % agents, ours.base, cast.cookies[n % agents]) for n in range(args.sockets)]
        result = await socket_memory("fiv-console, authenticated", ours, specs, args, handshake=True)
    result |= {"sockets_per_agent": per_user, "server_log": log_summary(ours.log)}
    results.append(result)
    return results


def _report(
    server: Server,
    version: str,
    args: argparse.Namespace,
    latency: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    stored: dict[str, int],
    load_before: float,
) -> dict[str, Any]:
    if len(memory) == 2:
        bare, ours = memory
        ours["ratio_to_bare"] = ours["kb_per_socket"] / bare["kb_per_socket"] if bare["kb_per_socket"] else 0.0
        ours["target_met"] = (
            ours["kb_per_socket"] <= TARGET_SOCKET_KB and ours["sockets_open_at_reading"] == ours["sockets"]
        )
    return {
        **report_header("realtime", server, version, load_before),
        "agents": args.agents,
        "rate": args.rate,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "sockets": args.sockets,
        "workers": args.workers,
        "compress": args.compress,
        "pool": args.pool,
        "targets": {
            "p50_one_ms": TARGET_P50_ONE_MS,
            "p99_one_ms": TARGET_P99_ONE_MS,
            "p99_two_ms": TARGET_P99_TWO_MS,
            "kb_per_socket": TARGET_SOCKET_KB,
        },
        "latency": latency,
        "memory": memory,
        "stored": stored,
    }


def _met(flag: bool) -> str:
    return "met" if flag else "NOT met"


def print_table(report: dict[str, Any]) -> None:
    print(
        f"realtime on {report['server']} PostgreSQL {report['postgres']}, {report['cpus']} cpus, "
        f"{report['memory_gib']:.0f} GiB; {report['workers']} socket workers, sockets "
        f"{'offering' if report['compress'] else 'without'} permessage-deflate; load {report['load_1min_before']:.2f} "
        f"before, {report['load_1min_after']:.2f} after"
    )
    if report["latency"]:
        print(
            f"\nwebhook -> agent socket: {report['agents']} agent sockets, {report['rate']:g} messages/s for "
            f"{report['seconds']:g} s after {report['warmup']:g} s of warm-up (ms from the POST to the frame)"
        )
        print(
            f"{'':<22} {'':>7} {'':>7} {'':>7} {'':>7} {'':>8} {'p99':>7} {'':>5} {'':>9} {'':>8} "
            f"{'200 answer':>17} {'frame - answer':>17}"
        )
        print(
            f"{'run':<22} {'msg/s':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8} {'target':>7} "
            f"{'lost':>5} {'misrouted':>9} {'refused':>8} {'p50':>8} {'p99':>8} {'p50':>8} {'p99':>8}"
        )
        for r in report["latency"]:
            print(
                f"{r['name']:<22} {r['achieved_per_s']:>7.0f} {r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} "
                f"{r['p99_ms']:>7.2f} {r['max_ms']:>8.2f} {'<= ' + format(r['target_p99_ms'], 'g'):>7} "
                f"{r['lost']:>5} {r['misrouted']:>9} {sum(r['refused'].values()) + r['unsent']:>8} "
                f"{r['ack_p50_ms']:>8.2f} {r['ack_p99_ms']:>8.2f} "
                f"{r['frame_after_answer_p50_ms']:>8.2f} {r['frame_after_answer_p99_ms']:>8.2f}"
            )
        print("\nCPU during the measured seconds (cores busy; threads waiting for a CPU in brackets):")
        groups = ("client", "server", "postgres_bench_db", "postgres_other", "other", "total")
        print(f"{'run':<22} " + " ".join(f"{g:>17}" for g in groups))
        for r in report["latency"]:
            cells = [
                f"{r['cpu_cores'][g]:.2f}" + (f" ({r['waiting_for_cpu'][g]:.2f})" if g in r["waiting_for_cpu"] else "")
                for g in groups
            ]
            print(f"{r['name']:<22} " + " ".join(f"{c:>17}" for c in cells))
        print("\nPer run: sockets, frames, the servers' RSS (MB) before -> after, their warnings:")
        for r in report["latency"]:
            rss = ", ".join(
                f"{b:.0f} -> {a:.0f}" for b, a in zip(r["server_rss_mb_before"], r["server_rss_mb_after"], strict=True)
            )
            print(
                f"{r['name']:<22} sockets {r['sockets_open']}/{r['agents']} in {r['connect_seconds']:.1f} s "
                f"(failed {r['sockets_failed'] or 'none'}, "
                f"closed by the server {r['sockets_closed_by_server'] or 'none'}); "
                f"duplicates {r['duplicates']}, warm-up lost {r['warmup_lost']}; RSS {rss}; "
                f"ended PostgreSQL backends {r['ended_backends_cores']:.2f} cores"
            )
            print(f"{'':<22} frames {r['frames']}")
            print(f"{'':<22} worst ms of each second {r['max_ms_by_second']}")
            print(f"{'':<22} server log {r['server_log'] or 'empty'}")
    if report["memory"]:
        print(f"\nmemory per socket: {report['sockets']} sockets held by one server process (VmRSS, MB)")
        print(
            f"{'server':<28} {'open':>11} {'s':>6} {'before':>7} {'open':>7} {'+3 s':>7} {'closed':>7} "
            f"{'KB/socket':>10}"
        )
        for m in report["memory"]:
            held = f"{m['sockets_open_at_reading']}/{m['sockets']}"
            print(
                f"{m['name']:<28} {held:>11} {m['connect_seconds']:>6.1f} "
                f"{m['rss_mb_before']:>7.1f} {m['rss_mb_open']:>7.1f} {m['rss_mb_after']:>7.1f} "
                f"{m['rss_mb_closed']:>7.1f} {m['kb_per_socket']:>10.1f}"
            )
        for m in report["memory"]:
            print(
                f"{m['name']:<28} opened {m['sockets_open']}, failed {m['sockets_failed'] or 'none'}, "
                f"frames {m['frames']}"
            )
            print(
                f"{'':<28} closed by the server {m['sockets_closed_by_server'] or 'none'}; "
                f"log {m['server_log'] or 'empty'}"
            )
    stored = report["stored"]
    print(
        f"\nstored in the tenant: messages {stored['messages']}, conversations {stored['conversations']}, "
        f"events {stored['events']} (last seq {stored['last_seq']}), dead letters {stored['dead_letters']}; "
        f"webhooks answered 200: {stored['acked']} "
        f"({'=' if stored['acked'] == stored['messages'] else 'NOT ='} messages)"
    )
    targets = report["targets"]
    print(
        f"\ntargets: p99 <= {targets['p99_one_ms']:g} ms (p50 <= {targets['p50_one_ms']:g}) on one instance, "
        f"p99 <= {targets['p99_two_ms']:g} ms through two, "
        f"none lost; <= {targets['kb_per_socket']:g} KB per authenticated socket"
    )
    for r in report["latency"]:
        p50 = "" if r["p50_target_met"] is None else f" (p50 {r['p50_ms']:.1f} ms: {_met(r['p50_target_met'])})"
        print(f"{r['name']:<28} p99 {r['p99_ms']:.1f} ms, lost {r['lost']}: {_met(r['target_met'])}{p50}")
    for m in report["memory"]:
        if "target_met" in m:
            print(
                f"{m['name']:<28} {m['kb_per_socket']:.1f} KB per socket ({m['ratio_to_bare']:.1f}x bare aiohttp): "
                f"{_met(m['target_met'])}"
            )


def main() -> int:
    if sys.argv[1:] == ["--worker"]:
        return run_async(_worker)
    parser = argparse.ArgumentParser(description="Measure webhook -> agent socket latency and memory per socket.")
    parser.add_argument(
        "--agents", type=int, default=1000, help="agents, each with one socket and a conversation (1000)"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="webhooks a second (1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per latency run (20)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the measured ones (5)")
    parser.add_argument("--sockets", type=int, default=10_000, help="sockets of the memory runs (10000)")
    parser.add_argument("--workers", type=int, default=4, help="processes holding the sockets (4)")
    parser.add_argument(
        "--connecting", type=int, default=32, help="socket openings in flight, over all the workers (32)"
    )
    parser.add_argument("--in-flight", type=int, default=256, help="most webhooks in flight (256)")
    parser.add_argument("--pool", type=int, default=20, help="each server's database connections (20)")
    parser.add_argument("--compress", action="store_true", help="sockets offer permessage-deflate, as browsers do")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        help="Redis of the two-instance run (REDIS_URL, else redis://127.0.0.1:6379/0)",
    )
    parser.add_argument("--logs", help="keep the servers' logs in this directory (default: deleted at the end)")
    parser.add_argument("--skip-latency", action="store_true", help="only the memory runs")
    parser.add_argument("--skip-memory", action="store_true", help="only the latency runs")
    args = parser.parse_args()
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
    if not 1 <= args.agents <= 20_000:
        return fail("--agents must be between 1 and 20000")
    if not 1 <= args.rate <= 20_000:
        return fail("--rate must be between 1 and 20000")
    if not 0 < args.seconds <= MAX_SECONDS or not 0 <= args.warmup <= MAX_SECONDS:
        return fail(f"--seconds must be more than 0 and --warmup at least 0, both at most {MAX_SECONDS}")
    if not WARM_SOCKETS <= args.sockets <= 50_000:
        return fail(f"--sockets must be between {WARM_SOCKETS} and 50000")
    if args.sockets > args.agents * 1000:
        return fail("--sockets may be at most 1000 per agent (WS_MAX_SOCKETS_PER_USER's ceiling)")
    if not 1 <= args.workers <= 64 or not 1 <= args.in_flight <= 1000 or not 1 <= args.pool <= 40:
        return fail("--workers must be 1-64, --in-flight 1-1000, --pool 1-40 (two servers share max_connections)")
    if not 1 <= args.connecting <= 2000:
        return fail("--connecting must be between 1 and 2000")
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
