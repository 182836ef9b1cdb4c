"""Clients that have proven nothing cannot pin the server: small body limits before reading, a budget of bodies
held at once, a deadline for headers and one for bodies (issue #12, point 3).

Each test talks to the real server on a real port through raw sockets, so it controls exactly which bytes
arrive and when. Deadlines are short here; every wait for the server has a wide margin over them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp.test_utils import TestServer

from fiv_console.db.pool import Database, tenant_tx
from tests.api import PASSWORD, TenantPeople
from tests.conftest import TestDatabase, serving
from tests.webhooks import WEBHOOK_PATH, envelope, number_of, post_webhook, sign, text_message

LOGIN_PATH = "/api/auth/login"
MiB = 1024 * 1024
# How long a test waits for something the server must do "at once" or "by its deadline": wide on purpose,
# so a busy two-core machine does not fail them; the tests' deadlines are a second.
PATIENCE = 10.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class RawClient:
    """One TCP connection, written and read by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: TestServer, source: str | None = None) -> RawClient:
        """A connection from `source` (any of 127.0.0.0/8 on loopback), so tests can play several addresses."""
        local_addr = None if source is None else (source, 0)
        reader, writer = await asyncio.open_connection(server.host, server.port, local_addr=local_addr)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> Answer:
        """The next answer, which must come within PATIENCE."""
        async with asyncio.timeout(PATIENCE):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines if line)
            }
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(int(status_line.split()[1]), headers, body)

    async def closed_in_time(self) -> bool:
        """Whether the server closes the connection within PATIENCE (anything it sends first is skipped)."""
        try:
            async with asyncio.timeout(PATIENCE):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def webhook_head(length: int, signature: str = "sha256=" + "0" * 64) -> bytes:
    return head(
        "POST",
        WEBHOOK_PATH,
        {"Content-Type": "application/json", "Content-Length": str(length), "X-Hub-Signature-256": signature},
    )


def login_head(length: int | None) -> bytes:
    framing = {"Content-Length": str(length)} if length is not None else {"Transfer-Encoding": "chunked"}
    return head("POST", LOGIN_PATH, {"Content-Type": "application/json", **framing})


@asynccontextmanager
async def raw_clients() -> AsyncIterator[list[RawClient]]:
    """The connections a test opens, closed when it ends (before its server stops, which would wait for them)."""
    opened: list[RawClient] = []
    try:
        yield opened
    finally:
        for client in opened:
            client.close()


async def connect(server: TestServer, clients: list[RawClient], source: str | None = None) -> RawClient:
    client = await RawClient.connect(server, source)
    clients.append(client)
    return client


async def trickle(client: RawClient, pieces: Iterable[bytes], every: float) -> None:
    """Sends `pieces` one at a time, `every` seconds apart, until they run out or the server hangs up."""
    try:
        for piece in pieces:
            await client.send(piece)
            await asyncio.sleep(every)
    except ConnectionError:
        pass


async def signed_webhook(server: TestServer, clients: list[RawClient], body: bytes = b"{}") -> Answer:
    client = await connect(server, clients)
    await client.send(webhook_head(len(body), sign(body)) + body)
    return await client.answer()


