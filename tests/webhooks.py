"""Helpers for tests that post WhatsApp webhooks: signing, envelopes, and a business number to route them."""

from __future__ import annotations

import hashlib
import hmac
import io
import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import ClientResponse, ClientSession
from pydantic import SecretStr

from fiv_console import channels
from fiv_console.db.pool import Database, tenant_tx
from tests.conftest import WEBHOOK_SECRET

WEBHOOK_PATH = "/webhooks/whatsapp"
_numbers = itertools.count(1)


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_webhook(
    session: ClientSession, url: str, body: bytes, *, signature: str | None = None, sign_it: bool = True
) -> ClientResponse:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif sign_it:
        headers["X-Hub-Signature-256"] = sign(body)
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
            ),
        )
    return channel.id


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
