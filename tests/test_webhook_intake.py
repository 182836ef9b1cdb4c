"""`POST /webhooks/whatsapp` end to end: signature, routing, idempotent storage, conversations, receipts, poison."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from fiv_console import events
from fiv_console.app import create_app
from fiv_console.db.pool import Database, create_database, tenant_tx
from fiv_console.errors import Unavailable
from fiv_console.events import Unannounced
from fiv_console.messages import amendments
from fiv_console.messages.inbound import IntakeResult, Route, store_messages
from fiv_console.messages.intake import Intake
from fiv_console.whatsapp.payloads import parse_webhook
from tests.api import TenantPeople, make_tenant
from tests.conftest import TestDatabase, migrate_database
from tests.webhooks import (
    WEBHOOK_PATH,
    connect_number,
    envelope,
    new_phone_number_id,
    post_webhook,
    sign,
    status,
    text_message,
)

# Real envelopes from pywa's test suite (tests/data/README.md says where from, beside their licence).
CONFORMANCE = Path(__file__).resolve().parent / "data" / "whatsapp" / "pywa"
CUSTOMER = "5511999990000"


def _conformance_cases() -> list[tuple[str, str]]:
    assert CONFORMANCE.is_dir(), f"the WhatsApp conformance envelopes are missing: expected {CONFORMANCE}"
    return [
        (path.name, case)
        for path in sorted(CONFORMANCE.glob("*.json"))
        for case in json.loads(path.read_text(encoding="utf-8"))
    ]


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


@pytest.fixture
def webhook_url(api_server: TestServer) -> str:
    return str(api_server.make_url(WEBHOOK_PATH))


@pytest.fixture
async def number(db: Database, tenant: TenantPeople) -> tuple[str, uuid.UUID]:
    phone_number_id = new_phone_number_id()
    channel_id = await connect_number(
        db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=phone_number_id
    )
    return phone_number_id, channel_id


async def _rows(db: Database, tenant_id: uuid.UUID, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with tenant_tx(db, tenant_id) as conn:
        return list(await conn.fetch(sql, *args))


async def _counts(db: Database, tenant_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    for table in ("contacts", "conversations", "messages", "message_statuses", "events"):
        counts[table] = len(await _rows(db, tenant_id, f"select 1 from {table}"))
    return counts


async def _dead_letters(owner: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await owner.fetch("select reason, phone_number_id, detail, body from webhook_dead_letters order by id"))


# --- every real envelope ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "case"), _conformance_cases())
async def test_every_conformance_envelope_is_stored_once(
    file: str, case: str, db: Database, owner: asyncpg.Connection, http: ClientSession, webhook_url: str
) -> None:
    document = json.loads((CONFORMANCE / file).read_text(encoding="utf-8"))[case]
    for entry in document["entry"]:
        for change in entry["changes"]:
            metadata = change["value"]["metadata"]
            if not metadata["phone_number_id"].isdigit():  # a placeholder in Meta's docs: a number can't be it
                metadata["phone_number_id"] = new_phone_number_id()
    body = json.dumps(document).encode()  # escapes non-ASCII as \u00e9, as Meta does
    batch = parse_webhook(body)
    numbers = {m.phone_number_id for m in batch.messages} | {s.phone_number_id for s in batch.statuses}
    # Envelopes of different cases share numbers: each test takes them over for a tenant of its own.
    await owner.execute(
        "delete from tenants where id in (select tenant_id from channels where phone_number_id = any($1))",
        list(numbers),
    )
    tenant = await make_tenant(db, "C")
    channel_of = {
        n: await connect_number(db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=n) for n in numbers
    }
    dead_before = len(await _dead_letters(owner))

    response = await post_webhook(http, webhook_url, body)
    assert response.status == 200
    counts = await _counts(db, tenant.id)

    stored = await _rows(
        db,
        tenant.id,
        "select m.channel_id, m.wa_message_id, m.kind, m.text, m.media, m.details, m.reply_to_wa_message_id, "
        "m.direction, m.status, c.wa_id, c.user_id, c.profile_name from messages m join contacts c on c.id = "
        "(select contact_id from conversations where id = m.conversation_id)",
    )
    by_wamid = {(r["channel_id"], r["wa_message_id"]): r for r in stored}
    # WhatsApp's notices open no conversation (none is open in these tests): they change the contact only.
    # Edits, revokes and reactions change the message they name (none of these is stored here).
    expected = [
        m
        for m in batch.messages
        if m.wa_message_id and (m.wa_id or m.user_id) and m.kind != "system" and not amendments.is_amendment(m)
    ]
    assert len(stored) == len({(m.phone_number_id, m.wa_message_id) for m in expected})
    for message in expected:
        row = by_wamid[(channel_of[message.phone_number_id], message.wa_message_id)]
        assert (row["direction"], row["status"]) == ("inbound", "received")
        assert row["kind"] == message.kind
        assert row["text"] == message.text
        assert row["reply_to_wa_message_id"] == message.reply_to
        assert (row["wa_id"], row["user_id"]) == (message.wa_id, message.user_id)
        if message.profile_name:
            assert row["profile_name"] == message.profile_name
        assert (row["media"] or {}).get("id") == (message.media.id if message.media else None)
        details = row["details"] or {}
        for name in ("location", "interactive", "button", "reaction", "order", "system"):
            assert (name in details) == (getattr(message, name) is not None), name
        assert details.get("forwarded", False) == message.forwarded
        assert details.get("referral") == message.referral
    receipts = {(s.phone_number_id, s.wa_message_id, s.status) for s in batch.statuses if s.wa_message_id}
    assert counts["message_statuses"] == len(receipts)
    assert counts["events"] >= len(stored)

    again = await post_webhook(http, webhook_url, body)
    assert again.status == 200
    assert await _counts(db, tenant.id) == counts
    assert len(await _dead_letters(owner)) == dead_before


# --- signature and size ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=" + "0" * 64,
        "sha256=" + "z" * 64,
        "md5=abc",
        "sha256 " + "0" * 64,
    ],
)
async def test_a_missing_or_wrong_signature_is_401_and_writes_nothing(
    signature: str | None,
    db: Database,
    owner: asyncpg.Connection,
    tenant: TenantPeople,
    number: tuple[str, uuid.UUID],
    http: ClientSession,
    webhook_url: str,
) -> None:
    body = envelope(number[0], messages=[text_message(CUSTOMER, "hello")])
    dead_before = len(await _dead_letters(owner))
    response = await post_webhook(http, webhook_url, body, signature=signature, sign_it=False)
    assert response.status == 401
    assert (await _counts(db, tenant.id))["messages"] == 0
    assert len(await _dead_letters(owner)) == dead_before


async def test_a_signature_of_other_bytes_is_refused(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    body = envelope(number[0], messages=[text_message(CUSTOMER, "caf\u00e9")])
    # The same document, re-serialized with the accent as raw UTF-8: a different body, so a different HMAC.
    reserialized = json.dumps(json.loads(body), ensure_ascii=False).encode()
    assert reserialized != body
    response = await post_webhook(http, webhook_url, reserialized, signature=sign(body))
    assert response.status == 401
    assert (await _counts(db, tenant.id))["messages"] == 0


async def test_a_wrong_secret_is_refused(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    body = envelope(number[0], messages=[text_message(CUSTOMER, "hi")])
    response = await post_webhook(http, webhook_url, body, signature=sign(body, "another-apps-secret"))
    assert response.status == 401
    assert (await _counts(db, tenant.id))["messages"] == 0


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped-unicode", "raw-utf8"])
async def test_emoji_and_escaped_unicode_verify_and_are_stored_exactly(
    ascii_only: bool,
    db: Database,
    tenant: TenantPeople,
    number: tuple[str, uuid.UUID],
    http: ClientSession,
    webhook_url: str,
) -> None:
    words = "Ol\u00e1, S\u00e3o Paulo \U0001f600\U0001f44d\U0001f3fd \u4f60\u597d \u202e"
    document = json.loads(envelope(number[0], messages=[text_message(CUSTOMER, words)]))
    body = json.dumps(document, ensure_ascii=ascii_only).encode()
    assert (b"\\ud83d" in body) is ascii_only  # Meta's escaping of an emoji: a surrogate pair
    response = await post_webhook(http, webhook_url, body)
    assert response.status == 200
    rows = await _rows(db, tenant.id, "select text from messages")
    assert [r["text"] for r in rows] == [words]


async def test_a_body_over_the_limit_is_413(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    body = envelope(number[0], messages=[text_message(CUSTOMER, "x" * (5 * 1024 * 1024))])
    response = await post_webhook(http, webhook_url, body)
    assert response.status == 413
    assert (await _counts(db, tenant.id))["messages"] == 0


async def test_a_body_of_three_megabytes_is_taken(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    messages = [text_message(CUSTOMER, "y" * 3000) for _ in range(1000)]
    body = envelope(number[0], messages=messages)
    assert len(body) > 3_000_000
    response = await post_webhook(http, webhook_url, body)
    assert response.status == 200
    assert (await _counts(db, tenant.id))["messages"] == 1000


# --- routing and dead letters ---------------------------------------------------------------------------


async def test_an_unknown_number_is_acknowledged_and_kept_for_the_operator(
    db: Database, owner: asyncpg.Connection, tenant: TenantPeople, http: ClientSession, webhook_url: str
) -> None:
    unknown = new_phone_number_id()
    body = envelope(unknown, messages=[text_message(CUSTOMER, "anyone there?")])
    response = await post_webhook(http, webhook_url, body)
    assert response.status == 200
    letters = [r for r in await _dead_letters(owner) if r["phone_number_id"] == unknown]
    assert [(r["reason"], bytes(r["body"])) for r in letters] == [("unroutable", body)]
    # Attached to no tenant: not even the one whose customer number it shares.
    assert (
        await owner.fetchval(
            "select count(*) from messages where wa_message_id like 'wamid.%' and text = $1", "anyone there?"
        )
        == 0
    )


async def test_the_server_role_cannot_read_dead_letters(db: Database) -> None:
    async with db.connection() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("select * from webhook_dead_letters")


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"object":"page","entry":[]}', b'{"object":"whatsapp_business_account","entry":"x"}', b"[]"],
)
async def test_a_signed_body_that_is_not_a_webhook_is_a_dead_letter(
    body: bytes, owner: asyncpg.Connection, http: ClientSession, webhook_url: str
) -> None:
    response = await post_webhook(http, webhook_url, body)
    assert response.status == 200
    last = (await _dead_letters(owner))[-1]
    assert (last["reason"], bytes(last["body"])) == ("unparseable", body)


async def test_one_tenant_per_number_and_nothing_else_touched(
    db: Database,
    tenant: TenantPeople,
    other_tenant: TenantPeople,
    number: tuple[str, uuid.UUID],
    http: ClientSession,
    webhook_url: str,
) -> None:
    other_number = new_phone_number_id()
    await connect_number(db, tenant_id=other_tenant.id, queue_id=other_tenant.queue_id, phone_number_id=other_number)
    response = await post_webhook(http, webhook_url, envelope(number[0], messages=[text_message(CUSTOMER, "mine")]))
    assert response.status == 200
    assert (await _counts(db, tenant.id))["messages"] == 1
    assert await _counts(db, other_tenant.id) == {
        "contacts": 0,
        "conversations": 0,
        "messages": 0,
        "message_statuses": 0,
        "events": 0,
    }


# --- idempotency and conversations ----------------------------------------------------------------------


async def test_the_same_message_at_the_same_instant_is_one_row_and_one_event(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    body = envelope(number[0], messages=[text_message(CUSTOMER, "twice", wamid="wamid.same-instant")])
    answers = await asyncio.gather(*(post_webhook(http, webhook_url, body) for _ in range(8)))
    assert [a.status for a in answers] == [200] * 8
    counts = await _counts(db, tenant.id)
    assert (counts["messages"], counts["conversations"], counts["contacts"]) == (1, 1, 1)
    kinds = [r["type"] for r in await _rows(db, tenant.id, "select type from events order by seq")]
    assert kinds == ["conversation.created", "message.created"]


async def test_a_first_message_opens_a_waiting_conversation_and_the_next_joins_it(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    first = text_message(CUSTOMER, "hello", name="Maria")
    await post_webhook(http, webhook_url, envelope(number[0], messages=[first]))
    conversations = await _rows(
        db, tenant.id, "select id, status, queue_id, channel_id, last_inbound_at from conversations"
    )
    assert [(c["status"], c["queue_id"], c["channel_id"]) for c in conversations] == [
        ("waiting", tenant.queue_id, number[1])
    ]
    opened_at = conversations[0]["last_inbound_at"]
    assert opened_at is not None

    second = text_message(CUSTOMER, "anyone?", name="Maria S.")
    second["timestamp"] = str(int(opened_at.timestamp()) + 1)
    await post_webhook(http, webhook_url, envelope(number[0], messages=[second]))
    conversations = await _rows(db, tenant.id, "select id, last_inbound_at from conversations")
    assert len(conversations) == 1
    assert conversations[0]["last_inbound_at"] > opened_at
    contacts = await _rows(db, tenant.id, "select wa_id, profile_name from contacts")
    assert [(c["wa_id"], c["profile_name"]) for c in contacts] == [(CUSTOMER, "Maria S.")]
    messages = await _rows(db, tenant.id, "select text from messages order by created_at")
    assert [m["text"] for m in messages] == ["hello", "anyone?"]


async def test_a_message_after_the_conversation_closed_opens_a_new_one(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    await post_webhook(http, webhook_url, envelope(number[0], messages=[text_message(CUSTOMER, "one")]))
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update conversations set status = 'closed', closed_at = now()")
    await post_webhook(http, webhook_url, envelope(number[0], messages=[text_message(CUSTOMER, "two")]))
    rows = await _rows(db, tenant.id, "select status from conversations order by created_at")
    assert [r["status"] for r in rows] == ["closed", "waiting"]


async def test_a_customer_clock_in_the_future_does_not_stretch_the_window(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    message = text_message(CUSTOMER, "from the future")
    message["timestamp"] = "4102444800"  # 2100-01-01
    await post_webhook(http, webhook_url, envelope(number[0], messages=[message]))
    rows = await _rows(db, tenant.id, "select last_inbound_at <= now() as capped from conversations")
    assert rows[0]["capped"]


async def test_a_batch_of_many_customers_in_any_order_with_a_concurrent_reversed_batch(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    customers = [f"55119{n:08d}" for n in range(20)]
    forward = envelope(number[0], messages=[text_message(c, f"hi from {c}") for c in customers])
    backward = envelope(number[0], messages=[text_message(c, f"again {c}") for c in reversed(customers)])
    answers = await asyncio.gather(*(post_webhook(http, webhook_url, b) for b in (forward, backward) * 3))
    assert all(a.status == 200 for a in answers)
    counts = await _counts(db, tenant.id)
    assert (counts["contacts"], counts["conversations"], counts["messages"]) == (20, 20, 40)
    seqs = [r["seq"] for r in await _rows(db, tenant.id, "select seq from events order by seq")]
    assert seqs == list(range(1, len(seqs) + 1))  # no gaps, no repeats
    assert len(seqs) == 60


# --- receipts -------------------------------------------------------------------------------------------


async def _outbound(db: Database, tenant: TenantPeople, channel_id: uuid.UUID, wamid: str) -> uuid.UUID:
    async with tenant_tx(db, tenant.id) as conn:
        contact = await conn.fetchval(
            "insert into contacts (tenant_id, wa_id) values ($1, $2) returning id", tenant.id, CUSTOMER
        )
        conversation = await conn.fetchval(
            "insert into conversations (tenant_id, channel_id, contact_id, queue_id) values ($1, $2, $3, $4) "
            "returning id",
            tenant.id,
            channel_id,
            contact,
            tenant.queue_id,
        )
        return await conn.fetchval(
            "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, wa_message_id, "
            "status) values ($1, $2, $3, 'outbound', 'text', 'hello', $4, 'sent') returning id",
            tenant.id,
            conversation,
            channel_id,
            wamid,
        )


async def test_receipts_move_a_message_only_forwards(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    wamid = "wamid.outbound-forwards"
    await _outbound(db, tenant, number[1], wamid)
    for state in ("read", "delivered", "sent", "delivered"):
        await post_webhook(http, webhook_url, envelope(number[0], statuses=[status(wamid, state)]))
    rows = await _rows(db, tenant.id, "select status from messages where wa_message_id = $1", wamid)
    assert rows[0]["status"] == "read"
    receipts = await _rows(db, tenant.id, "select status from message_statuses order by status")
    assert [r["status"] for r in receipts] == ["delivered", "read", "sent"]  # the repeated one recorded once
    events = await _rows(db, tenant.id, "select payload from events where type = 'message.status'")
    assert [e["payload"]["status"] for e in events] == ["read"]


async def test_a_failed_receipt_keeps_metas_error(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    wamid = "wamid.outbound-failed"
    await _outbound(db, tenant, number[1], wamid)
    error = {
        "code": 131026,
        "title": "Message undeliverable",
        "message": "Message undeliverable",
        "error_data": {"details": "Message Undeliverable."},
    }
    await post_webhook(http, webhook_url, envelope(number[0], statuses=[status(wamid, "failed", errors=[error])]))
    rows = await _rows(db, tenant.id, "select status, error from messages where wa_message_id = $1", wamid)
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"]["code"] == 131026
    assert rows[0]["error"]["title"] == "Message undeliverable"
    assert rows[0]["error"]["details"] == "Message Undeliverable."


async def test_a_receipt_for_an_unknown_message_is_recorded_not_refused(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    response = await post_webhook(
        http, webhook_url, envelope(number[0], statuses=[status("wamid.never-seen", "delivered")])
    )
    assert response.status == 200
    receipts = await _rows(db, tenant.id, "select wa_message_id, status from message_statuses")
    assert [(r["wa_message_id"], r["status"]) for r in receipts] == [("wamid.never-seen", "delivered")]


# --- poison ---------------------------------------------------------------------------------------------


async def test_nul_in_text_is_stored_without_it(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    body = envelope(number[0], messages=[text_message(CUSTOMER, "a\u0000b")])
    assert b"\\u0000" in body
    assert (await post_webhook(http, webhook_url, body)).status == 200
    rows = await _rows(db, tenant.id, "select text, raw from messages")
    assert rows[0]["text"] == "ab"
    assert rows[0]["raw"]["text"]["body"] == "ab"


async def test_a_lone_surrogate_is_replaced_in_its_message_and_the_rest_of_the_batch_is_stored(
    db: Database,
    owner: asyncpg.Connection,
    tenant: TenantPeople,
    number: tuple[str, uuid.UUID],
    http: ClientSession,
    webhook_url: str,
) -> None:
    broken = text_message(CUSTOMER, "half an emoji: BROKEN!", name="Ana BROKEN")
    valid = text_message("5511999990001", "all fine \U0001f44d", name="Bia")
    failed = status("wamid.out", "failed", errors=[{"code": 131026, "title": "Undeliverable BROKEN"}])
    # Half of "\ud83d\ude00", as JSON escapes it: orjson, and PostgreSQL, refuse it.
    body = envelope(number[0], messages=[broken, valid], statuses=[failed]).replace(b"BROKEN", b"\\ud83d")
    before = len(await _dead_letters(owner))
    assert (await post_webhook(http, webhook_url, body)).status == 200

    rows = await _rows(
        db,
        tenant.id,
        "select m.wa_message_id, m.text, m.raw, k.profile_name from messages m "
        "join conversations c on c.id = m.conversation_id join contacts k on k.id = c.contact_id "
        "order by k.wa_id",
    )
    assert [(r["wa_message_id"], r["text"], r["profile_name"]) for r in rows] == [
        (broken["id"], "half an emoji: \ufffd!", "Ana \ufffd"),
        (valid["id"], "all fine \U0001f44d", "Bia"),
    ]
    assert rows[0]["raw"]["text"]["body"] == "half an emoji: \ufffd!"
    receipts = await _rows(db, tenant.id, "select status, errors from message_statuses")
    assert [(r["status"], r["errors"][0]["title"]) for r in receipts] == [("failed", "Undeliverable \ufffd")]
    assert len(await _dead_letters(owner)) == before


async def test_wrong_types_and_unknown_kinds_spoil_nothing_else(
    db: Database,
    owner: asyncpg.Connection,
    tenant: TenantPeople,
    number: tuple[str, uuid.UUID],
    http: ClientSession,
    webhook_url: str,
) -> None:
    good = text_message(CUSTOMER, "fine")
    wrong_types = {"from": CUSTOMER, "id": "wamid.wrong-types", "timestamp": ["no"], "type": "text", "text": 5}
    no_id = {"from": CUSTOMER, "type": "text", "text": {"body": "who am I"}, "timestamp": "1700000000"}
    unknown_kind = {
        "from": CUSTOMER,
        "id": "wamid.hologram",
        "timestamp": "1700000000",
        "type": "hologram",
        "hologram": {"depth": 3},
    }
    body = envelope(
        number[0],
        messages=[good, wrong_types, no_id, unknown_kind],
        statuses=[{"status": "read"}, status("wamid.x", "delivered")],
    )
    before = len(await _dead_letters(owner))
    assert (await post_webhook(http, webhook_url, body)).status == 200
    rows = await _rows(db, tenant.id, "select wa_message_id, kind, raw from messages order by created_at")
    assert [(r["wa_message_id"], r["kind"]) for r in rows] == [
        (good["id"], "text"),
        ("wamid.wrong-types", "text"),  # its bad fields left out, the message kept
        ("wamid.hologram", "hologram"),
    ]
    assert rows[2]["raw"]["hologram"] == {"depth": 3}
    letters = (await _dead_letters(owner))[before:]
    assert sorted(r["reason"] for r in letters) == ["unstorable", "unstorable"]
    assert len(await _rows(db, tenant.id, "select 1 from message_statuses")) == 1


# --- the database away ----------------------------------------------------------------------------------


@pytest.fixture
async def own_database(fresh_database: TestDatabase) -> TestDatabase:
    await migrate_database(fresh_database.owner_url)
    return fresh_database


async def test_database_unavailable_is_503_and_meta_retries_later(
    own_database: TestDatabase, postgres_url: str, http: ClientSession
) -> None:
    server = TestServer(create_app(own_database.settings(db_acquire_timeout=1)))
    await server.start_server()
    try:
        db = await create_database(own_database.app_url, min_size=1, max_size=2, acquire_timeout=5, command_timeout=10)
        try:
            tenant = await make_tenant(db, "D")
            phone_number_id = new_phone_number_id()
            await connect_number(db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=phone_number_id)
        finally:
            await db.pool.close()
        body = envelope(phone_number_id, messages=[text_message(CUSTOMER, "are you there?")])
        url = str(server.make_url(WEBHOOK_PATH))

        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute(f'alter database "{own_database.name}" with allow_connections false')
            await admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1", own_database.name
            )
            response = await post_webhook(http, url, body)
            assert response.status == 503
            assert response.headers.get("Retry-After")
            await admin.execute(f'alter database "{own_database.name}" with allow_connections true')
        finally:
            await admin.close()

        response = await post_webhook(http, url, body)
        assert response.status == 200
        check = await asyncpg.connect(own_database.owner_url)
        try:
            assert await check.fetchval("select count(*) from messages") == 1
        finally:
            await check.close()
    finally:
        await server.close()


async def test_a_connection_ended_mid_transaction_is_unavailable_not_an_error(
    db: Database, tenant: TenantPeople, database: TestDatabase, postgres_url: str
) -> None:
    async def waits_in_a_transaction() -> None:
        async with tenant_tx(db, tenant.id) as conn:
            await conn.execute("select pg_sleep(5)")

    victim = asyncio.create_task(waits_in_a_transaction())
    await asyncio.sleep(0.5)
    admin = await asyncpg.connect(postgres_url)
    try:
        ended = await admin.fetchval(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity "
            "where datname = $1 and query = 'select pg_sleep(5)'",
            database.name,
        )
    finally:
        await admin.close()
    assert ended == 1
    with pytest.raises(Unavailable):
        await victim


async def test_an_item_nested_too_deeply_to_store_is_a_dead_letter_and_the_rest_is_stored(
    db: Database,
    owner: asyncpg.Connection,
    tenant: TenantPeople,
    number: tuple[str, uuid.UUID],
    http: ClientSession,
    webhook_url: str,
) -> None:
    deep: Any = "bottom"
    for _ in range(300):
        deep = {"d": deep}
    document = json.loads(envelope(number[0], messages=[text_message(CUSTOMER, "deep"), text_message(CUSTOMER, "ok")]))
    document["entry"][0]["changes"][0]["value"]["messages"][0]["extra"] = deep
    body = json.dumps(document).encode()  # orjson cannot write it: that is the point
    assert (await post_webhook(http, webhook_url, body)).status == 200
    last = (await _dead_letters(owner))[-1]
    assert (last["reason"], bytes(last["body"])) == ("unstorable", body)
    assert [r["text"] for r in await _rows(db, tenant.id, "select text from messages")] == ["ok"]


async def test_a_messages_change_that_cannot_be_read_is_kept_not_dropped(
    owner: asyncpg.Connection, http: ClientSession, webhook_url: str
) -> None:
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA-1",
                "changes": [
                    {"field": "messages", "value": {"metadata": {"phone_number_id": 106540352242922}, "messages": {}}}
                ],
            }
        ],
    }
    body = json.dumps(document).encode()
    assert (await post_webhook(http, webhook_url, body)).status == 200
    last = (await _dead_letters(owner))[-1]
    assert last["reason"] == "unstorable"
    assert json.loads(bytes(last["body"]))["value"]["metadata"]["phone_number_id"] == 106540352242922


async def test_several_unknown_numbers_are_one_dead_letter(
    owner: asyncpg.Connection, http: ClientSession, webhook_url: str
) -> None:
    first, second = new_phone_number_id(), new_phone_number_id()
    document = json.loads(envelope(first, messages=[text_message(CUSTOMER, "a")]))
    document["entry"].append(json.loads(envelope(second, messages=[text_message(CUSTOMER, "b")]))["entry"][0])
    body = json.dumps(document).encode()
    before = len(await _dead_letters(owner))
    assert (await post_webhook(http, webhook_url, body)).status == 200
    letters = (await _dead_letters(owner))[before:]
    assert [(r["reason"], r["phone_number_id"]) for r in letters] == [("unroutable", None)]
    assert first in letters[0]["detail"]
    assert second in letters[0]["detail"]


async def test_a_sender_with_an_overlong_number_is_kept_by_their_business_scoped_id(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    message = text_message("9" * 40, "who am I")
    message["from_user_id"] = "US.13491208655302741918"
    assert (await post_webhook(http, webhook_url, envelope(number[0], messages=[message]))).status == 200
    contacts = await _rows(db, tenant.id, "select wa_id, user_id from contacts")
    assert [tuple(c) for c in contacts] == [(None, "US.13491208655302741918")]


async def test_a_whatsapp_notice_does_not_open_the_window(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], http: ClientSession, webhook_url: str
) -> None:
    notice = {
        "from": CUSTOMER,
        "id": "wamid.changed-number",
        "timestamp": "1700000000",
        "type": "system",
        "system": {"body": "User changed number", "wa_id": "5511911112222", "type": "user_changed_number"},
    }
    written = text_message(CUSTOMER, "hi")
    assert (await post_webhook(http, webhook_url, envelope(number[0], messages=[written]))).status == 200
    [before] = await _rows(db, tenant.id, "select last_inbound_at from conversations")
    assert (await post_webhook(http, webhook_url, envelope(number[0], messages=[notice]))).status == 200
    rows = await _rows(db, tenant.id, "select last_inbound_at, last_message_at from conversations")
    assert rows[0]["last_inbound_at"] == before["last_inbound_at"]
    assert [r["kind"] for r in await _rows(db, tenant.id, "select kind from messages order by created_at")] == [
        "text",
        "system",
    ]


@pytest.mark.parametrize("one_by_one", [False, True], ids=["together", "one by one"])
async def test_the_customers_first_message_starts_the_wait_for_an_answer_and_a_notice_does_not(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], one_by_one: bool
) -> None:
    notice = {
        "from": CUSTOMER,
        "id": "wamid.notice",
        "timestamp": "1700000000",
        "type": "system",
        "system": {"body": "User identity changed", "type": "customer_identity_changed"},
    }
    route = Route(tenant.id, number[1])

    async def arrive(*messages: dict[str, Any]) -> None:
        body = envelope(number[0], messages=messages)
        batch = parse_webhook(body)
        async with events.changing(db, Unannounced(), tenant.id) as (conn, changes):
            if one_by_one:  # as the careful retry stores them
                for message in batch.messages:
                    await store_messages(conn, changes, [IntakeResult()], [(0, route, message)], [body])
            else:
                items = [(0, route, message) for message in batch.messages]
                await store_messages(conn, changes, [IntakeResult()], items, [body])

    async def awaiting() -> Any:
        [row] = await _rows(db, tenant.id, "select awaiting_reply_since from conversations")
        return row["awaiting_reply_since"]

    await arrive(text_message(CUSTOMER, "hi"))
    async with tenant_tx(db, tenant.id) as conn:  # answered: no one is awaited until the customer writes again
        await conn.execute("update conversations set awaiting_reply_since = null")
    await arrive(notice)
    assert await awaiting() is None
    first, second = text_message(CUSTOMER, "Hello?"), text_message(CUSTOMER, "Anyone?")
    await arrive(first, second)
    await arrive(text_message(CUSTOMER, "Hello??"))
    [stored] = await _rows(db, tenant.id, "select created_at from messages where wa_message_id = $1", first["id"])
    assert await awaiting() == stored["created_at"]


async def test_one_tenants_concurrent_posts_share_transactions_and_each_hears_its_own_outcome(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID]
) -> None:
    intake = Intake(db, Unannounced())
    bodies = [envelope(number[0], messages=[text_message(f"55118{n:08d}", f"hello {n}")]) for n in range(40)]
    results = await asyncio.gather(*(intake.ingest(parse_webhook(body), body=body) for body in bodies))
    assert [r.messages_stored for r in results] == [1] * 40
    logged = await _rows(db, tenant.id, "select seq, type, conversation_id from events order by seq")
    by_conversation: dict[uuid.UUID, list[str]] = {}
    for event in logged:
        by_conversation.setdefault(event["conversation_id"], []).append(event["type"])
    assert len(by_conversation) == 40
    assert all(sorted(types) == ["conversation.created", "message.created"] for types in by_conversation.values())
    assert len({event["seq"] for event in logged}) == 80
    rows = await _rows(db, tenant.id, "select xmin::text as tx from messages")
    assert len(rows) == 40
    assert len({r["tx"] for r in rows}) < 40  # stored together, not one commit each


async def test_items_the_database_refuses_are_dead_letters_one_by_one(
    db: Database, owner: asyncpg.Connection, number: tuple[str, uuid.UUID], tenant: TenantPeople
) -> None:
    intake = Intake(db, Unannounced())
    first = envelope(number[0], messages=[text_message(CUSTOMER, "before")])
    assert (await intake.ingest(parse_webhook(first), body=first)).messages_stored == 1
    # The tenant goes while this process still knows the number's route: every row it would write is refused.
    await owner.execute("delete from tenants where id = $1", tenant.id)
    later = envelope(number[0], messages=[text_message(CUSTOMER, "after"), text_message("5511000000001", "me too")])
    before = len(await _dead_letters(owner))
    result = await intake.ingest(parse_webhook(later), body=later)
    assert (result.messages_stored, result.dead_letters) == (0, 2)
    letters = (await _dead_letters(owner))[before:]
    assert [r["reason"] for r in letters] == ["unstorable", "unstorable"]
    assert all(r["detail"].startswith("refused:") for r in letters)


async def test_a_batch_limit_smaller_than_the_queue_still_answers_everyone_once(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID]
) -> None:
    intake = Intake(db, Unannounced(), batch_limit=3)
    bodies = [envelope(number[0], messages=[text_message(f"55117{n:08d}", f"hi {n}")]) for n in range(20)]
    results = await asyncio.gather(*(intake.ingest(parse_webhook(body), body=body) for body in bodies))
    assert [r.messages_stored for r in results] == [1] * 20
    rows = await _rows(db, tenant.id, "select xmin::text as tx, count(*) as n from messages group by 1")
    assert sum(r["n"] for r in rows) == 20
    assert max(r["n"] for r in rows) <= 3


async def _waiting_to_open_a_conversation(conn: asyncpg.Connection) -> bool:
    # The activity view is read once per transaction unless its snapshot is cleared.
    await conn.execute("select pg_stat_clear_snapshot()")
    waiting: bool = await conn.fetchval(
        "select exists (select 1 from pg_stat_activity where wait_event_type = 'Lock' "
        "and query like '%insert into conversations%')"
    )
    return waiting


@pytest.mark.parametrize("careful", [False, True], ids=["together", "careful"])
async def test_a_message_joins_the_conversation_reopened_while_it_was_being_stored(
    db: Database, tenant: TenantPeople, number: tuple[str, uuid.UUID], careful: bool
) -> None:
    """The customer's last conversation is closed when the message looks for it and reopened before the
    message can open a new one: the message joins the reopened one, and no second one is opened."""
    intake = Intake(db, Unannounced())
    first = envelope(number[0], messages=[text_message(CUSTOMER, "hello")])
    await intake.ingest(parse_webhook(first), body=first)
    [old] = await _rows(db, tenant.id, "select id from conversations")
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update conversations set status = 'closed', closed_at = now() where id = $1", old["id"])

    later = envelope(number[0], messages=[text_message(CUSTOMER, "me again")])
    if careful:  # as the item-by-item retry stores it
        route = Route(tenant.id, number[1])
        [message] = parse_webhook(later).messages

        async def store() -> None:
            async with events.changing(db, Unannounced(), tenant.id) as (conn, changes):
                await store_messages(conn, changes, [IntakeResult()], [(0, route, message)], [later])

        storing = asyncio.ensure_future(store())
    else:
        storing = asyncio.ensure_future(intake.ingest(parse_webhook(later), body=later))
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update conversations set status = 'waiting', closed_at = null, close_reason = null where id = $1",
            old["id"],
        )
        # Held open until the message has missed the reopened row and waits on its new conversation's key.
        for _ in range(500):
            if await _waiting_to_open_a_conversation(conn):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the message never tried to open a conversation")
    await storing
    rows = await _rows(db, tenant.id, "select id, status from conversations")
    assert [(r["id"], r["status"]) for r in rows] == [(old["id"], "waiting")]
    joined = await _rows(db, tenant.id, "select conversation_id from messages where text = 'me again'")
    assert [r["conversation_id"] for r in joined] == [old["id"]]
    created = await _rows(db, tenant.id, "select 1 from events where type = 'conversation.created'")
    assert len(created) == 1