async def test_a_sign_in_body_over_its_limit_is_refused_before_it_is_read(database: TestDatabase) -> None:
    async with serving(database.settings()) as server, raw_clients() as clients:
        declared = await connect(server, clients)
        # Only the head: the server must answer without waiting for the megabyte it announces.
        await declared.send(login_head(MiB))
        answer = await declared.answer()
        assert answer.status == 413
        assert orjson.loads(answer.body)["error"]["code"] == "PAYLOAD_TOO_LARGE"

        chunked = await connect(server, clients)
        await chunked.send(login_head(None))
        for _ in range(6):  # 24 KiB in chunks of 4 KiB, past the 16 KiB limit, and no end
            await chunked.send(b"1000\r\n" + b" " * 4096 + b"\r\n")
        answer = await chunked.answer()
        assert answer.status == 413
        assert orjson.loads(answer.body)["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_stalled_webhook_bodies_past_the_budget_are_refused_at_once(database: TestDatabase) -> None:
    settings = database.settings(
        unauthenticated_body_bytes=8 * MiB, unauthenticated_share_per_address=1.0, body_timeout_seconds=120
    )
    # Bodies are charged for what has arrived: the stalled ones leave 20 bytes of the budget, this needs more.
    small = b"{}" + b" " * 1024
    async with serving(settings) as server, raw_clients() as clients:
        for _ in range(2):  # two bodies of 4 MiB, 10 bytes short, take the whole budget
            stalled = await connect(server, clients)
            await stalled.send(webhook_head(4 * MiB) + b" " * (4 * MiB - 10))

        # Once they are being read, a small signed webhook is refused too; wait for that moment.
        started = time.monotonic()
        while (answer := await signed_webhook(server, clients, small)).status != 503:
            assert time.monotonic() - started < PATIENCE, f"the budget never filled (last answer {answer.status})"
            await asyncio.sleep(0.2)
        assert answer.headers["retry-after"] == "5"

        late = await connect(server, clients)
        await late.send(webhook_head(4 * MiB) + b" " * 1024)
        answer = await late.answer()
        assert answer.status == 503
        assert answer.headers["retry-after"] == "5"

        # The stalled clients leave: their room is given back and webhooks are taken again.
        for client in clients[:2]:
            client.close()
        started = time.monotonic()
        while (answer := await signed_webhook(server, clients, small)).status == 503:
            assert time.monotonic() - started < PATIENCE, "the budget was never given back"
            await asyncio.sleep(0.2)
        assert answer.status == 200


async def test_one_address_gets_only_its_share_of_the_sign_in_budget(database: TestDatabase) -> None:
    settings = database.settings(
        unauthenticated_bodies_at_once=4,
        unauthenticated_share_per_address=0.25,
        body_timeout_seconds=120,
        unauthenticated_body_grace_seconds=120,
    )
    body = orjson.dumps({"workspace": "nowhere", "email": "nobody@example.com", "password": "wrong password"})
    async with serving(settings) as server, raw_clients() as clients:
        stalled = await connect(server, clients)
        await stalled.send(login_head(len(body)) + body[:-5])

        started = time.monotonic()
        while True:
            probe = await connect(server, clients)
            await probe.send(login_head(len(body)) + body)
            answer = await probe.answer()
            if answer.status == 429:
                break
            assert answer.status == 401, answer.body
            assert time.monotonic() - started < PATIENCE, "the stalled sign-in never took its address's share"
            await asyncio.sleep(0.2)
        assert orjson.loads(answer.body)["error"]["code"] == "RATE_LIMITED"
        assert answer.headers["retry-after"] == "5"


async def test_a_webhook_without_a_signature_is_refused_before_its_body_is_read(database: TestDatabase) -> None:
    async with serving(database.settings()) as server, raw_clients() as clients:
        client = await connect(server, clients)
        await client.send(head("POST", WEBHOOK_PATH, {"Content-Type": "application/json", "Content-Length": "1000"}))
        answer = await client.answer()
        assert answer.status == 401


async def test_clients_that_trickle_headers_or_send_nothing_are_disconnected_by_the_header_deadline(
    database: TestDatabase,
) -> None:
    async with serving(database.settings(header_timeout_seconds=1.0)) as server, raw_clients() as clients:
        silent = await connect(server, clients)
        trickling = await connect(server, clients)
        await trickling.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        header_lines = (f"X-Pad-{number}: y\r\n".encode() for number in range(1000))
        trickler = asyncio.create_task(trickle(trickling, header_lines, 0.2))
        try:
            assert await trickling.closed_in_time(), "a client trickling headers kept its connection"
            assert await silent.closed_in_time(), "a client sending nothing kept its connection"
        finally:
            trickler.cancel()

        # After an answer, the next request's headers are due within the deadline too.
        kept_alive = await connect(server, clients)
        await kept_alive.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await kept_alive.answer()).status == 200
        await kept_alive.send(b"GET /health HTTP/1.1\r\n")
        assert await kept_alive.closed_in_time(), "an unfinished second request kept its connection"


async def test_bodies_trickled_slower_than_the_deadline_are_cut_off(database: TestDatabase) -> None:
    async with serving(database.settings(body_timeout_seconds=1.0)) as server, raw_clients() as clients:
        webhook = await connect(server, clients)
        await webhook.send(webhook_head(1000))
        login = await connect(server, clients)
        await login.send(login_head(1000))
        tricklers = [asyncio.create_task(trickle(client, [b" "] * 1000, 0.1)) for client in (webhook, login)]
        try:
            assert (await webhook.answer()).status == 408
            answer = await login.answer()
            assert answer.status == 408
            assert orjson.loads(answer.body)["error"]["code"] == "REQUEST_TIMEOUT"
            # ... and their connections end there rather than after aiohttp's lingering (10 s).
            started = time.monotonic()
            assert await webhook.closed_in_time()
            assert await login.closed_in_time()
            assert time.monotonic() - started < 5
        finally:
            for trickler in tricklers:
                trickler.cancel()


