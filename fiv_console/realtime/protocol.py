"""The `/ws` protocol: the frames a client may send (validated here) and the frames the server sends.

Client frames are small JSON objects with a `type`: `resume`, `presence`, `typing`, `ping`, `wallboard`.
Server frames are `hello`, `event`, `resync`, `pong`, `typing`, `queue.stats`, `error` (docs/websocket.md).
An event's frame is encoded once and the same text goes to every socket that receives it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from fiv_console.accounts.users import AgentStatus
from fiv_console.db.pool import json_default
from fiv_console.events import Event

# The largest frame a client needs (a resume or a typing notice is well under 200 bytes).
MAX_CLIENT_FRAME = 4096
# The close code of a socket whose session ended (signed out, password changed, disabled, role changed,
# SESSION_MAX_HOURS reached): in the 4000-4999 range applications own, apart from 1008 (the client broke
# the protocol), so that a client signs in again for this one alone instead of reconnecting.
SESSION_ENDED_CODE = 4401
CLIENT_FRAME_TYPES = frozenset({"resume", "presence", "typing", "ping", "wallboard"})


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resume(_Frame):
    type: Literal["resume"]
    last_seq: int = Field(ge=0, le=2**62)


class PresenceChange(_Frame):
    type: Literal["presence"]
    status: AgentStatus


class TypingNotice(_Frame):
    type: Literal["typing"]
    conversation_id: UUID


class Ping(_Frame):
    type: Literal["ping"]


class WatchWallboard(_Frame):
    """Supervisors and admins: send me the wallboard (whole, then `queue.stats` at most once a second)."""

    type: Literal["wallboard"]


ClientFrame = Annotated[Resume | PresenceChange | TypingNotice | Ping | WatchWallboard, Field(discriminator="type")]
CLIENT_FRAME = TypeAdapter[ClientFrame](ClientFrame)


def _text(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame, default=json_default).decode()


def event_frame(event: Event) -> str:
    return _text({"type": "event", "seq": event.seq, "event": event.type, "data": event.payload})


def hello_frame(user: dict[str, Any], last_seq: int, heartbeat: float) -> str:
    return _text({"type": "hello", "data": {"user": user, "last_seq": last_seq, "heartbeat": heartbeat}})


def resync_frame(last_seq: int) -> str:
    """The client's position is gone from the log: reload state over REST, then go on from `last_seq`."""
    return _text({"type": "resync", "data": {"last_seq": last_seq}})


def typing_frame(conversation_id: UUID, user_id: UUID, name: str) -> str:
    return _text({"type": "typing", "data": {"conversation_id": conversation_id, "user_id": user_id, "name": name}})


def error_frame(code: str, message: str) -> str:
    return _text({"type": "error", "error": {"code": code, "message": message}})


PONG = _text({"type": "pong"})
