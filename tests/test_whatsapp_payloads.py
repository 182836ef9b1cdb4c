"""Webhook bodies into records: Meta's real envelopes, every kind, poison items, and what is not a webhook."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from fiv_console.whatsapp.payloads import (
    INVALID,
    InboundMessage,
    StatusUpdate,
    WebhookBatch,
    WebhookPayloadError,
    parse_webhook,
)

# Real envelopes from pywa's test suite (tests/data/README.md says where from, beside their licence).
CONFORMANCE = Path(__file__).resolve().parent / "data" / "whatsapp" / "pywa"

PNID = "106540352242922"
WA_ID = "5511999990000"

# What each real envelope must give: (file, case) -> {path in its one record: value}.
TEXTS: dict[tuple[str, str], dict[str, Any]] = {
    ("callback_button.json", "button"): {
        "waba_id": "5467539754836534",
        "phone_number_id": "1122334455667",
        "wa_message_id": "wamid.xyzxyz",
        "wa_id": "972987654321",
        "profile_name": "Test Name",
        "kind": "interactive",
        "interactive.type": "button_reply",
        "interactive.id": "callback_data",
        "text": "title",
        "reply_to": "wamid.xyzxyz",
        "reply_to_from": "1122334455667",
        "timestamp": datetime(2023, 10, 25, 20, 45, 30, tzinfo=UTC),
    },
    ("callback_button.json", "quick_reply"): {
        "kind": "button",
        "button.payload": "callback_data",
        "text": "title",
        "reply_to": "wamid.xyzxyz==",
    },
    ("callback_button.json", "quick_reply_without_context"): {
        "kind": "button",
        "reply_to": None,
        "user_id": "US.13491208655302741918",
        "profile_name": "Test Name",
    },
    ("callback_selection.json", "callback"): {
        "kind": "interactive",
        "interactive.type": "list_reply",
        "interactive.id": "callback_data",
        "interactive.description": None,
        "text": "title",
    },
    ("callback_selection.json", "description"): {"interactive.description": "description", "text": "title"},
    ("deleted_message.json", "revoke"): {
        "kind": "revoke",
        "wa_message_id": "<WHATSAPP_MESSAGE_ID>",
        "raw.revoke.original_message_id": "<ORIGINAL_WHATSAPP_MESSAGE_ID>",
        "original_message_id": "<ORIGINAL_WHATSAPP_MESSAGE_ID>",
        "text": None,
        # Its sender is not the contact in the envelope, so the contact's name is not given to it.
        "profile_name": None,
    },
    ("edited_message.json", "image"): {
        "kind": "edit",
        "text": "Updated image caption",
        "media.id": "1234567890",
        "original_message_id": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
        "raw.edit.original_message_id": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
        "raw.edit.message.image.caption": "Updated image caption",
    },
    ("flow_completion.json", "completion"): {
        "kind": "interactive",
        "interactive.type": "nfm_reply",
        "interactive.name": "flow",
        "text": "Sent",
        "reply_to": "wamid.gvwegfretge==",
    },
    ("flow_completion.json", "without_flow_token"): {"interactive.type": "nfm_reply", "text": "Sent"},
    ("message.json", "text"): {
        "kind": "text",
        "text": "Body Text",
        "wa_id": "972987654321",
        "forwarded": False,
        "timestamp": datetime(2023, 10, 11, 16, 53, 43, tzinfo=UTC),
    },
    ("message.json", "image"): {
        "kind": "image",
        "text": None,
        "media.id": "65463453",
        "media.mime_type": "image/jpeg",
        "media.sha256": "4654+8g=",
        "media.url": None,
    },
    ("message.json", "media_with_url"): {
        "media.id": "65463453",
        "media.url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=65463453&source=webhook&ext=487r9re&hash=heiwchueowbcew-dnedcw",
    },
    ("message.json", "video"): {
        "kind": "video",
        "media.id": "765756756",
        "media.caption": "caption",
        "text": "caption",
        "forwarded": True,
    },
    ("message.json", "document"): {
        "kind": "document",
        "media.filename": "filename.pdf",
        "media.mime_type": "application/pdf",
        "text": "caption",
    },
    ("message.json", "audio"): {"kind": "audio", "media.voice": False, "media.mime_type": "audio/ogg; codecs=opus"},
    ("message.json", "voice"): {"kind": "audio", "media.voice": True, "text": None},
    ("message.json", "static_sticker"): {"kind": "sticker", "media.animated": False},
    ("message.json", "animated_sticker"): {"kind": "sticker", "media.animated": True},
    ("message.json", "reaction"): {
        "kind": "reaction",
        "reaction.message_id": "wamid.yzxyzx=",
        "reaction.emoji": "😮",
        "text": "😮",
    },
    ("message.json", "unreaction_empty"): {"kind": "reaction", "reaction.emoji": None, "text": None},
    ("message.json", "unreaction_no_emoji"): {"kind": "reaction", "reaction.emoji": None, "text": None},
    ("message.json", "current_location"): {
        "kind": "location",
        "location.latitude": 12.25089,
        "location.longitude": 43.90539,
        "location.name": None,
        "text": None,
    },
    ("message.json", "chosen_location"): {
        "location.name": "Facebook HQ",
        "location.address": "1 Hacker Way, Menlo Park, CA 94025",
        "location.longitude": -122.2164385,
        "text": "Facebook HQ",
    },
    ("message.json", "contacts"): {
        "kind": "contacts",
        "contacts.0.name.formatted_name": "Chandler Bing",
        "contacts.2.phones.0.phone": "+1 777-777-7777",
    },
    ("message.json", "order"): {
        "kind": "order",
        "order.catalog_id": "354160437058781",
        "order.product_items.0.product_retailer_id": "HAMBURGER",
        "order.product_items.0.quantity": 3,
        "order.product_items.2.item_price": 10,
        "text": "",
    },
    ("message.json", "unsupported"): {
        "kind": "unsupported",
        "errors.0.code": 131051,
        "errors.0.details": "Message type is currently not supported.",
        "unsupported_type": None,
    },
    ("message.json", "unsupported_with_type"): {"kind": "unsupported", "unsupported_type": "pool"},
    ("message.json", "reply"): {
        "text": "replied text",
        "reply_to": "wamid.xyzxyz==",
        "reply_to_from": "972123456789",
    },
    ("message.json", "forwarded"): {"forwarded": True, "frequently_forwarded": False, "reply_to": None},
    ("message.json", "forwarded_many_times"): {"forwarded": False, "frequently_forwarded": True},
    ("message.json", "interactive_message_with_err"): {"kind": "interactive", "interactive": None, "text": None},
    ("message.json", "referral"): {
        "kind": "text",
        "text": "BODY",
        "referral.ctwa_clid": "CTWA_CLID",
        "referral.source_id": "ADID",
        "referral.headline": "AD_TITLE",
    },
    ("system.json", "phone_number_change"): {
        "kind": "system",
        "system.type": "user_changed_number",
        "system.wa_id": "972912345678",
        "text": "User A changed from 972987654321 to 972912345678",
        "profile_name": None,
    },
    ("system.json", "identity_change"): {
        "kind": "system",
        "system.type": "customer_identity_changed",
        "raw.identity.hash": "xyzxyz",
        "profile_name": "User A",
    },
    ("message_status.json", "sent"): {
        "status": "sent",
        "wa_message_id": "wamid.xyzxyz",
        "recipient_id": "972987654321",
        "timestamp": datetime(2023, 10, 25, 20, 49, 5, tzinfo=UTC),
        "conversation.id": "7270432eae37498234f4444b35ffc5",
        "pricing.category": "service",
        "errors": (),
    },
    ("message_status.json", "delivered"): {"status": "delivered", "wa_message_id": "wamid.xyzxyz"},
    ("message_status.json", "read"): {"status": "read", "timestamp": datetime(2023, 7, 15, 0, 20, 58, tzinfo=UTC)},
    ("message_status.json", "played"): {"status": "played"},
    ("message_status.json", "failed"): {
        "status": "failed",
        "errors.0.code": 130472,
        "errors.0.title": "User's number is part of an experiment",
        "errors.0.details": "Failed to send message because this user's phone number is part of an experiment",
        "conversation": None,
    },
    ("message_status.json", "with_tracker"): {"status": "sent", "biz_opaque_callback_data": "some data"},
    ("message_status.json", "group"): {
        "status": "read",
        "recipient_id": "fowefinoewcnw",
        "raw.recipient_type": "group",
    },
}


def _at(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict):
            value = value[part]
        elif isinstance(value, tuple | list):
            value = value[int(part)]
        else:
            value = getattr(value, part)
    return value


def _conformance_file(name: str) -> dict[str, Any]:
    path = CONFORMANCE / name
    assert path.is_file(), f"the WhatsApp conformance envelopes are missing: expected {path}"
    cases = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(cases, dict)
    return cases


def _one_record(batch: WebhookBatch) -> InboundMessage | StatusUpdate:
    records: list[InboundMessage | StatusUpdate] = [*batch.messages, *batch.statuses]
    assert len(records) == 1, records
    return records[0]


def test_every_conformance_envelope_has_its_expectations() -> None:
    assert CONFORMANCE.is_dir(), f"the WhatsApp conformance envelopes are missing: expected {CONFORMANCE}"
    found = {(path.name, case) for path in CONFORMANCE.glob("*.json") for case in _conformance_file(path.name)}
    assert found == set(TEXTS)


@pytest.mark.parametrize(("file", "case"), sorted(TEXTS), ids=lambda key: str(key))
def test_conformance_envelope(file: str, case: str) -> None:
    envelope = _conformance_file(file)[case]
    # Escaped like Meta's own bytes: non-ASCII as \u sequences.
    batch = parse_webhook(json.dumps(envelope).encode())
    record = _one_record(batch)
    for path, expected in TEXTS[file, case].items():
        assert _at(record, path) == expected, path
    assert record.problem is None
    assert batch.other_changes == ()
    value = envelope["entry"][0]["changes"][0]["value"]
    assert record.raw == (value.get("messages") or value["statuses"])[0]
    assert record.phone_number_id == value["metadata"]["phone_number_id"]


def test_a_flow_answer_keeps_its_json() -> None:
    completion = parse_webhook(json.dumps(_conformance_file("flow_completion.json")["completion"]).encode())
    (message,) = completion.messages
    assert message.interactive is not None
    assert message.interactive.response_json is not None
    assert json.loads(message.interactive.response_json)["flow_token"] == "AQAAAAACS5FpgQ_cAAAAAD0QI3s."


def test_an_interactive_message_meta_could_not_read_comes_with_its_change_error() -> None:
    batch = parse_webhook(json.dumps(_conformance_file("message.json")["interactive_message_with_err"]).encode())
    (error,) = batch.errors
    assert error.error is not None
    assert (error.error.code, error.error.details) == (131000, "Unsupported webhook payload")
    assert error.phone_number_id == "1122334455667"


def _body(
    *messages: Any,
    statuses: tuple[Any, ...] = (),
    errors: tuple[Any, ...] = (),
    contacts: Any = None,
) -> bytes:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PNID},
        "contacts": contacts if contacts is not None else [{"profile": {"name": "Ana"}, "wa_id": WA_ID}],
    }
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    if errors:
        value["errors"] = list(errors)
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(envelope).encode()


def _message(kind: str, number: int = 1, **body: Any) -> dict[str, Any]:
    return {"from": WA_ID, "id": f"wamid.{number}", "timestamp": "1749416383", "type": kind, **body}


MEDIA = {"id": "m1", "mime_type": "image/jpeg", "sha256": "abc="}
UNSUPPORTED_ERROR = {
    "code": 131051,
    "title": "Message type unknown",
    "message": "Message type unknown",
    "error_data": {"details": "Message type is currently not supported."},
}

KINDS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (_message("text", text={"body": "Hi"}), {"text": "Hi", "media": None}),
    (_message("image", image={**MEDIA, "caption": "look"}), {"media.id": "m1", "text": "look", "media.voice": None}),
    (
        _message("audio", audio={"id": "a1", "mime_type": "audio/ogg; codecs=opus", "sha256": "x", "voice": True}),
        {"media.id": "a1", "media.voice": True, "text": None},
    ),
    (_message("video", video={**MEDIA, "mime_type": "video/mp4"}), {"media.mime_type": "video/mp4", "text": None}),
    (
        _message("document", document={**MEDIA, "filename": "nota.pdf", "caption": "a nota"}),
        {"media.filename": "nota.pdf", "text": "a nota"},
    ),
    (_message("sticker", sticker={**MEDIA, "animated": True}), {"media.animated": True}),
    (
        _message("location", location={"latitude": -23.55, "longitude": -46.63, "name": "Sé", "address": "Praça"}),
        {"location.latitude": -23.55, "location.name": "Sé", "text": "Sé"},
    ),
    (
        _message("contacts", contacts=[{"name": {"formatted_name": "Bia"}, "phones": [{"phone": "+55 11"}]}]),
        {"contacts.0.name.formatted_name": "Bia", "text": None},
    ),
    (
        _message("interactive", interactive={"type": "button_reply", "button_reply": {"id": "yes", "title": "Sim"}}),
        {"interactive.type": "button_reply", "interactive.id": "yes", "text": "Sim"},
    ),
    (
        _message(
            "interactive",
            interactive={"type": "list_reply", "list_reply": {"id": "r2", "title": "Two", "description": "2nd"}},
        ),
        {"interactive.id": "r2", "interactive.description": "2nd", "text": "Two"},
    ),
    (
        _message(
            "interactive",
            interactive={
                "type": "nfm_reply",
                "nfm_reply": {"response_json": '{"flow_token":"t"}', "body": "Sent", "name": "flow"},
            },
        ),
        {"interactive.response_json": '{"flow_token":"t"}', "interactive.name": "flow", "text": "Sent"},
    ),
    (_message("button", button={"payload": "STOP", "text": "Stop"}), {"button.payload": "STOP", "text": "Stop"}),
    (
        _message("reaction", reaction={"message_id": "wamid.out", "emoji": "👍🏽"}),
        {"reaction.message_id": "wamid.out", "reaction.emoji": "👍🏽", "text": "👍🏽"},
    ),
    (_message("reaction", reaction={"message_id": "wamid.out"}), {"reaction.emoji": None, "text": None}),
    (
        _message(
            "order",
            order={
                "catalog_id": "c1",
                "text": "for tonight",
                "product_items": [
                    {"product_retailer_id": "P", "quantity": 2, "item_price": 9.5, "currency": "BRL"},
                ],
            },
        ),
        {"order.product_items.0.item_price": 9.5, "order.product_items.0.quantity": 2, "text": "for tonight"},
    ),
    (
        _message("system", system={"body": "changed", "wa_id": "5511888880000", "type": "user_changed_number"}),
        {"system.wa_id": "5511888880000", "text": "changed"},
    ),
    (
        _message("unsupported", errors=[UNSUPPORTED_ERROR], unsupported={"type": "poll_update"}),
        {"errors.0.code": 131051, "errors.0.details": "Message type is currently not supported.", "text": None},
    ),
    (
        _message("unknown", errors=[UNSUPPORTED_ERROR]),
        {"errors.0.title": "Message type unknown", "unsupported_type": None},
    ),
    (_message("hologram", hologram={"frames": 24}), {"text": None, "raw.hologram.frames": 24}),
]


@pytest.mark.parametrize(("message", "expected"), KINDS, ids=[f"{m['type']}-{i}" for i, (m, _) in enumerate(KINDS)])
def test_every_kind(message: dict[str, Any], expected: dict[str, Any]) -> None:
    (record,) = parse_webhook(_body(message)).messages
    assert record.kind == message["type"]
    assert record.problem is None
    assert record.raw == message
    assert (record.wa_message_id, record.wa_id, record.profile_name) == ("wamid.1", WA_ID, "Ana")
    assert record.timestamp == datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)
    for path, value in expected.items():
        assert _at(record, path) == value, path


def test_nul_is_removed_from_every_string_and_nothing_else() -> None:
    message = _message(
        "text",
        text={"body": "o\u0000i", "a\u0000b": "c"},
        referral={"headline": "pro\u0000mo", "nested": [["\u0000"], {"deep": "x\u0000\u0000y"}]},
        context={"id": "wamid.\u0000q", "from": "5511"},
    )
    # A backslash followed by "u0000" is text, not a NUL, and stays.
    second = _message("text", 2, text={"body": "C:\\u0000 and é"})
    body = _body(message, second)
    assert b"\\u0000" in body
    first, kept = parse_webhook(body).messages
    assert first.text == "oi"
    assert first.reply_to == "wamid.q"
    assert first.referral == {"headline": "promo", "nested": [[""], {"deep": "xy"}]}
    assert first.raw == {
        **message,
        "text": {"body": "oi", "ab": "c"},
        "referral": first.referral,
        "context": {"id": "wamid.q", "from": "5511"},
    }
    assert "\\u0000" not in first.model_dump_json()
    assert b"\\u0000" not in orjson.dumps(first.raw)
    assert kept.text == "C:\\u0000 and é"
    assert kept.raw == second


def test_nul_deep_in_an_unknown_field_of_the_envelope() -> None:
    # Deeper than Python's recursion limit, as deep as orjson reads.
    deep = b"[" * 1020 + b'"a\\u0000"' + b"]" * 1020
    body = b'{"unknown":' + deep + b"," + _body(_message("text", text={"body": "o\u0000k"}))[1:]
    (message,) = parse_webhook(body).messages
    assert message.text == "ok"


def test_unknown_fields_are_kept_in_raw_and_never_refused() -> None:
    message = _message("text", text={"body": "hi", "lang": "pt"}, brand_new={"x": 1}, context={"forwarded": True})
    envelope = json.loads(_body(message))
    envelope["version"] = 99
    envelope["entry"][0]["time"] = 1
    envelope["entry"][0]["changes"][0]["value"]["metadata"]["region"] = "BR"
    envelope["entry"][0]["changes"][0]["value"]["future"] = [1, 2]
    (record,) = parse_webhook(json.dumps(envelope).encode()).messages
    assert (record.kind, record.text, record.forwarded, record.problem) == ("text", "hi", True, None)
    assert record.raw["brand_new"] == {"x": 1}
    assert record.raw["text"]["lang"] == "pt"


def test_wrong_types_in_one_message_of_three_spoil_only_that_one() -> None:
    bad_id = _message("text", 2, text={"body": "lost?"})
    bad_id["id"] = 12345
    bad_body = _message("text", 3, text={"body": 42})
    body = _body(
        _message("text", 1, text={"body": "one"}), bad_id, bad_body, _message("text", 4, text={"body": "four"})
    )
    first, second, third, fourth = parse_webhook(body).messages
    assert (first.kind, first.text, fourth.kind, fourth.text) == ("text", "one", "text", "four")
    assert (second.kind, second.wa_message_id, second.timestamp, second.raw) == (INVALID, None, None, bad_id)
    assert second.problem is not None
    assert second.problem.startswith("id:")
    # A wrong field costs only itself: the message is kept, with its id, sender and kind.
    assert (third.kind, third.wa_message_id, third.wa_id, third.profile_name, third.text) == (
        "text",
        "wamid.3",
        WA_ID,
        "Ana",
        None,
    )
    assert third.problem is not None
    assert "text.body" in third.problem
    assert third.raw == bad_body


@pytest.mark.parametrize(
    "message",
    [
        "not an object",
        _message("k" * 65),
        _message("text") | {"id": "wamid." + "x" * 251},
        _message("text") | {"id": None},
    ],
)
def test_a_message_without_a_usable_id_or_kind_is_invalid_with_its_raw(message: Any) -> None:
    record, following = parse_webhook(_body(message, _message("text", 9, text={"body": "next"}))).messages
    assert (record.kind, record.raw) == (INVALID, message)
    assert record.problem
    assert (following.kind, following.text, following.problem) == ("text", "next", None)


# Point 9 of issue #16: one bad field costs that field, not the message's content. Each case is a real-shaped
# message with one field spoilt as Meta's documentation samples and other libraries' fixtures spoil them (a
# placeholder string where a value belongs, a number where a string does): (message, field lost, what stays).
_ONE_BAD_FIELD: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
    (_message("text", text={"body": "x"}) | {"timestamp": "<WEBHOOK_TRIGGER_TIMESTAMP>"}, "timestamp", {"text": "x"}),
    (_message("text", timestamp="yesterday", text={"body": "y"}), "timestamp", {"text": "y"}),
    (
        _message("text", text={"body": "z"}, context={"id": "wamid." + "x" * 251, "from": "15550100"}),
        "context.id",
        {"text": "z", "reply_to": None, "reply_to_from": "15550100"},
    ),
    (_message("image", image={"mime_type": "image/jpeg", "caption": "c"}), "image.id", {"media": None}),
    (_message("audio", audio={"id": "a", "voice": "sometimes"}), "audio.voice", {"media.id": "a", "media.voice": None}),
    (
        _message("location", location={"latitude": "<LATITUDE>", "longitude": 1, "name": "Home"}),
        "location.latitude",
        {"location": None},
    ),
    (
        _message("unsupported", errors=[{"code": "soon"}], unsupported={"type": "poll"}),
        "errors.0.code",
        {"unsupported_type": "poll", "errors": ()},
    ),
    (
        _message("interactive", interactive={"type": "button_reply", "button_reply": "yes"}),
        "interactive",
        {"interactive": None},
    ),
]


@pytest.mark.parametrize(("message", "field", "kept"), _ONE_BAD_FIELD, ids=[case[1] for case in _ONE_BAD_FIELD])
def test_one_bad_field_costs_that_field_not_the_message(message: Any, field: str, kept: dict[str, Any]) -> None:
    record, following = parse_webhook(_body(message, _message("text", 9, text={"body": "next"}))).messages
    assert (record.kind, record.wa_message_id, record.wa_id, record.raw) == (
        message["type"],
        message["id"],
        WA_ID,
        message,
    )
    assert record.problem is not None
    assert record.problem.startswith(field)
    for path, value in kept.items():
        assert _at(record, path) == value, path
    assert (following.kind, following.text, following.problem) == ("text", "next", None)


def test_a_timestamp_given_as_a_number_is_read() -> None:
    # Meta's documentation samples write some timestamps as JSON numbers.
    (record,) = parse_webhook(_body(_message("text", text={"body": "x"}) | {"timestamp": 1749416383})).messages
    assert (record.timestamp, record.problem) == (datetime.fromtimestamp(1749416383, UTC), None)


def test_a_payment_method_reply_keeps_its_fields() -> None:
    # Shape of Meta's webhooks reference, messages/interactive, "payment_method" (2025).
    answer = {
        "type": "payment_method",
        "payment_method": {
            "payment_credential_id": "1234567890",
            "title": "Visa ****1234",
            "last_four_digits": "1234",
            "payment_method_type": "card",
        },
    }
    (record,) = parse_webhook(_body(_message("interactive", interactive=answer))).messages
    assert record.interactive is not None
    assert record.interactive.model_dump(exclude_none=True) == {"type": "payment_method", **answer["payment_method"]}


def test_a_message_from_a_user_without_a_number() -> None:
    message = {"from_user_id": "US.1", "id": "wamid.u", "timestamp": "1", "type": "text", "text": {"body": "hi"}}
    (record,) = parse_webhook(_body(message, contacts=[{"profile": {"name": "Zé"}, "user_id": "US.1"}])).messages
    assert (record.wa_id, record.user_id, record.profile_name, record.problem) == (None, "US.1", "Zé", None)
    assert record.timestamp == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_a_contact_with_wrong_types_only_loses_the_name() -> None:
    (record,) = parse_webhook(_body(_message("text", text={"body": "x"}), contacts=[{"wa_id": 5}])).messages
    assert (record.kind, record.profile_name) == ("text", None)


def _status(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "wamid.out", "status": status, "timestamp": "1749416390", "recipient_id": WA_ID, **extra}


def test_statuses_of_each_kind() -> None:
    failed_error = {
        "code": 131026,
        "title": "Message undeliverable",
        "message": "Message undeliverable",
        "error_data": {"details": "The recipient is not on WhatsApp."},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }
    kinds = ["sent", "delivered", "read", "played", "deleted_by_the_future"]
    statuses = (
        *(_status(kind, conversation={"id": "c", "origin": {"type": "service"}}) for kind in kinds),
        _status("failed", errors=[failed_error]),
        _status("read") | {"timestamp": "soon"},
        {"status": "read"},
    )
    parsed = parse_webhook(_body(statuses=statuses)).statuses
    assert [status.status for status in parsed] == [*kinds, "failed", INVALID, INVALID]
    for status in parsed[:5]:
        assert (status.wa_message_id, status.recipient_id, status.problem) == ("wamid.out", WA_ID, None)
        assert status.timestamp == datetime(2025, 6, 8, 20, 59, 50, tzinfo=UTC)
        assert status.conversation == {"id": "c", "origin": {"type": "service"}}
    failed = parsed[5]
    (error,) = failed.errors
    assert (error.code, error.title, error.message) == (131026, "Message undeliverable", "Message undeliverable")
    assert error.details == "The recipient is not on WhatsApp."
    assert failed.raw == statuses[5]
    assert (parsed[6].wa_message_id, parsed[6].timestamp) == ("wamid.out", None)
    assert parsed[6].problem is not None
    assert parsed[6].problem.startswith("timestamp:")
    assert (parsed[7].wa_message_id, parsed[7].raw) == (None, {"status": "read"})


def test_change_level_errors_with_no_messages() -> None:
    rate_limited = {"code": 130429, "title": "Rate limit hit", "error_data": {"details": "Too many"}}
    batch = parse_webhook(_body(errors=(rate_limited, {"title": "no code"}, {"code": 1, "error_data": "x"})))
    assert batch.messages == ()
    good, no_code, bad_data = batch.errors
    assert good.error is not None
    assert (good.error.code, good.error.details, good.problem, good.raw) == (130429, "Too many", None, rate_limited)
    assert (no_code.error, no_code.raw) == (None, {"title": "no code"})
    assert no_code.problem
    assert bad_data.error is None
    assert bad_data.problem
    assert "error_data" in bad_data.problem


def test_two_entries_of_two_changes_each() -> None:
    def value(pnid: str, *items: dict[str, Any]) -> dict[str, Any]:
        return {"messaging_product": "whatsapp", "metadata": {"phone_number_id": pnid}, "messages": list(items)}

    template_update = {"field": "message_template_status_update", "value": {"event": "APPROVED"}}
    no_metadata = {"field": "messages", "value": {"messages": [_message("text", 99, text={"body": "lost?"})]}}
    no_field: dict[str, Any] = {"value": {}}
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "W1",
                "changes": [
                    {"field": "messages", "value": value("P1", _message("text", 1, text={"body": "a"}))},
                    {"field": "messages", "value": value("P2", _message("text", 2, text={"body": "b"}))},
                ],
            },
            {
                "id": "W2",
                "changes": [
                    {
                        "field": "messages",
                        "value": value(
                            "P3", _message("text", 3, text={"body": "c"}), _message("text", 4, text={"body": "d"})
                        )
                        | {"statuses": [_status("read")]},
                    },
                    template_update,
                    no_metadata,
                    no_field,
                ],
            },
        ],
    }
    batch = parse_webhook(json.dumps(envelope).encode())
    assert [(m.waba_id, m.phone_number_id, m.text) for m in batch.messages] == [
        ("W1", "P1", "a"),
        ("W1", "P2", "b"),
        ("W2", "P3", "c"),
        ("W2", "P3", "d"),
    ]
    assert all(message.profile_name is None for message in batch.messages)
    ((status),) = batch.statuses
    assert (status.waba_id, status.phone_number_id, status.status) == ("W2", "P3", "read")
    template, unreadable, fieldless = batch.other_changes
    assert (template.waba_id, template.field, template.raw, template.problem) == (
        "W2",
        "message_template_status_update",
        template_update,
        None,
    )
    assert (unreadable.field, unreadable.raw) == ("messages", no_metadata)
    assert unreadable.problem is not None
    assert "metadata" in unreadable.problem
    assert (fieldless.field, fieldless.raw) == (None, no_field)
    assert fieldless.problem


def test_emoji_and_unicode_escapes_round_trip() -> None:
    escaped = (
        b'{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{'
        b'"metadata":{"phone_number_id":"P"},"contacts":[{"wa_id":"1","profile":{"name":"Jos\\u00e9"}}],'
        b'"messages":[{"from":"1","id":"wamid.e","timestamp":"1","type":"text","text":{"body":'
        b'"caf\\u00e9 \\ud83d\\ude00 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \\" \\\\ \\n"}}]}}]}]}'
    )
    (message,) = parse_webhook(escaped).messages
    assert message.text == 'café 😀 👍🏽 " \\ \n'
    assert message.raw["text"]["body"] == message.text
    assert message.profile_name == "José"
    assert json.loads(message.model_dump_json())["text"] == message.text


def test_characters_that_are_not_unicode_are_replaced_in_their_item_alone() -> None:
    lone_high, lone_low = "\ud800", "\udc00"
    text = _message("text", 1, text={"body": "half an emoji " + lone_high + "!"})
    image = _message("image", 2, image={**MEDIA, "caption": "look" + lone_low})
    answer = _message(
        "interactive", 3, interactive={"type": "button_reply", "button_reply": {"id": "b1", "title": lone_high}}
    )
    # A pair is one emoji; the high half after it is alone.
    pair = _message("text", 4, text={"body": "\U0001f600" + lone_high}, referral={"k" + lone_low: "v"})
    valid = _message("text", 5, text={"body": "all fine \U0001f44d"})
    failed = _status("failed", errors=[{"code": 1, "title": "t" + lone_low, "error_data": {"details": lone_high}}])
    contacts = [{"profile": {"name": "Ana " + lone_high}, "wa_id": WA_ID}]
    body = _body(text, image, answer, pair, valid, statuses=(failed,), contacts=contacts)
    assert b"\\ud800" in body
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)

    batch = parse_webhook(body)
    assert batch.repaired
    assert [m.text for m in batch.messages] == [
        "half an emoji \ufffd!",
        "look\ufffd",
        "\ufffd",
        "\U0001f600\ufffd",
        "all fine \U0001f44d",
    ]
    assert all(m.problem is None and m.profile_name == "Ana \ufffd" for m in batch.messages)
    assert batch.messages[0].raw["text"]["body"] == "half an emoji \ufffd!"
    assert batch.messages[3].referral == {"k\ufffd": "v"}
    assert batch.messages[4].raw == valid
    (error,) = batch.statuses[0].errors
    assert (error.title, error.details) == ("t\ufffd", "\ufffd")
    for record in (*batch.messages, *batch.statuses):
        orjson.dumps(record.raw)  # storable as jsonb
        record.model_dump_json()


def test_bytes_that_are_not_utf8_are_replaced_in_their_item_alone() -> None:
    body = _body(_message("text", 1, text={"body": "PLACE"}), _message("text", 2, text={"body": "ok"}))
    first, second = parse_webhook(body.replace(b"PLACE", b"caf\xe9 \xed\xa0\x80")).messages
    assert first.text is not None
    assert first.text.startswith("caf\ufffd ")
    assert set(first.text[5:]) == {"\ufffd"}
    assert second.text == "ok"


def test_a_body_orjson_reads_is_not_marked_repaired() -> None:
    assert not parse_webhook(_body(_message("text", text={"body": "a\u0000b \U0001f600"}))).repaired


def test_the_signature_test_vector_body_is_an_empty_batch() -> None:
    assert parse_webhook(b'{"object":"whatsapp_business_account","entry":[]}') == WebhookBatch()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{",
        b'{"object":"whatsapp_business_account","entry":[]} trailing',
        # Read again for their bad characters, and refused as orjson refuses them.
        b'"\\ud800',
        b'["\\ud800", NaN]',
        b'["\\ud800", 1e400]',
        b'["\\ud800"] trailing',
        # Deeper than the second reading goes: see the module's docstring.
        b"[" * 1020 + b'"\\ud800"' + b"]" * 1020,
    ],
)
def test_a_body_that_is_not_json(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError, match="not JSON"):
        parse_webhook(body)


@pytest.mark.parametrize("body", [b'"\xff"', b'"\\ud800"', b'{"object": "\\udc00"}'])
def test_json_with_characters_that_are_not_unicode_is_read_and_judged_as_any_other(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError, match="not a WhatsApp webhook"):
        parse_webhook(body)


@pytest.mark.parametrize(
    "document",
    [
        [],
        "whatsapp_business_account",
        {"entry": []},
        {"object": "page", "entry": []},
        {"object": "instagram", "entry": [{"id": "1", "changes": []}]},
    ],
)
def test_a_body_that_is_not_a_whatsapp_webhook(document: Any) -> None:
    with pytest.raises(WebhookPayloadError, match='"object" is not "whatsapp_business_account"'):
        parse_webhook(json.dumps(document).encode())


@pytest.mark.parametrize(
    "entry",
    [None, {"id": "1"}, [{"changes": []}], [{"id": 1, "changes": []}], [{"id": "1", "changes": {}}], ["x"]],
)
def test_an_envelope_of_the_wrong_shape(entry: Any) -> None:
    document: dict[str, Any] = {"object": "whatsapp_business_account"}
    if entry is not None:
        document["entry"] = entry
    with pytest.raises(WebhookPayloadError, match="not a WhatsApp webhook envelope: entry"):
        parse_webhook(json.dumps(document).encode())


def test_records_are_frozen() -> None:
    (message,) = parse_webhook(_body(_message("image", image=MEDIA))).messages
    with pytest.raises(ValidationError):
        message.kind = "text"  # type: ignore[misc]
    assert message.media is not None
    with pytest.raises(ValidationError):
        message.media.id = "other"  # type: ignore[misc]
