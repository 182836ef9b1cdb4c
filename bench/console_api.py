"""Benchmark of the calls the agent console opens, on one busy tenant, against `/health` on the same server.

    python bench/console_api.py [--conversations N] [--messages-each M] [--seconds S] [--concurrency C]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or, when unset, the
embedded PostgreSQL in `FIV_DATA_DIR`, it makes a scratch database, migrates it and seeds one tenant with
N conversations (100,000) of M messages each (10: a million), 10 queues, 50 agents and a supervisor, in a
few set-based statements as the owner (triggers off while rows are copied in; the search words and each
conversation's unread count and preview are then computed the same set-based way). Then `python -m
fiv_console serve` runs on it, and each route is called for S seconds by C concurrent clients (16) over C
connections, signed in as an agent (a member of one queue, with conversations of their own) and as the
supervisor:

- the list of 50 for each console tab: Mine (`status=assigned&agent_id=me`), Waiting
  (`status=waiting&sort=enqueued_at`), All; for the supervisor also by queue, agent, status and label,
  and the next page by cursor;
- a conversation's last 50 messages, its contact, and searches by name, number and message text;
- `GET /health` (one `select 1`), the ceiling of the same server in the same run.

The load is a lean HTTP/1.1 client (`_Exchange`: one prepared GET at a time per keep-alive connection, the
session cookie as a browser sends it), which costs the shared cores far less per request than aiohttp's.
It prints p50/p95/p99, requests/s and the CPU each request cost (the client, the server, the scratch
database's backends, the rest of the machine) per route, then one JSON line. The scratch database is dropped
at the end, unless `--keep`: then it is kept, named by its sizes, and the next `--keep` run reuses it
(migrated to the latest), for iterating, not for figures of record (earlier runs have written to it). `--only
NAME` (repeatable) runs only the routes whose name contains it, and `/health`. Not a test: nothing here
asserts a timing (the target, p99 at most 20 ms at 16 connections, is read off the table).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID, uuid4

import aiohttp
import asyncpg
from _scratch import Server, measure_and_report, report_header, scratch_database, serve_env
from intake import CpuMeter, child_process, free_port
from yarl import URL

from fiv_console.accounts.passwords import hash_password
from fiv_console.constants import SESSION_COOKIE

PASSWORD = "bench-password-1"  # noqa: S105 - a scratch database's people
QUEUES = 10
AGENTS = 50
WARMUP_SECONDS = 1.0
RARE_EVERY = 1000  # one conversation in this many has the searched-for word in a message
RARE_WORD = "zanzibarquartz"

_FIRST = ["Ana", "Bruno", "Carla", "Diego", "Elisa", "Fabio", "Gabriela", "Heitor", "Iris", "Joao", "Karina", "Lucas"]
_LAST = ["Silva", "Souza", "Costa", "Santos", "Oliveira", "Pereira", "Lima", "Carvalho", "Ribeiro", "Almeida"]
_WORDS = [
    "ola",
    "bom",
    "dia",
    "pedido",
    "entrega",
    "atraso",
    "numero",
    "rastreio",
    "troca",
    "devolucao",
    "produto",
    "obrigado",
    "ajuda",
    "pagamento",
    "boleto",
    "cartao",
    "nota",
    "fiscal",
    "endereco",
    "prazo",
    "cancelar",
    "status",
    "aguardando",
    "resposta",
    "hoje",
    "amanha",
    "semana",
]

_SEED_TENANT_SQL = "insert into tenants (id, name, slug) values ($1, 'Busy tenant', 'busy')"
_SEED_CONTACTS_SQL = """
insert into contacts (tenant_id, wa_id, name, profile_name)
select $1, (5511900000000 + g)::text,
       ($2::text[])[1 + g % cardinality($2::text[])] || ' ' || ($3::text[])[1 + (g / 7) % cardinality($3::text[])],
       case when g % 3 = 0 then ($2::text[])[1 + (g / 11) % cardinality($2::text[])] end
from generate_series(1, $4) g
"""
# 2% waiting, 3% assigned, the rest closed; queue and agent by number; activity over the last 90 days.
_SEED_CONVERSATIONS_SQL = """
insert into conversations (tenant_id, channel_id, contact_id, queue_id, agent_id, status, assigned_at, closed_at,
                           close_reason, created_at, enqueued_at, last_inbound_at, last_message_at)
