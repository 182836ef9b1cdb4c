"""Soak: one server under steady mixed traffic for minutes, its memory and PostgreSQL's read every 10 s.

    python bench/soak.py [--seconds S] [--warmup W] [--rate R] [--agents A] [--queues Q] [--customers C]
                         [--replies P] [--transfers T] [--closes X] [--sample N] [--workers K] [--pool P]
                         [--no-statuses] [--redis-url U] [--logs DIR]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or the embedded
PostgreSQL, it makes a migrated scratch database with one tenant: Q queues, each with a business number of
its own (a channel whose Graph API is this script's Cloud API simulator), and A agents, agent i a member
of queue i mod Q, each online with one console socket (held by K worker processes, as in
`bench/realtime.py`). One `python -m fiv_console serve` runs on it (with Redis when U or REDIS_URL is set,
else the in-process bus); its assignment loop hands the conversations to the agents.

For S seconds (600): C customers (customer c writes to number c mod Q) send R signed text webhooks a
second on a fixed schedule; agents act through the REST API on conversations they hold, picked at random
each second: P replies a second (sent to the simulator, which answers Meta's way and, unless
--no-statuses, posts the sent, delivered and read statuses back as webhooks), T transfers to the next
queue and X closes (the customer's next message opens a new conversation). Every N seconds (10) it reads
the RSS of the server and the USS and RSS of the scratch database's PostgreSQL backends, and what was
sent and answered so far. The ceiling, measured first on the same server: `GET /health` answered per
second by a closed loop of 64 (what the machine serves when nothing is stored).

At the end it waits for the sockets to catch up and checks that nothing was lost: every webhook answered
200 is a stored message; every reply answered 201 is a stored outbound message and a send the simulator
received; every `message.created` event of a customer's message reached each console socket of its
audience (the agent holding the conversation, or the queue's agents while it waited), read from the
event log; no socket was closed by the server, no dead letter, and no agent over capacity. Growth is the
last sample against the first after the W seconds of warm-up (60), for the server and PostgreSQL. The
target (issue #17: at most 5 % growth after warm-up at 500 messages/s with 1,000 sockets, no error,
nothing lost) is reported, not asserted. It prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
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
)
from argon2 import PasswordHasher
from intake import WEBHOOK_PATH, closed_loop, open_loop, poster
from pydantic import SecretStr
from realtime import (
    PASSWORD,
    TEXT_PREFIX,
    Instance,
    Setting,
    gather_limited,
    log_summary,
    logged_child,
    memory_kb,
    sign_in,
    socket_fleet,
)

from fiv_console.accounts import tenants, users
from fiv_console.constants import CSRF_HEADER, SESSION_COOKIE
from fiv_console.db.pool import create_database, tenant_tx
from fiv_console.routing import channels, queues
from fiv_console.serving import free_port
from fiv_console.simulation.cloud_api import SimulatorConfig, SimulatorServer, WebhookDelivery
from fiv_console.simulation.envelopes import text_message_envelope
from fiv_console.whatsapp.signature import SIGNATURE_HEADER, sign

TARGET_GROWTH = 0.05
TARGET_RATE = 500.0
TARGET_SOCKETS = 1000
ACCESS_TOKEN = "soak-access-token"  # noqa: S105 - the simulator's, on loopback
SETUP_CONCURRENCY = 16
CLIENT_TIMEOUT_SECONDS = 60.0
DRAIN_SECONDS = 30.0
SLICE_SECONDS = 2.0  # the schedule is built this many seconds at a time, not all in memory at once
CEILING_SECONDS = 3.0
MAX_SECONDS = 3600.0


# --- the tenant --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Cast:
    tenant_id: UUID
    phone_number_ids: list[str]
    queue_ids: list[UUID]
    agent_emails: list[str]
    agent_ids: list[UUID]
    capacity: int = 3
    cookies: list[str] = field(default_factory=list)
    csrf: list[str] = field(default_factory=list)


async def make_cast(scratch: Scratch, args: argparse.Namespace) -> Cast:
    """The tenant, its queues and numbers (sending through the simulator's token) and its agents."""
    password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    run = secrets.token_hex(3)
    db = await create_database(scratch.app_url, min_size=1, max_size=2, acquire_timeout=10, command_timeout=300)
    try:
        tenant = await tenants.create_tenant(db, tenants.TenantCreate(name="Soak tenant"))
        cast = Cast(tenant.id, [], [], [], [])
        async with tenant_tx(db, tenant.id) as conn:
            for q in range(args.queues):
                queue = await queues.create_queue(conn, tenant_id=tenant.id, data=queues.QueueCreate(name=f"Queue {q}"))
                number = f"1556{q:08d}"
                await channels.create_channel(
                    conn,
                    tenant_id=tenant.id,
                    data=channels.ChannelCreate(
                        phone_number_id=number,
                        display_number=f"+1 556 {q:04d}",
                        default_queue_id=queue.id,
                        access_token=SecretStr(ACCESS_TOKEN),
                    ),
                )
                cast.queue_ids.append(queue.id)
                cast.phone_number_ids.append(number)
            for n in range(args.agents):
                email = f"agent{n:05d}-{run}@soak.example"
                data = users.UserCreate(email=email, name=f"Agent {n}", role="agent", password=SecretStr(PASSWORD))
                user = await users.create_user(conn, tenant_id=tenant.id, data=data, password_hash=password_hash)
                await queues.add_member(
                    conn, tenant_id=tenant.id, queue_id=cast.queue_ids[n % args.queues], user_id=user.id
                )
                cast.agent_emails.append(email)
                cast.agent_ids.append(user.id)
            cast.capacity = int(await conn.fetchval("select max(max_concurrent) from users"))
    finally:
        await db.pool.close()
    return cast


class Customers:
    """Signed one-text webhooks: message `serial` comes from customer serial mod C, to number customer mod Q,
    its text ending with the serial (what the socket workers match)."""

    def __init__(self, app_secret: bytes, numbers: list[str], customers: int) -> None:
        self._secret = app_secret
        self._numbers = numbers
        self.customers = customers
        self._run = secrets.token_hex(4)
        self.next = 0

    def batch(self, count: int) -> list[tuple[bytes, dict[str, str]]]:
        made = []
        for serial in range(self.next, self.next + count):
            customer = serial % self.customers
            body = text_message_envelope(
                self._numbers[customer % len(self._numbers)],
                "15550100",
                f"55219{customer:08d}",
                f"Customer {customer}",
                f"{TEXT_PREFIX} {self._run} {serial}",
                wamid=f"wamid.soak.{self._run}.{serial:010d}",
                timestamp=int(time.time()),
                waba_id="WABA-SOAK",
            )
            made.append((body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}))
        self.next += count
        return made


