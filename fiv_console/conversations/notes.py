"""Private notes on a conversation: written by the people of the tenant, never sent to the customer.

A whisper is a note a supervisor or admin writes to the conversation's agent: announced to that agent
(and the tenant's staff) only, and shown apart in their console.

Whoever may see a conversation may read and add its notes; callers check that sight first
(`conversations.reading.ensure_visible`), so these functions take a conversation already known to be visible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from fiv_console.access import Audience
from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch
from fiv_console.text import NO_NUL


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# Kept as written (leading spaces may be indentation); 1 to 10,000 characters, as the table checks.
NoteBody = Annotated[
    str, StringConstraints(min_length=1, max_length=10_000, pattern=NO_NUL), AfterValidator(_not_blank)
]


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: NoteBody
    whisper: bool = Field(
        default=False,
        description="Supervisors and admins: a note to the conversation's agent, shown to them live and apart.",
    )


class Note(BaseModel):
    id: UUID
    conversation_id: UUID
    author_id: UUID
    author_name: str
    body: str
    whisper: bool
    created_at: datetime


_INSERT_NOTE_SQL = """
with note as (
    insert into notes (tenant_id, conversation_id, author_id, body, whisper) values ($1, $2, $3, $4, $5)
    returning id, conversation_id, author_id, body, whisper, created_at
)
select note.*, u.name as author_name from note join users u on u.id = note.author_id
"""


async def add_note(
    conn: Connection,
    batch: EventBatch,
    *,
    conversation_id: UUID,
    author_id: UUID,
    body: str,
    followers: Audience,
    whisper: bool = False,
) -> Note:
    """Writes the note and announces it (`note.created`) to `followers`: the conversation's, or for a
    whisper its agent's."""
    row = await conn.fetchrow(_INSERT_NOTE_SQL, batch.tenant_id, conversation_id, author_id, body, whisper)
    note = Note.model_validate(dict(row or {}))
    batch.add(
        "note.created", followers, conversation_id=conversation_id, payload={"note": note.model_dump(mode="json")}
    )
    return note


_LIST_NOTES_SQL = """
select n.id, n.conversation_id, n.author_id, u.name as author_name, n.body, n.whisper, n.created_at
from notes n join users u on u.tenant_id = n.tenant_id and u.id = n.author_id
where n.conversation_id = $1
order by n.created_at, n.id
limit $2 offset $3
"""
_COUNT_NOTES_SQL = "select count(*) from notes where conversation_id = $1"


async def list_notes(conn: Connection, *, conversation_id: UUID, limit: int, offset: int) -> tuple[list[Note], int]:
    """Oldest first, as a conversation reads."""
    rows = await conn.fetch(_LIST_NOTES_SQL, conversation_id, limit, offset)
    total = await conn.fetchval(_COUNT_NOTES_SQL, conversation_id)
    return [Note.model_validate(dict(r)) for r in rows], int(total)
