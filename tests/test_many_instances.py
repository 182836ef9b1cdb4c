"""Three `serve` processes behind one port, as a load balancer would put them (issue #17, point 6).

The test's own proxy hands each TCP connection to the next instance that accepts it, so webhooks, API calls
and console sockets spread over the three. Two agents and a supervisor keep consoles open through it and
resume after any close, as the browser console does; customers write through it. Halfway, the instance
serving a console is stopped with SIGTERM: its sockets close with 1012, the consoles reconnect (to the
others) and resume, and the customers go on writing. In the end every message was stored once, every
conversation was assigned once, and each console saw every event meant for it once, none missing.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.serving import free_port
from tests.api import PASSWORD, Person, TenantPeople, make_tenant
from tests.conftest import TestDatabase
from tests.test_graceful_shutdown import HOST, Served, serve_process
from tests.webhooks import WEBHOOK_PATH, envelope, number_of, post_webhook, text_message

INSTANCES = 3
CUSTOMERS_BEFORE, CUSTOMERS_AFTER = 6, 6
SETTLE_SECONDS = 30.0


class RoundRobinProxy:
    """A TCP proxy on loopback: each connection goes to the next instance that accepts one."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.port = free_port(HOST)
        # Which instance each client connection (by its port on the client's side) was given to.
        self.placed: dict[int, int] = {}
        self._turn = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connected, HOST, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connected(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.ports)):
            port = self.ports[self._turn % len(self.ports)]
            self._turn += 1
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError:  # stopped: the next one
                continue
            self.placed[client_writer.get_extra_info("peername")[1]] = port
            await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))
            return
        client_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@dataclass
class FollowedConsole:
    """A console that, like the browser's, reconnects through the proxy after any close and resumes."""

    person: Person
    http: aiohttp.ClientSession
    proxy: RoundRobinProxy
    events: list[dict[str, Any]] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    instances: list[int] = field(default_factory=list)
    live: asyncio.Event = field(default_factory=asyncio.Event)
    last_seq: int | None = None

    async def follow(self) -> None:
        login = {"workspace": self.person.workspace, "email": self.person.email, "password": PASSWORD}
        async with self.http.post(f"{self.proxy.url}/api/auth/login", json=login) as answer:
            assert answer.status == 200, await answer.text()
        while True:
            try:
                ws = await self.http.ws_connect(f"{self.proxy.url}/ws", origin=self.proxy.url)
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.2)
                continue
            self.instances.append(self.proxy.placed[ws.get_extra_info("sockname")[1]])
            hello = orjson.loads((await ws.receive(timeout=10)).data)
            assert hello["type"] == "hello", hello
            resume = hello["data"]["last_seq"] if self.last_seq is None else self.last_seq
            await ws.send_str(orjson.dumps({"type": "resume", "last_seq": resume}).decode())
            if self.person.role == "agent":
                await ws.send_str(orjson.dumps({"type": "presence", "status": "online"}).decode())
            self.live.set()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = orjson.loads(message.data)
                assert frame["type"] != "resync", frame
                if frame["type"] == "event":
                    self.events.append(frame)
                    self.last_seq = frame["seq"]
            self.closes.append(ws.close_code)

    def seen(self, event: str) -> list[dict[str, Any]]:
        return [frame for frame in self.events if frame["event"] == event]


@asynccontextmanager
async def three_instances(
    database: TestDatabase, redis_url: str, logs: Path
) -> AsyncIterator[tuple[list[Served], RoundRobinProxy]]:
    async with AsyncExitStack() as stack:
        served = [
            await stack.enter_async_context(
                serve_process(
                    database, logs / f"serve-{n}.log", REDIS_URL=redis_url, PRESENCE_GRACE_SECONDS="30",
                    SHUTDOWN_TIMEOUT="15",
                )
            )
            for n in range(INSTANCES)
        ]  # fmt: skip
        proxy = RoundRobinProxy([s.port for s in served])
        await proxy.start()
        stack.push_async_callback(proxy.close)
        yield served, proxy