# --- memory ------------------------------------------------------------------------------------------------


def postgres_memory_kb(database: str) -> dict[str, int]:
    """USS and RSS (kB) summed over the backends of `database` (their titles name it): what the server's
    connections hold of their own, and with the shared buffers each has touched."""
    marker = f" {database} "
    uss = rss = backends = 0
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] != "postgres" or marker not in " ".join(process.info["cmdline"] or ()) + " ":
            continue
        with suppress(psutil.Error):
            info = process.memory_full_info()
            uss += info.uss // 1024
            rss += info.rss // 1024
            backends += 1
    return {"uss_kb": uss, "rss_kb": rss, "backends": backends}


@dataclass(slots=True)
class Tally:
    """What the load got back so far."""

    webhooks: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)  # "reply 201", "close 409", ...
    late_ns: list[int] = field(default_factory=list)  # each webhook's answer after its scheduled time
    unsent: int = 0


async def sampler(
    started: float, every: float, server: Instance, scratch: Scratch, tally: Tally, samples: list[dict[str, Any]]
) -> None:
    while True:
        server_kb = memory_kb(server.pid)
        postgres = await asyncio.to_thread(postgres_memory_kb, scratch.name)
        samples.append(
            {
                "at_s": round(time.monotonic() - started, 1),
                "server_rss_kb": server_kb["VmRSS"],
                "postgres_uss_kb": postgres["uss_kb"],
                "postgres_rss_kb": postgres["rss_kb"],
                "postgres_backends": postgres["backends"],
                "webhooks_200": tally.webhooks["200"],
                "replies_201": tally.actions["reply 201"],
                "load_1min": os.getloadavg()[0],
            }
        )
        await asyncio.sleep(every)


