"""Fields besides `messages` that carry messages, and value-level errors (issue #16, point 8): each is stored
where it belongs instead of only being logged.

Bodies, by Meta's webhooks reference (developers.facebook.com/documentation/business-messaging/whatsapp/
webhooks/reference/...): `smb_message_echoes` (a business on the WhatsApp Business app as well, "coexistence":
what it sent from the app; `to` is the number as the app was given it), `history` (its app chats before
onboarding: chunks of threads, each message with `history_context.status`; `errors` when the business
declined to share), and a `messages` change whose value has only `errors` (code 131000, as in pywa's
`interactive_message_with_err` fixture).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.messages.coexistence import HISTORY_REASON
from fiv_console.whatsapp.payloads import parse_webhook
from tests.api import TenantPeople
from tests.webhooks import WEBHOOK_PATH, connect_number, envelope, new_phone_number_id, post_webhook, text_message

CUSTOMER = "16505551234"


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


@pytest.fixture
async def number(db: Database, tenant: TenantPeople) -> str:
    phone_number_id = new_phone_number_id()
    await connect_number(db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=phone_number_id)
    return phone_number_id


def _change(number: str, field: str, value: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
                                **value,
                            },
                            "field": field,
                        }
                    ],
                }
            ],
        }
    )


def _echo(wamid: str, body: str, *, timestamp: int = 1739321024) -> dict[str, Any]:
    return {
        "from": "15550783881",
        "to": f"+{CUSTOMER}",
        "id": wamid,
        "timestamp": str(timestamp),
        "type": "text",
        "text": {"body": body},
    }


async def _post(http: ClientSession, server: TestServer, body: bytes) -> None:
    assert (await post_webhook(http, str(server.make_url(WEBHOOK_PATH)), body)).status == 200


async def _rows(db: Database, tenant_id: uuid.UUID, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with tenant_tx(db, tenant_id) as conn:
        return list(await conn.fetch(sql, *args))


def test_an_echo_is_the_business_writing_to_its_to() -> None:
    (echo,) = parse_webhook(_change("1", "smb_message_echoes", {"message_echoes": [_echo("wamid.e", "Hi!")]})).messages
    assert (echo.direction, echo.wa_id, echo.kind, echo.text, echo.from_history) == (
        "outbound",
        CUSTOMER,
        "text",
        "Hi!",
        False,
    )


async def test_an_echo_is_an_outbound_message_in_the_customers_conversation(
    db: Database, tenant: TenantPeople, number: str, http: ClientSession, api_server: TestServer
) -> None:
    written = text_message(CUSTOMER, "Is the shop open today?")
    await _post(http, api_server, envelope(number, messages=[written]))
    echo = _change(number, "smb_message_echoes", {"message_echoes": [_echo("wamid.echo-1", "Yes, until 6pm")]})
    await _post(http, api_server, echo)
    await _post(http, api_server, echo)  # Meta delivers again

    conversations = await _rows(db, tenant.id, "select id, unread_count, last_message_direction from conversations")
    assert [(c["unread_count"], c["last_message_direction"]) for c in conversations] == [(1, "outbound")]
    messages = await _rows(
        db,
        tenant.id,
        "select conversation_id, direction, status, text, author_id, details from messages order by created_at",
    )
    assert [(m["direction"], m["status"], m["text"]) for m in messages] == [
        ("inbound", "received", "Is the shop open today?"),
        ("outbound", "sent", "Yes, until 6pm"),
    ]
    assert messages[1]["conversation_id"] == conversations[0]["id"]
    assert (messages[1]["author_id"], messages[1]["details"]) == (None, {"from_app": True})


async def test_an_answer_from_the_app_answers_the_customer_and_the_next_message_waits_again(
    db: Database, tenant: TenantPeople, number: str, http: ClientSession, api_server: TestServer
) -> None:
    """A business that answers from the WhatsApp Business app has answered: the console must not count the
    customer as waiting (and re-route the conversation as unanswered); an echo older than the customer's
    message answers nothing."""

    async def awaiting() -> Any:
        [row] = await _rows(db, tenant.id, "select awaiting_reply_since from conversations")
        return row["awaiting_reply_since"]

    now = int(time.time())
    await _post(http, api_server, envelope(number, messages=[text_message(CUSTOMER, "Is the shop open today?")]))
    assert await awaiting() is not None
    stale = _echo("wamid.echo-old", "Happy new year!", timestamp=now - 3600)
    await _post(http, api_server, _change(number, "smb_message_echoes", {"message_echoes": [stale]}))
    assert await awaiting() is not None

    answer = _echo("wamid.echo-now", "Yes, until 6pm", timestamp=now + 1)
    await _post(http, api_server, _change(number, "smb_message_echoes", {"message_echoes": [answer]}))
    assert await awaiting() is None

    later = text_message(CUSTOMER, "And tomorrow?")
    later["timestamp"] = str(now + 2)
    await _post(http, api_server, envelope(number, messages=[later]))
    [stored] = await _rows(db, tenant.id, "select created_at from messages where text = 'And tomorrow?'")
    assert await awaiting() == stored["created_at"]


async def test_a_late_echo_does_not_bring_back_a_wait_already_answered(
    db: Database, tenant: TenantPeople, number: str, http: ClientSession, api_server: TestServer
) -> None:
    """Meta may deliver an echo late (a retry after an outage): the customer was answered from the console
    meanwhile, and the echo must not make them wait again."""
    now = int(time.time())
    await _post(http, api_server, envelope(number, messages=[text_message(CUSTOMER, "Where is my order?")]))
    async with tenant_tx(db, tenant.id) as conn:  # as a console reply WhatsApp took does
        await conn.execute("update conversations set awaiting_reply_since = null")
    late = _echo("wamid.echo-late", "We are open until 6pm", timestamp=now - 3600)
    await _post(http, api_server, _change(number, "smb_message_echoes", {"message_echoes": [late]}))
    [row] = await _rows(db, tenant.id, "select awaiting_reply_since from conversations")
    assert row["awaiting_reply_since"] is None


async def test_the_apps_history_is_kept_in_a_closed_conversation(
    db: Database, tenant: TenantPeople, number: str, http: ClientSession, api_server: TestServer
) -> None:
    chunk = {
        "metadata": {"phase": 0, "chunk_order": 1, "progress": 100},
        "threads": [
            {
                "id": CUSTOMER,
                "messages": [
                    {
                        "from": CUSTOMER,
                        "id": "wamid.h1",
                        "timestamp": "1739230955",
                        "type": "text",
                        "text": {"body": "Do you deliver?"},
                        "history_context": {"status": "READ"},
                    },
                    {
                        "from": "15550783881",
                        "to": CUSTOMER,
                        "id": "wamid.h2",
                        "timestamp": "1739231000",
                        "type": "text",
                        "text": {"body": "We do, on Tuesdays."},
                        "history_context": {"status": "READ"},
                    },
                ],
            }
        ],
    }
    await _post(http, api_server, _change(number, "history", {"history": [chunk]}))

    [conversation] = await _rows(db, tenant.id, "select status, close_reason, unread_count from conversations")
    assert tuple(conversation) == ("closed", HISTORY_REASON, 0)
    messages = await _rows(db, tenant.id, "select direction, status, text, read_at from messages order by sent_at")
    assert [(m["direction"], m["status"], m["text"]) for m in messages] == [
        ("inbound", "received", "Do you deliver?"),
        ("outbound", "read", "We do, on Tuesdays."),
    ]
    assert messages[0]["read_at"] is not None  # never marked read towards WhatsApp

    # The customer writing now opens a conversation for the team, as ever.
    await _post(http, api_server, envelope(number, messages=[text_message(CUSTOMER, "Is it Tuesday yet?")]))
    statuses = await _rows(db, tenant.id, "select status from conversations order by created_at")
    assert [s["status"] for s in statuses] == ["closed", "waiting"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (
            "messages",
            {
                "errors": [
                    {
                        "code": 131000,
                        "title": "Something went wrong",
                        "message": "Something went wrong",
                        "error_data": {"details": "Unsupported webhook payload"},
                    }
                ]
            },
        ),
        (
            "history",
            {
                "history": [
                    {
                        "errors": [
                            {
                                "code": 2593109,
                                "title": "History sync is turned off by the business",
                                "message": "History sync is turned off by the business",
                                "error_data": {"details": "The business declined to share its chat history."},
                            }
                        ]
                    }
                ]
            },
        ),
    ],
    ids=["value-level errors", "history declined"],
)
async def test_errors_on_a_whole_change_are_kept_with_the_number(
    field: str,
    value: dict[str, Any],
    db: Database,
    tenant: TenantPeople,
    number: str,
    http: ClientSession,
    api_server: TestServer,
) -> None:
    body = _change(number, field, value)
    await _post(http, api_server, body)
    await _post(http, api_server, body)  # the same body again: the same error
    errors = await _rows(db, tenant.id, "select code, details, raw from channel_errors")
    source = value["errors"][0] if "errors" in value else value["history"][0]["errors"][0]
    assert [(e["code"], e["details"], e["raw"]) for e in errors] == [
        (source["code"], source["error_data"]["details"], source)
    ]
