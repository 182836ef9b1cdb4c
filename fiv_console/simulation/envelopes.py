"""What Meta posts to a console's webhook: the exact bodies and the headers that come with them.

The envelope builders (`messages_envelope`, `text_message_envelope`, `statuses_envelope` and the
`message_object` / `status_object` they wrap; `group_created_envelope` and `group_settings_envelope` for
the group webhooks) give the bytes Meta sends: compact JSON with non-ASCII
escaped as `\\u00e9` and "/" as `\\/`, as Meta's encoder writes them, so a console that re-serializes a
body before checking its signature fails against these as it would against Meta. `webhook_headers` gives
the headers Meta sends with a body (signed by `signature.sign`); `new_wamid` a message id shaped like Meta's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fiv_console.whatsapp.payloads import (
    BUSINESS_ACCOUNT,
    GROUP_LIFECYCLE_FIELD,
    GROUP_SETTINGS_FIELD,
    MESSAGES_FIELD,
)
from fiv_console.whatsapp.signature import SIGNATURE_HEADER, sign

DEFAULT_WABA_ID = "102290129340398"
# Meta still sends the SHA-1 signature beside the SHA-256 one, and names itself so.
LEGACY_SIGNATURE_HEADER = "X-Hub-Signature"
META_USER_AGENT = "facebookexternalua"
ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


# --- bodies ---------------------------------------------------------------------------------------------


def encode_webhook(document: Mapping[str, Any]) -> bytes:
    """The bytes Meta would send for `document`."""
    # The standard library rather than orjson: only it escapes non-ASCII, as Meta does.
    text = json.dumps(document, ensure_ascii=True, separators=(",", ":"))
    # "/" occurs in JSON only inside strings, so this escapes exactly what Meta's encoder escapes.
    return text.replace("/", "\\/").encode("ascii")


def webhook_headers(app_secret: bytes, body: bytes) -> dict[str, str]:
    """The headers of Meta's webhook POST of `body`."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(app_secret, body),
        LEGACY_SIGNATURE_HEADER: "sha1=" + hmac.new(app_secret, body, hashlib.sha1).hexdigest(),
        "User-Agent": META_USER_AGENT,
    }


def new_wamid(wa_id: str) -> str:
    """A fresh message id shaped like Meta's: "wamid." and base64 of the customer's number and a random part.

    The random part comes from `secrets`, never from a seeded generator: two runs with one seed must not
    repeat ids, or a console that deduplicates on them would drop the second run's traffic.
    """
    number = wa_id.encode()[:64]
    raw = b"\x1c\x18" + bytes([len(number)]) + number + b"\x15\x02\x00\x12\x18\x14"
    return "wamid." + base64.b64encode(raw + secrets.token_hex(10).upper().encode() + b"\x00").decode()


def _epoch(timestamp: int | None) -> str:
    return str(int(time.time()) if timestamp is None else timestamp)


def simulated_user_id(wa_id: str) -> str:
    """The business-scoped user id (BSUID) the simulator gives a customer's number, stable for the number and
    shaped as Meta's: a country code, a period, digits ("ZZ" is a code ISO 3166 leaves for private use)."""
    return "ZZ." + str(int.from_bytes(hashlib.sha256(wa_id.encode()).digest()[:9], "big"))


def contact_object(
    wa_id: str | None, name: str | None, *, user_id: str | None = None, username: str | None = None
) -> dict[str, Any]:
    """One item of `contacts[]` as Meta sends it since 2026: the customer's BSUID always; their number unless
    they adopted a username and WhatsApp leaves it out (then `wa_id` is None and `user_id` is required)."""
    contact: dict[str, Any] = {}
    if name is not None or username is not None:
        contact["profile"] = {
            **({"name": name} if name is not None else {}),
            **({"username": username} if username is not None else {}),
        }
    if wa_id is not None:
        contact["wa_id"] = wa_id
    bsuid = user_id if user_id is not None else simulated_user_id(wa_id or "")
    contact["user_id"] = bsuid
    return contact