async def test_a_sign_in_and_a_webhook_within_their_limits_are_served(database: TestDatabase) -> None:
    async with (
        serving(database.settings(header_timeout_seconds=1.0, body_timeout_seconds=1.0)) as server,
        raw_clients() as clients,
    ):
        assert (await signed_webhook(server, clients)).status == 200
        body = orjson.dumps({"workspace": "nowhere", "email": "nobody@example.com", "password": "wrong password"})
        client = await connect(server, clients)
        await client.send(login_head(len(body)) + body)
        answer = await client.answer()
        assert answer.status == 401
        assert orjson.loads(answer.body)["error"]["code"] == "UNAUTHENTICATED"


# Four other addresses, as a few attackers would have (IPv6 ones count by their /64).
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 6)]


async def test_connections_that_send_only_headers_do_not_keep_webhooks_out(database: TestDatabase) -> None:
    async with serving(database.settings()) as server, raw_clients() as clients:
        for source in ATTACKERS:
            for _ in range(16):  # each declares the largest body and never sends a byte of it
                idle = await connect(server, clients, source)
                await idle.send(webhook_head(4 * MiB))
        await asyncio.sleep(0.5)
        answer = await signed_webhook(server, clients)
        assert answer.status == 200, answer.body


async def test_connections_that_send_only_headers_do_not_keep_sign_in_out(
    database: TestDatabase, tenant: TenantPeople
) -> None:
    person = tenant.agent
    body = orjson.dumps({"workspace": person.workspace, "email": person.email, "password": PASSWORD})
    async with serving(database.settings()) as server, raw_clients() as clients:
        for source in ATTACKERS:
            for _ in range(32):
                idle = await connect(server, clients, source)
                await idle.send(login_head(len(body)))
        await asyncio.sleep(0.5)
        client = await connect(server, clients)
        await client.send(login_head(len(body)) + body)
        answer = await client.answer()
        assert answer.status == 200, answer.body


async def test_a_burst_of_signed_webhooks_from_one_address_is_all_taken(
    database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    bodies = [envelope(phone_number_id, messages=[text_message(f"55119{n:08d}", f"hi {n}")]) for n in range(100)]
    async with serving(database.settings()) as server:
        url = str(server.make_url(WEBHOOK_PATH))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=len(bodies))) as session:
            answers = await asyncio.gather(*(post_webhook(session, url, body) for body in bodies))
    assert Counter(answer.status for answer in answers) == {200: len(bodies)}
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select count(*) from messages where direction = 'inbound'") == len(bodies)


async def test_anonymous_bodies_that_do_not_start_or_keep_pace_are_cut_off_early(database: TestDatabase) -> None:
    settings = database.settings(
        body_timeout_seconds=120, unauthenticated_body_grace_seconds=1.0, unauthenticated_body_min_bytes_per_second=100
    )
    async with serving(settings) as server, raw_clients() as clients:
        silent_webhook = await connect(server, clients)
        await silent_webhook.send(webhook_head(1000))
        silent_login = await connect(server, clients)
        await silent_login.send(login_head(1000))
        trickling = await connect(server, clients)
        await trickling.send(login_head(1000))
        # 10 bytes a second, a tenth of the pace asked for.
        trickler = asyncio.create_task(trickle(trickling, [b" "] * 1000, 0.1))
        try:
            started = time.monotonic()
            for client in (silent_webhook, silent_login, trickling):
                assert (await client.answer()).status == 408
                assert await client.closed_in_time()
            # Well before the 120 s total deadline: the pace, not the deadline, cut them off.
            assert time.monotonic() - started < PATIENCE
        finally:
            trickler.cancel()

        # A body that keeps the pace is read even when it takes longer than the grace period.
        keeping_up = await connect(server, clients)
        body = b" " * 600 + orjson.dumps({"workspace": "nowhere", "email": "nobody@example.com", "password": "x"})
        await keeping_up.send(login_head(len(body)) + body[:500])
        await asyncio.sleep(2)  # past the grace period, but the 500 bytes bought 5 s more
        await keeping_up.send(body[500:])
        assert (await keeping_up.answer()).status == 401
