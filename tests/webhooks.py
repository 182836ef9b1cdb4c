"""Helpers for tests that post WhatsApp webhooks: signing, envelopes, a business number to route them, and a
console wired to the Cloud API simulator (`simulated_world`)."""

from __future__ import annotations

import io
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from yarl import URL

from fiv_console.app import create_app
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.routing import channels
from fiv_console.serving import free_port
from fiv_console.settings import Settings
from fiv_console.simulation.cloud_api import GraphSimulator, SimulatorConfig, SimulatorServer
from fiv_console.whatsapp.signature import SIGNATURE_HEADER
from fiv_console.whatsapp.signature import sign as sign_with
from tests.api import Browsers, TenantPeople
from tests.conftest import WEBHOOK_SECRET, TestDatabase

WEBHOOK_PATH = "/webhooks/whatsapp"
_numbers = itertools.count(1)


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return sign_with(secret.encode(), body)


async def post_webhook(
    session: ClientSession, url: str, body: bytes, *, signature: str | None = None, sign_it: bool = True
) -> ClientResponse:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    elif sign_it:
        headers[SIGNATURE_HEADER] = sign(body)
    # aiohttp warns about large raw-bytes bodies; a stream sends the same bytes.
    data = io.BytesIO(body) if len(body) > 1024 * 1024 else body
    async with session.post(url, data=data, headers=headers) as response:
        await response.read()
        return response


def new_phone_number_id() -> str:
    return f"{time.time_ns() % 10**12}{next(_numbers):04d}"


async def connect_number(
    db: Database,
    *,
    tenant_id: uuid.UUID,
    queue_id: uuid.UUID,
    phone_number_id: str,
    token: str = "test-token",  # noqa: S107 - the simulator takes any token
    waba_id: str | None = None,
) -> uuid.UUID:
    async with tenant_tx(db, tenant_id) as conn:
        channel = await channels.create_channel(
            conn,
            tenant_id=tenant_id,
            data=channels.ChannelCreate(
                phone_number_id=phone_number_id,
                display_number="+1 555 0100",
                default_queue_id=queue_id,
                access_token=SecretStr(token),
                waba_id=waba_id,
            ),
        )
    return channel.id


async def open_conversation(
    db: Database, tenant: TenantPeople, *, wa_id: str | None = None, group_id: str | None = None
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A contact (a customer's number, or a group) with a conversation waiting in the tenant's queue on a new
    number of its own, made straight in the database: (channel id, contact id, conversation id)."""
    channel_id = await connect_number(
        db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=new_phone_number_id()
    )
    async with tenant_tx(db, tenant.id) as conn:
        contact_id = await conn.fetchval(
            "insert into contacts (tenant_id, wa_id, group_id) values ($1, $2, $3) returning id",
            tenant.id,
            wa_id,
            group_id,
        )
        conversation_id = await conn.fetchval(
            "insert into conversations (tenant_id, channel_id, contact_id, queue_id) values ($1, $2, $3, $4) "
            "returning id",
            tenant.id,
            channel_id,
            contact_id,
            tenant.queue_id,
        )
    return channel_id, contact_id, conversation_id


async def number_of(db: Database, tenant: TenantPeople) -> str:
    """A new business number of the tenant, routed to its queue."""
    phone_number_id = new_phone_number_id()
    await connect_number(db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=phone_number_id)
    return phone_number_id


async def customer_writes(
    server: TestServer, phone_number_id: str, text: str, *, customer: str = "5511900000001"
) -> None:
    """A customer's text message, posted to the server as Meta would; it must be answered 200."""
    async with ClientSession() as http:
        response = await post_webhook(
            http,
            str(server.make_url(WEBHOOK_PATH)),
            envelope(phone_number_id, messages=[text_message(customer, text)]),
        )
        assert response.status == 200


def envelope(
    phone_number_id: str, *, messages: Sequence[Any] = (), statuses: Sequence[Any] = (), **value: Any
) -> bytes:
    contacts = [
        {"profile": {"name": m.get("_name", "Customer")}, "wa_id": m["from"]}
        for m in messages
        if isinstance(m, dict) and "from" in m
    ]
    clean = [{k: v for k, v in m.items() if k != "_name"} if isinstance(m, dict) else m for m in messages]
    change_value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": phone_number_id},
        **value,
    }
    if clean:
        change_value["contacts"] = contacts
        change_value["messages"] = clean
    if statuses:
        change_value["statuses"] = list(statuses)
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": change_value}]}],
    }
    return orjson.dumps(document)


def text_message(wa_id: str, body: str, *, wamid: str | None = None, name: str = "Customer") -> dict[str, Any]:
    return {
        "from": wa_id,
        "id": wamid or f"wamid.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": body},
        "_name": name,
    }


def status(wamid: str, state: str, *, recipient: str = "5511999990000", **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": state, "timestamp": str(int(time.time())), "recipient_id": recipient, **extra}


@dataclass
class World:
    """The console and the simulator, each on a real port, the one's Graph API being the other."""

    console: TestServer
    simulator: GraphSimulator
    browsers: Browsers
    webhook_url: str
    phone_number_id: str
    channel_id: uuid.UUID
    settings: Settings

    async def customer_writes(self, wa_id: str, text: str) -> None:
        """A signed text message from the customer `wa_id` to the world's number, as Meta posts it."""
        await customer_writes(self.console, self.phone_number_id, text, customer=wa_id)

    async def stop_console(self) -> None:
        """The console goes away, as a killed process would: its sockets drop and its port stops answering."""
        await self.console.close()

    async def start_console(self) -> None:
        """A new console process on the same port, database and settings."""
        port = URL(self.webhook_url).port
        self.console = TestServer(create_app(self.settings), port=port)
        await self.console.start_server()


@asynccontextmanager
async def simulated_world(
    database: TestDatabase,
    db: Database,
    tenant: TenantPeople,
    *,
    seed: int,
    token: str = "test-token",  # noqa: S107 - the simulator's test token
    access_tokens: frozenset[str] | None = None,
    simulator: dict[str, Any] | None = None,
    **settings: object,
) -> AsyncIterator[World]:
    """A console on a free port whose Graph API is the simulator, which posts its webhooks back to it; the
    tenant's new number connected with `token`, in the simulator's business account (its templates).
    `simulator` overrides the simulator's configuration, `settings` the console's."""
    port = free_port()
    webhook_url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    config = SimulatorConfig(
        app_secret=WEBHOOK_SECRET.encode(),
        console_url=webhook_url,
        access_tokens=access_tokens,
        status_delays=(0.02, 0.05, 0.1),
        seed=seed,
        **(simulator or {}),
    )
    async with SimulatorServer(config) as server:
        console_settings = database.settings(whatsapp_graph_url=server.graph_url, **settings)
        console = TestServer(create_app(console_settings), port=port)
        await console.start_server()
        browsers = Browsers(console)
        phone_number_id = new_phone_number_id()
        channel_id = await connect_number(
            db,
            tenant_id=tenant.id,
            queue_id=tenant.queue_id,
            phone_number_id=phone_number_id,
            token=token,
            waba_id=config.waba_id,
        )
        world = World(console, server.simulator, browsers, webhook_url, phone_number_id, channel_id, console_settings)
        try:
            yield world
        finally:
            await browsers.close()
            await world.console.close()