select $1, $2, k.id, ($3::uuid[])[1 + (k.g / 7) % $5],
       case when k.g % 100 < 2 then null else ($4::uuid[])[1 + (k.g / 100) % $6] end,
       case when k.g % 100 < 2 then 'waiting' when k.g % 100 < 5 then 'assigned' else 'closed' end,
       case when k.g % 100 >= 2 then k.at end, case when k.g % 100 >= 5 then k.at + interval '1 hour' end,
       case when k.g % 100 >= 5 then 'done' end, k.at, k.at, k.at + interval '9 minutes', k.at + interval '9 minutes'
from (
    select id, (wa_id::bigint - 5511900000000)::int as g,
           now() - make_interval(secs => ((wa_id::bigint * 7919) % (90 * 86400))::int) as at
    from contacts where tenant_id = $1
) k
"""
_SEED_MESSAGES_SQL = """
insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, wa_message_id, status,
                      author_id, read_at, created_at)
select c.tenant_id, c.id, c.channel_id, case when n % 2 = 1 then 'inbound' else 'outbound' end, 'text',
       case when n = 1 and c.r % $3 = 0 then 'about ' || $5 || ' please'
            else ($4::text[])[1 + (c.r * n) % cardinality($4::text[])] || ' '
                 || ($4::text[])[1 + (c.r + n * 7) % cardinality($4::text[])] || ' '
                 || ($4::text[])[1 + (c.r * 3 + n) % cardinality($4::text[])] || ' ' || c.r end,
       'wamid.' || c.r || '.' || n,
       case when n % 2 = 1 then 'received' else 'sent' end,
       case when n % 2 = 0 then c.agent_id end,
       case when n % 2 = 1 and (c.status = 'closed' or n < $2 - 1) then c.created_at end,
       c.created_at + make_interval(secs => n)
