"""SIGTERM to a real `serve` process, with a console socket open and a webhook whose body is still arriving.

The first SIGTERM stops the listening socket (new connections are refused), closes console sockets with 1012
(service restart: the console reconnects, to another instance if there is one), and lets requests in flight
finish: the webhook's body may finish arriving after the signal, and it is stored and answered 200. The
process then exits 0 within SHUTDOWN_TIMEOUT. A second SIGTERM stops at once (exit 1), and so does the
timeout: nothing left half-done is answered, so nothing is acknowledged that was not stored.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.serving import free_port
from fiv_console.whatsapp.signature import SIGNATURE_HEADER
from tests.api import PASSWORD, Person, TenantPeople, make_tenant
from tests.conftest import WEBHOOK_SECRET, TestDatabase, project_root
from tests.sockets import Console
from tests.test_cli import cli_env
from tests.webhooks import WEBHOOK_PATH, envelope, number_of, sign, text_message

SHUTDOWN_TIMEOUT = 20.0
START_TIMEOUT = 60.0
HOST = "127.0.0.1"
# The part of the webhook's body held back until after the SIGTERM.
TAIL = 16


@dataclass
class Served:
    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def logged(self) -> str:
        return self.log.read_text(errors="replace")


@asynccontextmanager
async def serve_process(database: TestDatabase, log: Path, **env: str) -> AsyncIterator[Served]:
    """`fiv-console serve` in its own process, until the test has seen it exit (or kills it)."""
    port = free_port(HOST)
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fiv_console",
            "serve",
            "--port",
            str(port),
            env={
                **cli_env(database.owner_url, WHATSAPP_APP_SECRET=WEBHOOK_SECRET, DB_POOL_MIN_SIZE="1"),
                "LOG_LEVEL": "INFO",
                **env,
            },
            cwd=project_root(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    served = Served(process, port, log)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        assert line.startswith(b"serving on "), (line, served.logged())
        yield served
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def console_of(http: aiohttp.ClientSession, served: Served, person: Person) -> Console:
    login = {"workspace": person.workspace, "email": person.email, "password": PASSWORD}
    async with http.post(f"{served.url}/api/auth/login", json=login) as answer:
        assert answer.status == 200, await answer.text()
    ws = await http.ws_connect(f"{served.url}/ws", origin=served.url)
    message = await ws.receive(timeout=10)
    assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data)
    hello = orjson.loads(message.data)
    assert hello["type"] == "hello", hello
    return Console(ws, hello)


@dataclass
class HalfSentWebhook:
    """A signed webhook POST on its own connection, its body sent but for the last bytes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    body: bytes

    async def finish(self) -> bytes:
        """Sends the rest of the body; the server's whole answer (it closes the connection after it)."""
        self.writer.write(self.body[-TAIL:])
        await self.writer.drain()
        return await asyncio.wait_for(self.reader.read(), 15)

    def close(self) -> None:
        self.writer.close()


