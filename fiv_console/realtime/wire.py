"""What the hub puts on a tenant's bus channel: committed events, typing notices, and two orders for the
sockets of one user (their sessions ended; their access changed).

On this instance they travel as they are; `CODEC` encodes them (orjson, kept small) only for the Redis
bus, and decodes what other instances sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from fiv_console.access import Audience
from fiv_console.bus.channels import tenant_of
from fiv_console.db.pool import json_default
from fiv_console.events import Event


@dataclass(frozen=True, slots=True)
class Typing:
    conversation_id: UUID
    user_id: UUID
    name: str
    audience: Audience


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    user_id: UUID


@dataclass(frozen=True, slots=True)
class AccessChanged:
    user_id: UUID


Notice = Typing | SessionsEnded | AccessChanged
Message = list[Event] | Notice


def _audience(audience: Audience) -> dict[str, Any]:
    return {"kind": audience.kind, "queues": audience.queue_ids, "users": audience.user_ids}


def _read_audience(data: dict[str, Any]) -> Audience:
    return Audience(data["kind"], tuple(UUID(q) for q in data["queues"]), tuple(UUID(u) for u in data["users"]))


def _dumps(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value, default=json_default)


def encode_events(events: Sequence[Event]) -> bytes:
    return _dumps(
        {
            "k": "events",
            "events": [
                {
                    "seq": e.seq,
                    "type": e.type,
                    "conversation_id": e.conversation_id,
                    "audience": _audience(e.audience),
                    "payload": e.payload,
                    "created_at": e.created_at,
                }
                for e in events
            ],
        }
    )


def encode_notice(notice: Notice) -> bytes:
    if isinstance(notice, Typing):
        return _dumps(
            {
                "k": "typing",
                "conversation_id": notice.conversation_id,
                "user_id": notice.user_id,
                "name": notice.name,
                "audience": _audience(notice.audience),
            }
        )
    kind = "sessions_ended" if isinstance(notice, SessionsEnded) else "access_changed"
    return _dumps({"k": kind, "user_id": notice.user_id})


def decode(tenant_id: UUID, message: bytes) -> Message:
    """Events or a notice; raises ValueError (or KeyError, TypeError) on a message not of this form."""
    data = orjson.loads(message)
    kind = data["k"]
    if kind == "events":
        return [
            Event(
                tenant_id,
                int(e["seq"]),
                e["type"],
                _read_audience(e["audience"]),
                UUID(e["conversation_id"]) if e["conversation_id"] else None,
                e["payload"],
                datetime.fromisoformat(e["created_at"]),
            )
            for e in data["events"]
        ]
    if kind == "typing":
        return Typing(
            UUID(data["conversation_id"]), UUID(data["user_id"]), data["name"], _read_audience(data["audience"])
        )
    if kind == "sessions_ended":
        return SessionsEnded(UUID(data["user_id"]))
    if kind == "access_changed":
        return AccessChanged(UUID(data["user_id"]))
    raise ValueError(f"unknown bus message kind {kind!r}")


class WireCodec:
    """The bus's `Codec` for a tenant channel's messages."""

    def encode(self, message: Message) -> bytes:
        return encode_events(message) if isinstance(message, list) else encode_notice(message)

    def decode(self, channel: str, data: bytes) -> Message:
        return decode(tenant_of(channel), data)


CODEC = WireCodec()