from (select *, row_number() over (order by id) as r from conversations where tenant_id = $1) c
cross join generate_series(1, $2) n
"""
_SEED_DERIVED_SQL = [
    """
    update conversations c
    set unread_count = u.unread
    from (select conversation_id, count(*) as unread from messages
          where tenant_id = $1 and direction = 'inbound' and read_at is null group by conversation_id) u
    where c.tenant_id = $1 and c.id = u.conversation_id
    """,
    """
    update conversations c
    set last_message_id = l.id, last_message_direction = l.direction, last_message_kind = l.kind,
        last_message_text = left(l.text, 140), last_message_created_at = l.created_at
    from (select distinct on (conversation_id) conversation_id, id, direction, kind, text, created_at
          from messages where tenant_id = $1 order by conversation_id, created_at desc, id desc) l
    where c.tenant_id = $1 and c.id = l.conversation_id
    """,
    """
    insert into conversation_terms (tenant_id, term, conversation_id, message_id, message_at)
    select distinct on (m.conversation_id, w.term) m.tenant_id, w.term, m.conversation_id, m.id, m.created_at
    from messages m cross join lateral unnest(console_search_terms(m.text)) as w(term)
    where m.tenant_id = $1
    order by m.conversation_id, w.term, m.created_at desc, m.id desc
    """,
    """
    insert into contact_terms (tenant_id, term, contact_id)
    select k.tenant_id, w.term, k.id
    from contacts k cross join lateral unnest(console_contact_terms(k.name, k.profile_name, k.wa_id)) as w(term)
    where k.tenant_id = $1
    """,
]


@dataclass(frozen=True, slots=True)
class Seeded:
    tenant_id: UUID
    queue_ids: list[UUID]
    agent_ids: list[UUID]
    label_id: UUID
    seconds: float


async def seed(owner_url: str, conversations: int, messages_each: int) -> Seeded:
    started = time.monotonic()
    tenant_id, channel_id = uuid4(), uuid4()
    queue_ids = [uuid4() for _ in range(QUEUES)]
    agent_ids = [uuid4() for _ in range(AGENTS)]
    password_hash = hash_password(PASSWORD)
    conn = await asyncpg.connect(owner_url)
    try:
        async with conn.transaction():
            # Rows are copied in as a restore would: no triggers (words, counters, foreign-key checks) per
            # row; what they keep is computed after, set-based.
            await conn.execute("set local session_replication_role = replica")
            await conn.execute(_SEED_TENANT_SQL, tenant_id)
            await conn.executemany(
                "insert into queues (id, tenant_id, name) values ($1, $2, $3)",
                [(q, tenant_id, f"Queue {n}") for n, q in enumerate(queue_ids)],
            )
            people = [(a, f"agent{n}@busy.example", f"Agent {n}", "agent") for n, a in enumerate(agent_ids)]
            people.append((uuid4(), "supervisor@busy.example", "Supervisor", "supervisor"))
            await conn.executemany(
                "insert into users (id, tenant_id, email, name, role, password_hash) values ($1, $2, $3, $4, $5, $6)",
                [(*p[:1], tenant_id, *p[1:], password_hash) for p in people],
            )
            await conn.executemany(
                "insert into queue_members (tenant_id, queue_id, user_id) values ($1, $2, $3)",
                [(tenant_id, queue_ids[n % QUEUES], a) for n, a in enumerate(agent_ids)],
            )
            await conn.execute(
                "insert into channels (id, tenant_id, phone_number_id, display_number, default_queue_id)"
                " values ($1, $2, '100200300', '+55 11 4000-0000', $3)",
                channel_id,
                tenant_id,
                queue_ids[0],
            )
            await conn.execute(_SEED_CONTACTS_SQL, tenant_id, _FIRST, _LAST, conversations)
            await conn.execute(_SEED_CONVERSATIONS_SQL, tenant_id, channel_id, queue_ids, agent_ids, QUEUES, AGENTS)
            await conn.execute(_SEED_MESSAGES_SQL, tenant_id, messages_each, RARE_EVERY, _WORDS, RARE_WORD)
            for statement in _SEED_DERIVED_SQL:
                await conn.execute(statement, tenant_id)
            label_id = await conn.fetchval(
                "insert into labels (tenant_id, name, color) values ($1, 'vip', '#aa0000') returning id", tenant_id
            )
            await conn.execute(
                # Triggers are off: the label rows' copy of the activity time (sql/0013) is copied here.
                "insert into conversation_labels (tenant_id, conversation_id, label_id, last_message_at)"
                " select tenant_id, id, $2, last_message_at from conversations"
                " where tenant_id = $1 and (hashtext(id::text) % 100) = 0",
                tenant_id,
                label_id,
            )
        await conn.execute("vacuum analyze")
    finally:
        await conn.close()
    return Seeded(tenant_id, queue_ids, agent_ids, label_id, time.monotonic() - started)


_SEEDED_SQL = """
select t.id as tenant_id,
       array(select q.id from queues q where q.tenant_id = t.id order by q.name) as queue_ids,
       array(select u.id from users u where u.tenant_id = t.id and u.role = 'agent'
             order by substring(u.email from '[0-9]+')::int) as agent_ids,
       (select l.id from labels l where l.tenant_id = t.id) as label_id