async def half_send_webhook(served: Served, body: bytes) -> HalfSentWebhook:
    reader, writer = await asyncio.open_connection(HOST, served.port)
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {HOST}:{served.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{SIGNATURE_HEADER}: {sign(body)}\r\n"
        # The server's `100 Continue` shows its handler has started on the request (a test's certainty only).
        "Expect: 100-continue\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    writer.write(body[:-TAIL])
    await writer.drain()
    return HalfSentWebhook(reader, writer, body)


async def refuses_connections(served: Served, within: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection(HOST, served.port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await asyncio.sleep(0.05)
    return False


async def stored_messages(db: Database, tenant: TenantPeople, wamid: str) -> int:
    async with tenant_tx(db, tenant.id) as conn:
        count: int = await conn.fetchval("select count(*) from messages where wa_message_id = $1", wamid)
    return count


@pytest.fixture
async def tenant_with_number(db: Database) -> tuple[TenantPeople, str]:
    tenant = await make_tenant(db, "Stop")
    return tenant, await number_of(db, tenant)


def webhook_body(phone_number_id: str, wamid: str) -> bytes:
    # Large enough to arrive in several segments, as a big batch from Meta does.
    text = "still arriving " + "x" * 200_000
    return envelope(phone_number_id, messages=[text_message("5511900000001", text, wamid=wamid)])


async def test_sigterm_lets_a_webhook_still_arriving_finish_and_closes_sockets_with_1012(
    database: TestDatabase, db: Database, tenant_with_number: tuple[TenantPeople, str], tmp_path: Path
) -> None:
    tenant, phone_number_id = tenant_with_number
    wamid = f"wamid.{uuid.uuid4().hex}"
    jar = aiohttp.CookieJar(unsafe=True)  # the server is reached by its IP address
    async with (
        serve_process(database, tmp_path / "serve.log", SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)) as served,
        aiohttp.ClientSession(cookie_jar=jar) as http,
    ):
        console = await console_of(http, served, tenant.agent)
        webhook = await half_send_webhook(served, webhook_body(phone_number_id, wamid))
        loop = asyncio.get_running_loop()
        signalled_at = loop.time()
        served.process.send_signal(signal.SIGTERM)
        try:
            assert await console.closed(within=10) == 1012, served.logged()
            assert await refuses_connections(served), served.logged()
            await asyncio.sleep(max(0.0, signalled_at + 1.0 - loop.time()))
            answer = await webhook.finish()
        finally:
            webhook.close()
        assert answer.startswith(b"HTTP/1.1 200 "), (answer[:200], served.logged())
        assert b"Connection: close" in answer
        code = await asyncio.wait_for(served.process.wait(), SHUTDOWN_TIMEOUT)
        assert code == 0, served.logged()
        assert loop.time() - signalled_at < SHUTDOWN_TIMEOUT
        # Every background task ended in order: none was left for the event loop to destroy.
        assert '"level":"error"' not in served.logged(), served.logged()
    assert await stored_messages(db, tenant, wamid) == 1


async def test_a_second_sigterm_stops_at_once_and_answers_nothing_unstored(
    database: TestDatabase, db: Database, tenant_with_number: tuple[TenantPeople, str], tmp_path: Path
) -> None:
    tenant, phone_number_id = tenant_with_number
    wamid = f"wamid.{uuid.uuid4().hex}"
    async with serve_process(database, tmp_path / "serve.log", SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)) as served:
        webhook = await half_send_webhook(served, webhook_body(phone_number_id, wamid))
        loop = asyncio.get_running_loop()
        signalled_at = loop.time()
        served.process.send_signal(signal.SIGTERM)
        try:
            assert await refuses_connections(served), served.logged()
            served.process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(served.process.wait(), SHUTDOWN_TIMEOUT / 2)
            answer = await asyncio.wait_for(webhook.reader.read(), 5)
        finally:
            webhook.close()
        assert code == 1, served.logged()
        assert loop.time() - signalled_at < SHUTDOWN_TIMEOUT / 2
        assert answer == b"", answer[:200]
        assert "stopping at once" in served.logged()
    assert await stored_messages(db, tenant, wamid) == 0


async def test_a_request_that_does_not_finish_in_time_is_cut_short_within_the_timeout(
    database: TestDatabase, db: Database, tenant_with_number: tuple[TenantPeople, str], tmp_path: Path
) -> None:
    tenant, phone_number_id = tenant_with_number
    wamid = f"wamid.{uuid.uuid4().hex}"
    timeout = 3.0
    async with serve_process(database, tmp_path / "serve.log", SHUTDOWN_TIMEOUT=str(timeout)) as served:
        webhook = await half_send_webhook(served, webhook_body(phone_number_id, wamid))
        loop = asyncio.get_running_loop()
        signalled_at = loop.time()
        served.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(served.process.wait(), timeout + 10)
            answer = await asyncio.wait_for(webhook.reader.read(), 5)
        finally:
            webhook.close()
        assert loop.time() - signalled_at < timeout + 2.0, served.logged()
        assert code == 0, served.logged()
        assert answer == b"", answer[:200]
        assert "requests still in flight are cancelled" in served.logged()
    assert await stored_messages(db, tenant, wamid) == 0
