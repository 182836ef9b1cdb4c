"""Customers with usernames (issue #16, points 1, 2 and 4): business-scoped user ids of any documented length,
one contact per person whichever keys a body names them by, and WhatsApp's notices about a user changing the
contact without opening a conversation.

The bodies follow Meta's documentation, "Business-scoped user IDs" (developers.facebook.com/documentation/
business-messaging/whatsapp/business-scoped-user-ids, March 2026): `contacts[].user_id` and
`contacts[].profile.username` beside an optional `wa_id`, `messages[].from_user_id` beside an optional `from`;
and its webhooks reference, messages/system (`user_changed_number`, with the old number in `from` and the new
one in `system.wa_id`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from fiv_console.db.pool import Database, tenant_tx
from tests.api import Browsers, TenantPeople
from tests.webhooks import WEBHOOK_PATH, connect_number, new_phone_number_id, post_webhook

CONFORMANCE = Path(__file__).resolve().parent / "data" / "whatsapp" / "pywa"
NUMBER = "5511987650000"
# The documented form: an ISO 3166 country code, a period, and up to 128 letters and digits. Meta's example
# in the guide is 23 characters long; these are as long as the form allows and in between.
BSUID_69 = "BR." + "1A2b3C4d5E6f" * 5 + "123456"
BSUID_LONGEST = "US." + "Z9" * 64
PARENT = "US.ENT.11815799212886844830"


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


@pytest.fixture
async def number(db: Database, tenant: TenantPeople) -> str:
    phone_number_id = new_phone_number_id()
    await connect_number(db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=phone_number_id)
    return phone_number_id


def _body(phone_number_id: str, *, contact: dict[str, Any] | None, message: dict[str, Any]) -> bytes:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "messages": [message],
    }
    if contact is not None:
        value["contacts"] = [contact]
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
        }
    )


def _writes(
    text: str, *, wa_id: str | None = None, user_id: str | None = None, username: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A customer's text as Meta sends it since 2026: the contact and the message name them alike."""
    profile: dict[str, Any] = {"name": "Sheena Nelson"}
    if username is not None:
        profile["username"] = username
    contact: dict[str, Any] = {"profile": profile}
    message: dict[str, Any] = {
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    if wa_id is not None:
        contact["wa_id"] = message["from"] = wa_id
    if user_id is not None:
        contact["user_id"] = message["from_user_id"] = user_id
        contact["parent_user_id"] = PARENT
    return contact, message


async def _post(http: ClientSession, server: TestServer, body: bytes) -> None:
    assert (await post_webhook(http, str(server.make_url(WEBHOOK_PATH)), body)).status == 200


async def _send(http: ClientSession, server: TestServer, number: str, text: str, **keys: Any) -> str:
    contact, message = _writes(text, **keys)
    await _post(http, server, _body(number, contact=contact, message=message))
    return str(message["id"])


async def _rows(db: Database, tenant_id: uuid.UUID, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with tenant_tx(db, tenant_id) as conn:
        return list(await conn.fetch(sql, *args))


async def _dead_letter_count(owner: asyncpg.Connection) -> int:
    return int(await owner.fetchval("select count(*) from webhook_dead_letters"))


# --- 1. a BSUID of any documented length ----------------------------------------------------------------


@pytest.mark.parametrize("bsuid", [BSUID_69, BSUID_LONGEST], ids=["69 characters", "the longest documented"])
async def test_a_long_business_scoped_id_is_a_contact_not_a_dead_letter(
    bsuid: str,
    db: Database,
    owner: asyncpg.Connection,
    tenant: TenantPeople,
    number: str,
    http: ClientSession,
    api_server: TestServer,
) -> None:
    before = await _dead_letter_count(owner)
    wamid = await _send(http, api_server, number, "Oi, sou eu", user_id=bsuid, username="sheena.n")
    assert await _dead_letter_count(owner) == before
    contacts = await _rows(db, tenant.id, "select wa_id, user_id, username, country_code, profile_name from contacts")
    assert [dict(c) for c in contacts] == [
        {
            "wa_id": None,
            "user_id": bsuid,
            "username": "sheena.n",
            "country_code": bsuid[:2],
            "profile_name": "Sheena Nelson",
        }
    ]
    [message] = await _rows(db, tenant.id, "select wa_message_id, text from messages")
    assert (message["wa_message_id"], message["text"]) == (wamid, "Oi, sou eu")


async def test_a_username_only_contact_shows_in_the_api_by_its_username(
    db: Database,
    tenant: TenantPeople,
    number: str,
    http: ClientSession,
    api_server: TestServer,
    browsers: Browsers,
) -> None:
    await _send(http, api_server, number, "hello", user_id=BSUID_69, username="sheena.n")
    [row] = await _rows(db, tenant.id, "select id, contact_id from conversations")
    supervisor = await browsers.signed_in(tenant.supervisor)
    conversation = await supervisor.get(f"/api/conversations/{row['id']}")
    assert conversation.status == 200
    assert (conversation.data["contact"]["wa_id"], conversation.data["contact"]["username"]) == (None, "sheena.n")
    listed = await supervisor.get("/api/conversations")
    assert [c["contact"]["username"] for c in listed.data["items"]] == ["sheena.n"]
    contact = await supervisor.get(f"/api/contacts/{row['contact_id']}")
    assert (contact.data["user_id"], contact.data["country_code"]) == (BSUID_69, "BR")


# --- 2. one person, one contact, one open conversation --------------------------------------------------


async def test_either_key_finds_the_contact(
    db: Database, tenant: TenantPeople, number: str, http: ClientSession, api_server: TestServer
) -> None:
    await _send(http, api_server, number, "both", wa_id=NUMBER, user_id=BSUID_69)
    await _send(http, api_server, number, "number only", wa_id=NUMBER)
    await _send(http, api_server, number, "username now", user_id=BSUID_69, username="sheena.n")
    contacts = await _rows(db, tenant.id, "select wa_id, user_id, username from contacts")
    assert [tuple(c) for c in contacts] == [(NUMBER, BSUID_69, "sheena.n")]
    conversations = await _rows(db, tenant.id, "select id from conversations")
    assert len(conversations) == 1
    assert len(await _rows(db, tenant.id, "select 1 from messages")) == 3


@pytest.mark.parametrize("number_first", [True, False], ids=["number first", "username first"])
async def test_a_body_that_links_a_number_and_a_bsuid_merges_their_contacts_and_conversations(
    number_first: bool,
    db: Database,
    tenant: TenantPeople,
    number: str,
    http: ClientSession,
    api_server: TestServer,
) -> None:
    first: dict[str, Any] = {"wa_id": NUMBER} if number_first else {"user_id": BSUID_69, "username": "sheena.n"}
    second: dict[str, Any] = {"user_id": BSUID_69, "username": "sheena.n"} if number_first else {"wa_id": NUMBER}
    one = await _send(http, api_server, number, "first", **first)
    two = await _send(http, api_server, number, "second", **second)
    assert len(await _rows(db, tenant.id, "select 1 from contacts")) == 2  # nothing linked them yet
    [older] = await _rows(
        db, tenant.id, "select id from contacts where wa_id = $1 or user_id = $1", first.get("wa_id") or BSUID_69
    )
    notes = await _rows(db, tenant.id, "select id from conversations")
    assert len(notes) == 2

    three = await _send(http, api_server, number, "both at last", wa_id=NUMBER, user_id=BSUID_69)

    contacts = await _rows(db, tenant.id, "select id, wa_id, user_id, username from contacts")
    assert [tuple(c) for c in contacts] == [(older["id"], NUMBER, BSUID_69, "sheena.n")]
    conversations = await _rows(
        db, tenant.id, "select id, status, close_reason, contact_id, unread_count from conversations order by status"
    )
    assert [c["contact_id"] for c in conversations] == [older["id"], older["id"]]
    closed, open_ = conversations  # 'closed' < 'waiting'
    assert (closed["status"], open_["status"]) == ("closed", "waiting")
    assert closed["close_reason"].startswith("merged")
    history = await _rows(
        db, tenant.id, "select wa_message_id from messages where conversation_id = $1 order by created_at", open_["id"]
    )
    assert [m["wa_message_id"] for m in history] == [one, two, three]
    assert open_["unread_count"] == 3
    events = await _rows(db, tenant.id, "select type, conversation_id from events where type = 'conversation.closed'")
    assert [(e["type"], e["conversation_id"]) for e in events] == [("conversation.closed", closed["id"])]


# --- 4. notices change the contact and open nothing -----------------------------------------------------


async def test_a_changed_number_moves_the_contact_and_opens_no_conversation(
    db: Database, tenant: TenantPeople, number: str, http: ClientSession, api_server: TestServer
) -> None:
    # pywa's fixture of Meta's documented `user_changed_number` notice (tests/data/README.md), on our number.
    document = json.loads((CONFORMANCE / "system.json").read_text(encoding="utf-8"))["phone_number_change"]
    value = document["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = number
    old, new = value["messages"][0]["from"], value["messages"][0]["system"]["wa_id"]
    await _send(http, api_server, number, "before the change", wa_id=old)
    [conversation] = await _rows(db, tenant.id, "select id from conversations")
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update conversations set status = 'closed', closed_at = now() where id = $1", conversation["id"]
        )

    await _post(http, api_server, orjson.dumps(document))

    contacts = await _rows(db, tenant.id, "select wa_id from contacts")
    assert [c["wa_id"] for c in contacts] == [new]
    assert len(await _rows(db, tenant.id, "select 1 from conversations")) == 1
    assert len(await _rows(db, tenant.id, "select 1 from messages")) == 1
    # The customer writing from the new number is the same contact.
    await _send(http, api_server, number, "after the change", wa_id=new)
    assert len(await _rows(db, tenant.id, "select 1 from contacts")) == 1


async def test_a_notice_about_nobody_known_opens_nothing(
    db: Database, tenant: TenantPeople, number: str, http: ClientSession, api_server: TestServer
) -> None:
    document = json.loads((CONFORMANCE / "system.json").read_text(encoding="utf-8"))["identity_change"]
    document["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = number
    await _post(http, api_server, orjson.dumps(document))
    assert await _rows(db, tenant.id, "select 1 from conversations") == []
    assert await _rows(db, tenant.id, "select 1 from messages") == []


async def test_a_notice_joins_the_open_conversation_without_opening_the_window(
    db: Database, tenant: TenantPeople, number: str, http: ClientSession, api_server: TestServer
) -> None:
    document = json.loads((CONFORMANCE / "system.json").read_text(encoding="utf-8"))["identity_change"]
    value = document["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = number
    await _send(http, api_server, number, "hi", wa_id=value["messages"][0]["from"])
    [before] = await _rows(db, tenant.id, "select last_inbound_at from conversations")
    await _post(http, api_server, orjson.dumps(document))
    [after] = await _rows(db, tenant.id, "select last_inbound_at from conversations")
    assert after["last_inbound_at"] == before["last_inbound_at"]
    kinds = await _rows(db, tenant.id, "select kind from messages order by created_at")
    assert [k["kind"] for k in kinds] == ["text", "system"]