from tenants t where t.slug = 'busy'
"""


async def seeded_before(owner_url: str) -> Seeded:
    """What `seed` made, read back from a kept database."""
    conn = await asyncpg.connect(owner_url)
    try:
        row = await conn.fetchrow(_SEEDED_SQL)
    finally:
        await conn.close()
    assert row is not None, "a kept database without the seeded tenant: drop it and run again"
    return Seeded(row["tenant_id"], list(row["queue_ids"]), list(row["agent_ids"]), row["label_id"], 0.0)


async def signed_in(base: str, email: str, concurrency: int) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(
        base_url=base,
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=60),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # the session cookie of a server on 127.0.0.1
    )
    async with session.post(
        "/api/auth/login", json={"workspace": "busy", "email": email, "password": PASSWORD}
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"sign-in of {email}: {response.status} {await response.text()}")
    return session


async def get_json(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(path) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {body}")
        return body


class _Exchange(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a prepared GET and reads its answer: far less of the
    client's CPU per request than `aiohttp.ClientSession` (the two cores are shared with the server and
    PostgreSQL, so what the client spends is taken from them). Answers carry Content-Length (aiohttp's
    `web.Response`); a new session cookie (`Set-Cookie`) is sent from the next request on, as a browser would."""

    def __init__(self, cookie: dict[str, bytes]) -> None:
        self._cookie = cookie
        self._buffer = bytearray()
        self._answer: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._answer is None:
            return
        status, *headers = bytes(self._buffer[:end]).split(b"\r\n")
        fields = [line.split(b":", 1) for line in headers]
        lengths = [int(value) for name, value in fields if name.lower() == b"content-length"]
        if not lengths:
            self._answer.set_exception(RuntimeError(f"an answer without Content-Length: {status!r}"))
            return
        if len(self._buffer) < end + 4 + lengths[0]:
            return
        for name, value in fields:
            cookie, _, _ = value.strip().partition(b";")
            if name.lower() == b"set-cookie" and cookie.startswith(SESSION_COOKIE.encode() + b"="):
                self._cookie["value"] = cookie.split(b"=", 1)[1]
        del self._buffer[: end + 4 + lengths[0]]
        self._answer.set_result(int(status[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc or RuntimeError("the server closed the connection"))

    async def get(self, path: bytes) -> int:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(
            b"GET "
            + path
            + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: "
            + SESSION_COOKIE.encode()
            + b"="
            + self._cookie["value"]
            + b"\r\n\r\n"
        )
        return await self._answer


def session_cookie(session: aiohttp.ClientSession, base: str) -> dict[str, bytes]:
    """The signed-in session's cookie, shared by the connections measuring as that person."""
    return {"value": session.cookie_jar.filter_cookies(URL(base))[SESSION_COOKIE].value.encode()}


async def measure(
    base: str, cookie: dict[str, bytes], path: str, seconds: float, concurrency: int, meter: CpuMeter, server_pid: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    latencies: list[int] = []
    url = URL(base)
    target = path.encode()
    connections = [
        (await loop.create_connection(lambda: _Exchange(cookie), url.host, url.port))[1] for _ in range(concurrency)
    ]

    async def worker(exchange: _Exchange, deadline: float, keep: bool) -> None:
        while loop.time() < deadline:
            started = time.perf_counter_ns()
            status = await exchange.get(target)
            if status != 200:
                raise RuntimeError(f"{path}: {status}")
            if keep:
                latencies.append(time.perf_counter_ns() - started)

    try:
        await asyncio.gather(*(worker(c, loop.time() + WARMUP_SECONDS, False) for c in connections))
        before = meter.snapshot(server_pid)
        began = time.perf_counter()
        await asyncio.gather(*(worker(c, loop.time() + seconds, True) for c in connections))
        elapsed = time.perf_counter() - began
        cores, _ = CpuMeter.cores(before, meter.snapshot(server_pid))
    finally:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
    latencies.sort()
    # CPU per request, by who spent it: cores busy / requests per second.
    per_request = {group: cores[group] * elapsed / len(latencies) * 1000 for group in cores}

    def at(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] / 1e6

    return {
        "requests": len(latencies),
        "per_s": len(latencies) / elapsed,
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "cpu_ms": {
            "client": per_request["client"],
            "server": per_request["server"],
            "postgres": per_request["postgres_bench_db"],
            "other": per_request["postgres_other"] + per_request["other"],
        },
    }


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    keep = f"fiv_bench_console_kept_{args.conversations}x{args.messages_each}" if args.keep else None
    async with scratch_database(server, "fiv_bench_console", keep=keep) as scratch:
        if scratch.kept:
            seeded = await seeded_before(scratch.owner_url)
            print(f"reusing the kept database {scratch.name}", file=sys.stderr)
        else:
            seeded = await seed(scratch.owner_url, args.conversations, args.messages_each)
            print(f"seeded in {seeded.seconds:.0f} s", file=sys.stderr)
        port = free_port()
        env = serve_env(
            scratch.owner_url,
            HOST="127.0.0.1",
            PORT=str(port),
            DB_POOL_MIN_SIZE=str(args.concurrency),
            DB_POOL_MAX_SIZE=str(args.concurrency),
        )
        command = [sys.executable, "-m", "fiv_console", "serve"]
        results: dict[str, dict[str, Any]] = {}
        meter = CpuMeter(scratch.name)
        async with child_process("fiv-console serve", command, env, port) as child:
            base = child.url.split("/webhook")[0]
            agent_id = seeded.agent_ids[0]
            agent = await signed_in(base, "agent0@busy.example", args.concurrency)
            supervisor = await signed_in(base, "supervisor@busy.example", args.concurrency)
            try:
                mine = await get_json(agent, f"/api/conversations?status=assigned&agent_id={agent_id}&limit=50")
                conversation_id = mine["data"]["items"][0]["id"]
                contact_id = mine["data"]["items"][0]["contact"]["id"]
                first = await get_json(supervisor, "/api/conversations?limit=50")
                cursor = first["data"]["next_cursor"]
                cookies = {id(agent): session_cookie(agent, base), id(supervisor): session_cookie(supervisor, base)}
                routes: list[tuple[str, aiohttp.ClientSession, str]] = [
                    ("health (ceiling)", supervisor, "/health"),
                    ("agent: Mine", agent, f"/api/conversations?status=assigned&agent_id={agent_id}&limit=50"),
                    ("agent: Waiting", agent, "/api/conversations?status=waiting&sort=enqueued_at&limit=50"),
                    ("agent: All", agent, "/api/conversations?limit=50"),
                    ("agent: last 50 messages", agent, f"/api/conversations/{conversation_id}/messages?limit=50"),
                    ("agent: contact", agent, f"/api/contacts/{contact_id}"),
                    ("agent: contact's conversations", agent, f"/api/conversations?contact_id={contact_id}"),
                    ("supervisor: All", supervisor, "/api/conversations?limit=50"),
                    ("supervisor: All, next page", supervisor, f"/api/conversations?limit=50&cursor={cursor}"),
                    ("supervisor: Waiting", supervisor, "/api/conversations?status=waiting&sort=enqueued_at&limit=50"),
                    ("supervisor: by queue", supervisor, f"/api/conversations?queue_id={seeded.queue_ids[3]}&limit=50"),
                    ("supervisor: by agent", supervisor, f"/api/conversations?agent_id={seeded.agent_ids[7]}&limit=50"),
                    ("supervisor: by status", supervisor, "/api/conversations?status=assigned&limit=50"),
                    ("supervisor: by label", supervisor, f"/api/conversations?label_id={seeded.label_id}&limit=50"),
                    ("supervisor: search name", supervisor, "/api/conversations?q=karina%20ribeiro&limit=50"),
                    ("supervisor: search number", supervisor, "/api/conversations?q=5511900012345&limit=50"),
                    ("supervisor: search text", supervisor, f"/api/conversations?q={RARE_WORD[:9]}&limit=50"),
                    ("agent: search name", agent, "/api/conversations?q=karina&limit=50"),
                ]
                for name, session, path in routes:
                    if args.only and name != "health (ceiling)" and not any(part in name for part in args.only):
                        continue
                    results[name] = await measure(
                        base, cookies[id(session)], path, args.seconds, args.concurrency, meter, child.pid
                    )
                    r = results[name]
                    print(f"  {name}: p99 {r['p99_ms']:.1f} ms, {r['per_s']:.0f}/s", file=sys.stderr)
            finally:
                await agent.close()
                await supervisor.close()
        version = scratch.postgres_version
    return {
        **report_header("console_api", server, version, load_before),
        "conversations": args.conversations,
        "messages": args.conversations * args.messages_each,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "seed_seconds": seeded.seconds,
        "routes": results,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"console_api on {report['server']} PostgreSQL {report['postgres']}, {report['cpus']} cpus; "
        f"{report['conversations']:,} conversations, {report['messages']:,} messages; "
        f"{report['concurrency']} connections, {report['seconds']:g} s per route"
    )
    print(f"{'route':<34} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}   CPU ms per request")
    print(f"{'':<34} {'':>8} {'':>8} {'':>8} {'':>8}   client server postgres other")
    for name, r in report["routes"].items():
        cpu = r["cpu_ms"]
        print(
            f"{name:<34} {r['per_s']:>8.0f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f}"
            f"   {cpu['client']:>6.2f} {cpu['server']:>6.2f} {cpu['postgres']:>8.2f} {cpu['other']:>5.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000, help="conversations (100000)")
    parser.add_argument("--messages-each", type=int, default=10, help="messages per conversation (10)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per route (5)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients and connections (16)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the seeded database (named by the sizes) and reuse it in later runs, migrated to the latest",
    )
    parser.add_argument(
        "--only", action="append", help="only the routes whose name contains this (repeatable; /health always)"
    )
    args = parser.parse_args()
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
