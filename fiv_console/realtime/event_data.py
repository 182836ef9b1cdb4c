"""The `data` of every event a socket receives: one model per event type, the contract clients build on.

A client keeps its views from a REST snapshot and these events, so each event carries what a view needs
without another request: every `conversation.*` event the conversation as the REST API shows it, a
message as `GET .../messages` shows it, a note, a queue or a membership whole. The emitting code builds its
payloads itself (a model round trip on every event would cost the hot path); `tests/test_event_data.py`
checks every event a run of real traffic writes against these models, and that docs/websocket.md lists
each type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from fiv_console.accounts.users import AgentStatus, Role
from fiv_console.conversations.lifecycle import MoveReason
from fiv_console.conversations.notes import Note
from fiv_console.conversations.reading import Conversation, ConversationStatus
from fiv_console.events import EventType
from fiv_console.messages.history import Message
from fiv_console.routing.queues import Queue, QueueMember


class _Data(BaseModel):
    # Exactly these fields: a field added to a payload is added here (and to the docs) first.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConversationData(_Data):
    """`conversation.created` (a customer's message opened it), `.updated` (its labels changed),
    `.sla_breached` (it waited past its queue's `sla_seconds`)."""

    conversation: Conversation


class MovedFrom(_Data):
    agent_id: UUID | None
    queue_id: UUID
    status: ConversationStatus


class ConversationMovedData(_Data):
    """`conversation.assigned`, `.transferred`, `.unassigned`, `.closed`, `.reopened`: the conversation after
    the move, where it was before, and why when the console moved it by itself."""

    conversation: Conversation
    moved_from: MovedFrom = Field(alias="from")
    reason: MoveReason | None = None


class MessageCreatedData(_Data):
    conversation_id: UUID
    message: Message


class MessageUpdatedData(_Data):
    """`message.updated`: the customer edited or deleted the message, or someone reacted to it; the message
    as `GET .../messages` now shows it."""

    conversation_id: UUID
    message: Message


class MessageStatusData(_Data):
    conversation_id: UUID
    message_id: UUID
    status: str
    error: Any


class NoteCreatedData(_Data):
    note: Note


class AgentPresenceData(_Data):
    user_id: UUID
    name: str
    role: Role
    status: AgentStatus
    connected: bool
    changed_at: datetime | None


class QueueUpdatedData(_Data):
    queue: Queue


class QueueMembersChangedData(_Data):
    queue_id: UUID
    user_id: UUID
    member: QueueMember | None


class TenantUpdatedData(_Data):
    """`tenant.updated`: an admin changed the tenant's name, time zone or settings; what the console shows
    of them, as `GET /api/me` does, so open consoles follow without a reload."""

    tenant_name: str
    time_zone: str
    agents_can_take_waiting: bool


EVENT_DATA: dict[EventType, type[_Data]] = {
    "conversation.created": ConversationData,
    "conversation.assigned": ConversationMovedData,
    "conversation.transferred": ConversationMovedData,
    "conversation.unassigned": ConversationMovedData,
    "conversation.closed": ConversationMovedData,
    "conversation.reopened": ConversationMovedData,
    "conversation.updated": ConversationData,
    "conversation.sla_breached": ConversationData,
    "message.created": MessageCreatedData,
    "message.status": MessageStatusData,
    "message.updated": MessageUpdatedData,
    "note.created": NoteCreatedData,
    "agent.presence": AgentPresenceData,
    "queue.updated": QueueUpdatedData,
    "queue.members_changed": QueueMembersChangedData,
    "tenant.updated": TenantUpdatedData,
}


def validate(event_type: EventType, data: Any) -> _Data:
    """The event's data read by its model; raises pydantic's ValidationError where it breaks the contract."""
    return EVENT_DATA[event_type].model_validate(data)