# --- the load ----------------------------------------------------------------------------------------------


async def customers_write(
    customers: Customers,
    post: Callable[[bytes, dict[str, str]], Awaitable[str]],
    args: argparse.Namespace,
    tally: Tally,
) -> None:
    """R webhooks a second for S seconds, scheduled a slice at a time (intake.open_loop per slice); a server
    that falls behind does not stretch the run: the slices not begun by the deadline count as unsent."""
    slices = max(1, round(args.seconds / SLICE_SECONDS))
    per_slice = max(1, round(args.rate * args.seconds / slices))
    deadline = time.monotonic() + args.seconds
    for index in range(slices):
        if time.monotonic() >= deadline:
            tally.unsent += per_slice * (slices - index)
            break
        done = await open_loop(post, customers.batch(per_slice), rate=args.rate, in_flight=args.in_flight, grace=5.0)
        tally.webhooks.update(done.statuses)
        tally.late_ns += done.latencies_ns
        tally.unsent += done.unsent


class Desk:
    """The agents' hands: every second, conversations held by agents picked at random, and on each one
    action (a reply, a transfer to the next queue, or a close) by the agent who holds it, spread over the
    second."""

    def __init__(
        self, cast: Cast, base: str, session: aiohttp.ClientSession, owner: asyncpg.Connection, tally: Tally
    ) -> None:
        self._cast = cast
        self._base = base
        self._session = session
        self._owner = owner
        self._tally = tally
        self._agent_index = {agent_id: n for n, agent_id in enumerate(cast.agent_ids)}
        self._next_queue = {
            queue_id: cast.queue_ids[(q + 1) % len(cast.queue_ids)] for q, queue_id in enumerate(cast.queue_ids)
        }
        self._busy: set[UUID] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._random = random.Random(7)  # noqa: S311 - picks conversations, nothing secret
        self._replies = 0

    async def run(self, args: argparse.Namespace) -> None:
        plan = ["reply"] * round(args.replies) + ["transfer"] * round(args.transfers) + ["close"] * round(args.closes)
        if not plan:
            return
        deadline = time.monotonic() + args.seconds
        while (tick := time.monotonic()) < deadline:
            async with in_tenant(self._owner, self._cast.tenant_id):
                held = await self._owner.fetch(
                    "select id, agent_id, queue_id from conversations "
                    "where tenant_id = $1 and status = 'assigned' order by random() limit $2",
                    self._cast.tenant_id,
                    len(plan) + len(self._busy),
                )
            free = [row for row in held if row["id"] not in self._busy][: len(plan)]
            self._random.shuffle(plan)
            for n, (row, action) in enumerate(zip(free, plan, strict=False)):
                self._busy.add(row["id"])
                task = asyncio.create_task(self._act(action, row, delay=n / len(plan)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(max(0.0, tick + 1.0 - time.monotonic()))
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _act(self, action: str, row: asyncpg.Record, *, delay: float) -> None:
        conversation_id: UUID = row["id"]
        try:
            await asyncio.sleep(delay)
            agent = self._agent_index[row["agent_id"]]
            url = f"{self._base}/api/conversations/{conversation_id}"
            if action == "reply":
                self._replies += 1
                url, body = f"{url}/messages", {"text": f"soak reply {self._replies}"}
            elif action == "transfer":
                url, body = f"{url}/transfer", {"queue_id": str(self._next_queue[row["queue_id"]])}
            else:
                url, body = f"{url}/close", {"reason": "resolved"}
            headers = {"Cookie": f"{SESSION_COOKIE}={self._cast.cookies[agent]}", CSRF_HEADER: self._cast.csrf[agent]}
            try:
                async with self._session.post(url, json=body, headers=headers) as response:
                    await response.read()
                    answer = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                answer = type(exc).__name__
            self._tally.actions[f"{action} {answer}"] += 1
        finally:
            self._busy.discard(conversation_id)


# --- the checks --------------------------------------------------------------------------------------------


async def expected_frames(
    owner: asyncpg.Connection, cast: Cast, agents_of_queue: dict[UUID, list[int]]
) -> set[tuple[int, int]]:
    """(serial, agent) for every agent socket each customer message's `message.created` event was addressed to
    (its audience: the whole tenant, or the members of some queues and some people; supervisors have none)."""
    expected: set[tuple[int, int]] = set()
    agent_index = {agent_id: n for n, agent_id in enumerate(cast.agent_ids)}
    async with in_tenant(owner, cast.tenant_id):
        rows = await owner.fetch(
            "select audience, audience_queue_ids, audience_user_ids, payload->'message'->>'text' as text "
            "from events where tenant_id = $1 and type = 'message.created' and payload->'message'->>'text' like $2",
            cast.tenant_id,
            f"{TEXT_PREFIX} %",
        )
    everyone = range(len(cast.agent_ids))
    for row in rows:
        serial = int(row["text"].rsplit(" ", 1)[1])
        if row["audience"] == "tenant":
            expected.update((serial, agent) for agent in everyone)
        elif row["audience"] == "members":
            for queue_id in row["audience_queue_ids"]:
                expected.update((serial, agent) for agent in agents_of_queue.get(queue_id, []))
            expected.update((serial, agent_index[u]) for u in row["audience_user_ids"] if u in agent_index)
    return expected


_STORED_SQL = """
select
    (select count(*) from messages where tenant_id = $1 and direction = 'inbound') as inbound,
    (select count(*) from messages where tenant_id = $1 and direction = 'outbound') as outbound,
    (select count(*) from messages where tenant_id = $1 and direction = 'outbound'
        and status in ('queued', 'failed')) as outbound_not_sent,
    (select count(*) from conversations where tenant_id = $1) as conversations,
    (select count(*) from conversations where tenant_id = $1 and status = 'closed') as closed,
    (select count(*) from conversations where tenant_id = $1 and status = 'waiting') as waiting,
    (select count(*) from events where tenant_id = $1) as events,
    (select count(*) from (
        select c.agent_id from conversations c join users u on u.tenant_id = c.tenant_id and u.id = c.agent_id
        where c.tenant_id = $1 and c.status = 'assigned' group by c.agent_id, u.max_concurrent
        having count(*) > u.max_concurrent
    ) over) as agents_over_capacity
"""


async def stored(owner: asyncpg.Connection, cast: Cast) -> dict[str, int]:
    async with in_tenant(owner, cast.tenant_id):
        row = await owner.fetchrow(_STORED_SQL, cast.tenant_id)
    counts = {key: int(value) for key, value in dict(row or {}).items()}
    counts["dead_letters"] = int(await owner.fetchval("select count(*) from webhook_dead_letters"))
    return counts


async def sends_settled(owner: asyncpg.Connection, cast: Cast) -> None:
    """Until no reply waits in the server's send queue (or DRAIN_SECONDS passed): replies are answered 201
    when queued, and sent just after."""
    for _ in range(int(DRAIN_SECONDS * 2)):
        async with in_tenant(owner, cast.tenant_id):
            queued = await owner.fetchval(
                "select count(*) from messages where tenant_id = $1 and direction = 'outbound' and status = 'queued'",
                cast.tenant_id,
            )
        if not queued:
            return
        await asyncio.sleep(0.5)


def status_outcomes(deliveries: list[WebhookDelivery]) -> dict[str, Any]:
    """The simulator's status webhooks: each (message, status) delivered or not after its attempts (it
    retries as Meta does), and the attempts that failed, by what the simulator saw."""
    planned = {(d.wamid, d.status) for d in deliveries}
    delivered = {(d.wamid, d.status) for d in deliveries if d.answer_status == 200}
    failed = Counter(
        str(d.answer_status) if d.answer_status is not None else (d.error or "no answer")[:80]
        for d in deliveries
        if d.answer_status != 200
    )
    return {
        "statuses_planned": len(planned),
        "statuses_undelivered": len(planned - delivered),
        "status_attempts_failed": dict(failed),
    }


def growth(samples: list[dict[str, Any]], key: str, warmup: float) -> dict[str, Any]:
    """The last sample against the first taken after the warm-up, and the largest."""
    after = [s for s in samples if s["at_s"] >= warmup] or samples[-1:]
    if not after:
        return {"first_kb": 0, "last_kb": 0, "max_kb": 0, "growth": 0.0}
    first, last = after[0][key], after[-1][key]
    return {
        "first_kb": first,
        "last_kb": last,
        "max_kb": max(s[key] for s in after),
        "growth": (last - first) / first if first else 0.0,
    }


# --- the run -----------------------------------------------------------------------------------------------


async def ceiling(base: str) -> float:
    """`GET /health` answered per second by a closed loop of 64 on the same server."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def health(_: bytes, __: dict[str, str]) -> str:
            async with session.get(f"{base}/health") as response:
                await response.read()
                return str(response.status)

        done = await closed_loop(health, iter(lambda: (b"", {}), None), seconds=CEILING_SECONDS, concurrency=64)
    return done.sent / done.elapsed if done.elapsed else 0.0


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fiv-bench-soak-") as scratch_logs:
        logs = Path(args.logs or scratch_logs)
        async with scratch_database(server, "fiv_bench_soak") as scratch:
            cast = await make_cast(scratch, args)
            setting = Setting(scratch, secrets.token_urlsafe(32), secrets.token_urlsafe(32), args.pool, logs)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            config = SimulatorConfig(
                app_secret=setting.app_secret.encode(),
                console_url=base + WEBHOOK_PATH if args.statuses else None,
                display_numbers={number: f"1556{n:08d}" for n, number in enumerate(cast.phone_number_ids)},
                access_tokens=frozenset({ACCESS_TOKEN}),
                seed=7,
            )
            async with SimulatorServer(config) as simulator:
                env = setting.env(port, redis_url=args.redis_url) | {"WHATSAPP_GRAPH_URL": simulator.graph_url}
                command = [sys.executable, "-m", "fiv_console", "serve"]
                async with logged_child("soak", command, env, port, logs / "soak.log") as instance:
                    result = await _soak(cast, instance, scratch, setting.app_secret.encode(), args)
                    # The last statuses are posted while the server still answers them.
                    await simulator.simulator.settle()
                result["simulator"] = {
                    "sends_received": len(simulator.simulator.sent),
                    **status_outcomes(simulator.simulator.webhooks),
                }
            result["server_log"] = log_summary(logs / "soak.log")
            owner = await asyncpg.connect(scratch.owner_url)
            try:
                result["stored"] = await stored(owner, cast)
            finally:
                await owner.close()
            version = scratch.postgres_version
    return _report(server, version, args, result, load_before)


async def _soak(
    cast: Cast, instance: Instance, scratch: Scratch, app_secret: bytes, args: argparse.Namespace
) -> dict[str, Any]:
    tally = Tally()
    samples: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=args.in_flight, limit_per_host=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        signed = await gather_limited(
            [sign_in(session, instance.base, e) for e in cast.agent_emails], SETUP_CONCURRENCY
        )
        cast.cookies = [cookie for cookie, _ in signed]
        cast.csrf = [csrf for _, csrf in signed]
        specs = [(n, instance.base, cast.cookies[n]) for n in range(len(cast.agent_ids))]
        async with socket_fleet(specs, args, handshake=True) as fleet:

            async def online(n: int) -> int:
                headers = {"Cookie": f"{SESSION_COOKIE}={cast.cookies[n]}", CSRF_HEADER: cast.csrf[n]}
                async with session.put(
                    f"{instance.base}/api/agents/me/status", json={"status": "online"}, headers=headers
                ) as response:
                    await response.read()
                    return response.status

            statuses = Counter(await gather_limited([online(n) for n in range(len(cast.agent_ids))], SETUP_CONCURRENCY))
            if statuses[200] != len(cast.agent_ids):
                raise BenchError(f"setting the agents online: answers {dict(statuses)}")
            ceiling_per_s = await ceiling(instance.base)
            owner = await asyncpg.connect(scratch.owner_url)
            try:
                customers = Customers(app_secret, cast.phone_number_ids, args.customers)
                started = time.monotonic()
                watch = asyncio.create_task(sampler(started, args.sample, instance, scratch, tally, samples))
                desk = Desk(cast, instance.base, session, owner, tally)
                try:
                    await asyncio.gather(
                        customers_write(customers, poster(session, instance.base + WEBHOOK_PATH), args, tally),
                        desk.run(args),
                    )
                finally:
                    watch.cancel()
                    with suppress(asyncio.CancelledError):
                        await watch
                elapsed = time.monotonic() - started
                await sends_settled(owner, cast)
                agents_of_queue: dict[UUID, list[int]] = {}
                for n in range(len(cast.agent_ids)):
                    agents_of_queue.setdefault(cast.queue_ids[n % len(cast.queue_ids)], []).append(n)
                expected = await expected_frames(owner, cast, agents_of_queue)
                for _ in range(int(DRAIN_SECONDS * 2)):
                    if await fleet.count() >= len(expected):
                        break
                    await asyncio.sleep(0.5)
                held = await fleet.stop()
                ready, failed = fleet.ready, dict(fleet.failed)
            finally:
                await owner.close()
    received = {(serial, agent) for serial, _, agent in held["received"]}
    lost = expected - received
    late = sorted(tally.late_ns)
    return {
        "ceiling_health_per_s": ceiling_per_s,
        "elapsed_s": elapsed,
        "webhooks": dict(tally.webhooks),
        "webhooks_per_s": sum(tally.webhooks.values()) / elapsed if elapsed else 0.0,
        "unsent": tally.unsent,
        "answer_after_schedule_p50_ms": late[len(late) // 2] / 1e6 if late else 0.0,
        "answer_after_schedule_p99_ms": late[min(len(late) - 1, int(len(late) * 0.99))] / 1e6 if late else 0.0,
        "actions": dict(tally.actions),
        "sockets_open": ready,
        "sockets_failed": failed,
        "sockets_closed_by_server": held["closed"],
        "frames": held["frames"],
        "frames_expected": len(expected),
        "frames_received": len(received & expected),
        "frames_lost": len(lost),
        "samples": samples,
    }


def _report(
    server: Server, version: str, args: argparse.Namespace, result: dict[str, Any], load_before: float
) -> dict[str, Any]:
    samples = result["samples"]
    memory = {
        "server_rss": growth(samples, "server_rss_kb", args.warmup),
        "postgres_uss": growth(samples, "postgres_uss_kb", args.warmup),
        "postgres_rss": growth(samples, "postgres_rss_kb", args.warmup),
    }
    stored_rows, actions = result["stored"], result["actions"]
    replies = actions.get("reply 201", 0)
    lost = {
        "webhooks": result["webhooks"].get("200", 0) - stored_rows["inbound"],
        "replies": replies - stored_rows["outbound"],
        "replies_not_sent": stored_rows["outbound_not_sent"],
        "sends_not_received": replies - result["simulator"]["sends_received"],
        "frames": result["frames_lost"],
    }
    # A reply, transfer or close may race the customer's own move or another action of the second (the
    # conversation closed or moved meanwhile): a 409 says so, and is not an error. Anything else is.
    errors = {
        "webhooks_not_200": sum(v for k, v in result["webhooks"].items() if k != "200"),
        "actions": sum(v for k, v in actions.items() if not k.endswith((" 200", " 201", " 409"))),
        "statuses_undelivered": result["simulator"]["statuses_undelivered"],
        "server_log": sum(result["server_log"].values()),
        "sockets_failed": sum(result["sockets_failed"].values()),
        "sockets_closed_by_server": sum(result["sockets_closed_by_server"].values()),
        "dead_letters": stored_rows["dead_letters"],
        "agents_over_capacity": stored_rows["agents_over_capacity"],
    }
    met = (
        all(m["growth"] <= TARGET_GROWTH for m in (memory["server_rss"], memory["postgres_uss"]))
        and not any(errors.values())
        and not any(lost.values())
        and args.rate >= TARGET_RATE
        and result["unsent"] == 0
        and result["webhooks_per_s"] >= TARGET_RATE * 0.98
        and result["sockets_open"] >= TARGET_SOCKETS
    )
    return {
        **report_header("soak", server, version, load_before),
        "seconds": args.seconds,
        "warmup": args.warmup,
        "rate": args.rate,
        "agents": args.agents,
        "queues": args.queues,
        "customers": args.customers,
        "replies_per_s": args.replies,
        "transfers_per_s": args.transfers,
        "closes_per_s": args.closes,
        "statuses": args.statuses,
        "bus": "redis" if args.redis_url else "in-process",
        **result,
        "memory": memory,
        "lost": lost,
        "errors": errors,
        "target": {"growth": TARGET_GROWTH, "rate": TARGET_RATE, "sockets": TARGET_SOCKETS},
        "target_met": met,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"soak on {report['server']} PostgreSQL {report['postgres']}, {report['cpus']} cpus, "
        f"{report['memory_gib']:.0f} GiB, {report['bus']} bus; load {report['load_1min_before']:.2f} before, "
        f"{report['load_1min_after']:.2f} after"
    )
    print(
        f"{report['seconds']:g} s (warm-up {report['warmup']:g} s): {report['rate']:g} webhooks/s offered from "
        f"{report['customers']} customers to {report['queues']} numbers, {report['agents']} agents "
        f"({report['sockets_open']} sockets open), {report['replies_per_s']:g} replies, "
        f"{report['transfers_per_s']:g} transfers and {report['closes_per_s']:g} closes a second; status "
        f"webhooks {'on' if report['statuses'] else 'off'}"
    )
    print(
        f"ceiling: GET /health {report['ceiling_health_per_s']:.0f}/s (closed loop of 64, same server); "
        f"achieved {report['webhooks_per_s']:.0f} webhooks/s ({report['unsent']} scheduled but not sent: the "
        f"server fell that far behind), answers after their scheduled time p50 "
        f"{report['answer_after_schedule_p50_ms']:.1f} ms, p99 {report['answer_after_schedule_p99_ms']:.1f} ms"
    )
    print(
        f"\n{'s':>6} {'server RSS MB':>14} {'PG USS MB':>10} {'PG RSS MB':>10} {'backends':>9} {'webhooks':>9} "
        f"{'replies':>8} {'load':>6}"
    )
    for s in report["samples"]:
        print(
            f"{s['at_s']:>6.0f} {s['server_rss_kb'] / 1024:>14.1f} {s['postgres_uss_kb'] / 1024:>10.1f} "
            f"{s['postgres_rss_kb'] / 1024:>10.1f} {s['postgres_backends']:>9} {s['webhooks_200']:>9} "
            f"{s['replies_201']:>8} {s['load_1min']:>6.2f}"
        )
    print("\ngrowth after the warm-up (last sample against the first after it; the largest in brackets):")
    for name, m in report["memory"].items():
        print(
            f"  {name:<14} {m['first_kb'] / 1024:.1f} -> {m['last_kb'] / 1024:.1f} MB ({m['max_kb'] / 1024:.1f}): "
            f"{m['growth'] * 100:+.1f} %"
        )
    stored_rows = report["stored"]
    print(
        f"\nanswers: webhooks {report['webhooks']}; actions {report['actions']}; status webhooks: "
        f"{report['simulator']['statuses_planned']} planned, {report['simulator']['statuses_undelivered']} "
        f"undelivered after the retries, failed attempts {report['simulator']['status_attempts_failed'] or 'none'}"
    )
    print(
        f"stored: {stored_rows['inbound']} inbound and {stored_rows['outbound']} outbound messages, "
        f"{stored_rows['conversations']} conversations ({stored_rows['closed']} closed, {stored_rows['waiting']} "
        f"waiting), {stored_rows['events']} events; sends the simulator received "
        f"{report['simulator']['sends_received']}"
    )
    print(
        f"frames: {report['frames_received']} of {report['frames_expected']} customer-message frames reached "
        f"their sockets; all frames {report['frames']}"
    )
    print(f"server log: {report['server_log'] or 'empty'}")
    print(f"lost: {report['lost']}")
    print(f"errors: {report['errors']}")
    print(
        f"\ntarget: <= {TARGET_GROWTH * 100:g} % growth after warm-up at {TARGET_RATE:g} messages/s with "
        f"{TARGET_SOCKETS} sockets, no error, nothing lost: {'met' if report['target_met'] else 'NOT met'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="seconds of traffic (600)")
    parser.add_argument("--warmup", type=float, default=60.0, help="first seconds left out of the growth (60)")
    parser.add_argument("--rate", type=float, default=500.0, help="customers' webhooks a second (500)")
    parser.add_argument("--agents", type=int, default=1000, help="agents, one socket each (1000)")
    parser.add_argument("--queues", type=int, default=10, help="queues, a number each (10)")
    parser.add_argument("--customers", type=int, default=2000, help="customers writing (2000)")
    parser.add_argument("--replies", type=float, default=50.0, help="agents' replies a second (50)")
    parser.add_argument("--transfers", type=float, default=5.0, help="transfers to the next queue a second (5)")
    parser.add_argument("--closes", type=float, default=10.0, help="closes a second (10)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between memory readings (10)")
    parser.add_argument("--workers", type=int, default=4, help="processes holding the sockets (4)")
    parser.add_argument("--connecting", type=int, default=32, help="socket openings in flight (32)")
    parser.add_argument("--in-flight", type=int, default=256, help="most webhooks in flight (256)")
    parser.add_argument("--pool", type=int, default=20, help="the server's database connections (20)")
    parser.add_argument(
        "--no-statuses", dest="statuses", action="store_false", help="the simulator posts no status webhooks"
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL"), help="Redis for the bus (REDIS_URL; unset: in-process)"
    )
    parser.add_argument("--logs", help="keep the server's log in this directory")
    args = parser.parse_args()
    args.compress = False
    if not 0 < args.seconds <= MAX_SECONDS or not 0 <= args.warmup < args.seconds:
        return fail(f"--seconds must be more than 0 and at most {MAX_SECONDS:g}, --warmup less than --seconds")
    if not 1 <= args.rate <= 5000 or not 1 <= args.agents <= 5000 or not 1 <= args.queues <= args.agents:
        return fail("--rate must be 1-5000, --agents 1-5000, --queues 1 to --agents")
    if not 1 <= args.customers <= 1_000_000 or min(args.replies, args.transfers, args.closes) < 0:
        return fail("--customers must be 1-1000000; --replies, --transfers and --closes at least 0")
    if not 1 <= args.sample <= 600 or not 1 <= args.workers <= 64 or not 1 <= args.pool <= 40:
        return fail("--sample must be 1-600 s, --workers 1-64, --pool 1-40")
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