def message_object(
    wa_id: str | None,
    kind: str,
    content: Any,
    *,
    wamid: str | None = None,
    timestamp: int | None = None,
    context: Mapping[str, Any] | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """One item of `messages[]`: `kind` is Meta's `type`, `content` the object Meta keys with it. The sender is
    `from` (their number) and `from_user_id` (their BSUID); a customer known by username only has no `from`."""
    message: dict[str, Any] = {} if context is None else {"context": dict(context)}
    if wa_id is not None:
        message["from"] = wa_id
    bsuid = user_id if user_id is not None else simulated_user_id(wa_id or "")
    message.update(
        {
            "from_user_id": bsuid,
            "id": wamid if wamid is not None else new_wamid(wa_id or bsuid),
            "timestamp": _epoch(timestamp),
            "type": kind,
            kind: content,
        }
    )
    return message


def status_object(
    wamid: str,
    status: str,
    recipient_id: str | None,
    *,
    recipient_user_id: str | None = None,
    timestamp: int | None = None,
    conversation_id: str | None = None,
    expiration_timestamp: int | None = None,
    category: str = "service",
    errors: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One item of `statuses[]`; a `failed` one carries `errors` and, like Meta's, no conversation or pricing.
    `recipient_id` is the customer's number (None for a message sent to a BSUID), `recipient_user_id` their
    BSUID (by default the simulator's for the number)."""
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": _epoch(timestamp)}
    if recipient_id is not None:
        item["recipient_id"] = recipient_id
    item["recipient_user_id"] = (
        recipient_user_id if recipient_user_id is not None else simulated_user_id(recipient_id or "")
    )
    if status == "failed":
        item["errors"] = [dict(error) for error in errors]
        return item
    conversation: dict[str, Any] = {"id": conversation_id or secrets.token_hex(15)}
    if expiration_timestamp is not None:
        conversation["expiration_timestamp"] = str(expiration_timestamp)
    conversation["origin"] = {"type": category}
    item["conversation"] = conversation
    # Per-message pricing (July 2025): service messages in the customer's window are free.
    item["pricing"] = {
        "billable": category != "service",
        "pricing_model": "PMP",
        "category": category,
        "type": "free_customer_service" if category == "service" else "regular",
    }
    return item


def _envelope(waba_id: str, value: Mapping[str, Any], *, field: str = MESSAGES_FIELD) -> bytes:
    return encode_webhook(
        {"object": BUSINESS_ACCOUNT, "entry": [{"id": waba_id, "changes": [{"value": value, "field": field}]}]}
    )


def _metadata(phone_number_id: str, display_number: str) -> dict[str, str]:
    return {"display_phone_number": display_number, "phone_number_id": phone_number_id}


def messages_envelope(
    phone_number_id: str,
    display_number: str,
    wa_id: str | None,
    name: str,
    message: Mapping[str, Any],
    *,
    waba_id: str = DEFAULT_WABA_ID,
    user_id: str | None = None,
    username: str | None = None,
    field: str = MESSAGES_FIELD,
    key: str = "messages",
) -> bytes:
    """Meta's webhook body for one customer message (`display_number` as Meta writes it: digits only); with
    `field` "smb_message_echoes" and `key` "message_echoes", for one the business sent from the app."""
    return _envelope(
        waba_id,
        {
            "messaging_product": "whatsapp",
            "metadata": _metadata(phone_number_id, display_number),
            "contacts": [contact_object(wa_id, name, user_id=user_id, username=username)],
            key: [dict(message)],
        },
        field=field,
    )


def text_message_envelope(
    phone_number_id: str,
    display_number: str,
    wa_id: str,
    name: str,
    body: str,
    wamid: str | None = None,
    timestamp: int | None = None,
    *,
    waba_id: str = DEFAULT_WABA_ID,
) -> bytes:
    """Meta's webhook body for one text message from `wa_id`."""
    message = message_object(wa_id, "text", {"body": body}, wamid=wamid, timestamp=timestamp)
    return messages_envelope(phone_number_id, display_number, wa_id, name, message, waba_id=waba_id)


def statuses_envelope(
    phone_number_id: str,
    display_number: str,
    statuses: Iterable[Mapping[str, Any]],
    *,
    waba_id: str = DEFAULT_WABA_ID,
    contacts: Sequence[Mapping[str, Any]] = (),
) -> bytes:
    """Meta's webhook body for status updates of messages the business sent, with the customers they went to
    (`contact_object`) as Meta gives them since 2026."""
    value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": _metadata(phone_number_id, display_number)}
    if contacts:
        value["contacts"] = [dict(contact) for contact in contacts]
    value["statuses"] = [dict(status) for status in statuses]
    return _envelope(waba_id, value)


# The group webhooks, as Meta's "Webhooks for Groups API" shows them
# (https://developers.facebook.com/documentation/business-messaging/whatsapp/groups/webhooks, Feb 2026):
# a `groups[]` list beside the number's metadata, each item with its Unix-seconds `timestamp` (a string),
# the group's id, Meta's `type` and the `request_id` of the API call that caused it.


def group_created_envelope(
    phone_number_id: str,
    display_number: str,
    group_id: str,
    subject: str,
    *,
    invite_link: str,
    join_approval_mode: str = "auto_approve",
    request_id: str | None = None,
    timestamp: int | None = None,
    waba_id: str = DEFAULT_WABA_ID,
) -> bytes:
    """`group_lifecycle_update`, "Group create succeed": the group the business created, with its subject."""
    item = {
        "timestamp": _epoch(timestamp),
        "group_id": group_id,
        "type": "group_create",
        "request_id": request_id or secrets.token_hex(16).upper(),
        "subject": subject,
        "invite_link": invite_link,
        "join_approval_mode": join_approval_mode,
    }
    return _groups_envelope(phone_number_id, display_number, item, GROUP_LIFECYCLE_FIELD, waba_id)


def group_settings_envelope(
    phone_number_id: str,
    display_number: str,
    group_id: str,
    *,
    subject: str | None = None,
    description: str | None = None,
    request_id: str | None = None,
    timestamp: int | None = None,
    waba_id: str = DEFAULT_WABA_ID,
) -> bytes:
    """`group_settings_update`, "Group settings update succeed": the subject and description set, each with
    `update_successful`."""
    item: dict[str, Any] = {
        "timestamp": _epoch(timestamp),
        "group_id": group_id,
        "type": "group_settings_update",
        "request_id": request_id or secrets.token_hex(16).upper(),
    }
    if subject is not None:
        item["group_subject"] = {"text": subject, "update_successful": True}
    if description is not None:
        item["group_description"] = {"text": description, "update_successful": True}
    return _groups_envelope(phone_number_id, display_number, item, GROUP_SETTINGS_FIELD, waba_id)


def _groups_envelope(
    phone_number_id: str, display_number: str, item: Mapping[str, Any], field: str, waba_id: str
) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(phone_number_id, display_number),
        "groups": [dict(item)],
    }
    return _envelope(waba_id, value, field=field)