async def _customers_write(proxy: RoundRobinProxy, phone_number_id: str, numbers: range) -> None:
    # A connection of its own for each, as Meta's deliveries come: they spread over the instances.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for n in numbers:
            body = envelope(phone_number_id, messages=[text_message(f"55119{n:08d}", f"customer {n} writes")])
            # Cut off by the stopping instance, Meta delivers again: the intake stores it once all the same.
            for _ in range(3):
                try:
                    answer = await post_webhook(http, f"{proxy.url}{WEBHOOK_PATH}", body)
                except aiohttp.ClientError:
                    continue
                assert answer.status == 200, await answer.text()
                break
            else:
                raise AssertionError(f"customer {n}'s message was never taken")


async def _wait_for(check: Any, within: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return False


async def test_three_instances_lose_nothing_when_one_stops(
    database: TestDatabase, redis_url: str, db: Database, tmp_path: Path
) -> None:
    tenant: TenantPeople = await make_tenant(db, "Many")
    phone_number_id = await number_of(db, tenant)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set max_concurrent = 20 where role = 'agent'")
    total = CUSTOMERS_BEFORE + CUSTOMERS_AFTER
    async with three_instances(database, redis_url, tmp_path) as (served, proxy):
        sessions = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in range(3)]
        consoles = [
            FollowedConsole(person, http, proxy)
            for person, http in zip((tenant.agent, tenant.other_agent, tenant.supervisor), sessions, strict=True)
        ]
        followers = [asyncio.create_task(console.follow()) for console in consoles]
        try:
            for console in consoles:
                await asyncio.wait_for(console.live.wait(), 30)
            await _customers_write(proxy, phone_number_id, range(CUSTOMERS_BEFORE))

            # Stop an instance a console is on, as a deploy or a scale-in would.
            stopped = next(s for s in served if s.port in {c.instances[-1] for c in consoles})
            # The customers go on writing meanwhile: events happen while its consoles are reconnecting.
            writing = asyncio.create_task(_customers_write(proxy, phone_number_id, range(CUSTOMERS_BEFORE, total)))
            stopped.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(stopped.process.wait(), 20) == 0, stopped.logged()
            await writing

            async def everything_arrived() -> bool:
                supervisor = consoles[2]
                assigned = {
                    f["data"]["conversation"]["id"] for c in consoles[:2] for f in c.seen("conversation.assigned")
                }
                return len(supervisor.seen("message.created")) >= total and len(assigned) >= total

            assert await _wait_for(everything_arrived, SETTLE_SECONDS), [c.events for c in consoles]
            await asyncio.sleep(1.0)  # anything repeated would come now
        finally:
            for follower in followers:
                follower.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            for http in sessions:
                await http.close()

        moved = [c for c in consoles if stopped.port in c.instances]
        assert moved, "a console was on the stopped instance"
        for console in moved:
            assert 1012 in console.closes, console.closes
            assert console.instances[-1] != stopped.port

    async with tenant_tx(db, tenant.id) as conn:
        stored = await conn.fetch("select conversation_id from messages where direction = 'inbound'")
        assignments = await conn.fetch("select conversation_id from events where type = 'conversation.assigned'")
    # Every message stored once, each customer one conversation, each conversation assigned once.
    assert len(stored) == total
    assert len({row["conversation_id"] for row in stored}) == total
    assert Counter(row["conversation_id"] for row in assignments) == Counter(
        {row["conversation_id"]: 1 for row in stored}
    )

    for console in consoles:
        seqs = [frame["seq"] for frame in console.events]
        assert seqs == sorted(set(seqs)), "each event once, in order, across the reconnect"
    supervisor_saw = {frame["data"]["conversation_id"] for frame in consoles[2].seen("message.created")}
    assert supervisor_saw == {str(row["conversation_id"]) for row in stored}
    # Each agent saw the assignments meant for them once; together, every one.
    saw: set[str] = set()
    for console in consoles[:2]:
        theirs = Counter(frame["data"]["conversation"]["id"] for frame in console.seen("conversation.assigned"))
        assert set(theirs.values()) <= {1}, (console.person.email, theirs)
        saw |= set(theirs)
    assert saw == {str(row["conversation_id"]) for row in stored}
