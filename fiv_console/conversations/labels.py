"""Labels: a tenant's tags for conversations (a name, unique ignoring case, and a colour).

The labels themselves, and putting them on conversations and taking them off (whoever may see a
conversation may label it). Deleting a label takes it off every conversation (the foreign key cascades).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fiv_console.access import Viewer
from fiv_console.conversations.reading import Conversation, ensure_visible, followers_now, get_conversation
from fiv_console.db.pool import Connection
from fiv_console.db.search import contains_pattern
from fiv_console.errors import Conflict, NotFound
from fiv_console.events import EventBatch
from fiv_console.text import NO_NUL

LabelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50, pattern=NO_NUL)]
Color = Annotated[
    str, StringConstraints(pattern=r"^#[0-9a-f]{6}$"), Field(description="Lowercase hex RGB, like `#607d8b`.")
]


class LabelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: LabelName
    color: Color = "#607d8b"


class LabelUpdate(BaseModel):
    """A field left out (or null) stays as it is."""

    model_config = ConfigDict(extra="forbid")

    name: LabelName | None = None
    color: Color | None = None


class Label(BaseModel):
    id: UUID
    name: str
    color: str
    created_at: datetime


_COLUMNS = "id, name, color, created_at"


def _conflict(name: str | None) -> Conflict:
    return Conflict(f"a label named {name!r} already exists")


_INSERT_SQL = f"insert into labels (tenant_id, name, color) values ($1, $2, $3) returning {_COLUMNS}"


async def create_label(conn: Connection, *, tenant_id: UUID, data: LabelCreate) -> Label:
    try:
        row = await conn.fetchrow(_INSERT_SQL, tenant_id, data.name, data.color)
    except asyncpg.UniqueViolationError:
        raise _conflict(data.name) from None
    return Label.model_validate(dict(row or {}))


_FILTER = "where ($1::text is null or name ilike $1)"
_LIST_SQL = f"select {_COLUMNS} from labels {_FILTER} order by name_key, id limit $2 offset $3"
_COUNT_SQL = f"select count(*) from labels {_FILTER}"


async def list_labels(conn: Connection, *, search: str | None, limit: int, offset: int) -> tuple[list[Label], int]:
    pattern = contains_pattern(search)
    rows = await conn.fetch(_LIST_SQL, pattern, limit, offset)
    total = await conn.fetchval(_COUNT_SQL, pattern)
    return [Label.model_validate(dict(r)) for r in rows], int(total)


_GET_SQL = f"select {_COLUMNS} from labels where id = $1"


async def get_label(conn: Connection, *, label_id: UUID) -> Label:
    row = await conn.fetchrow(_GET_SQL, label_id)
    if row is None:
        raise NotFound("no such label")
    return Label.model_validate(dict(row))


_UPDATE_SQL = f"""
update labels set name = coalesce($2, name), color = coalesce($3, color)
where id = $1
returning {_COLUMNS}
"""


async def update_label(conn: Connection, *, label_id: UUID, data: LabelUpdate) -> Label:
    try:
        row = await conn.fetchrow(_UPDATE_SQL, label_id, data.name, data.color)
    except asyncpg.UniqueViolationError:
        raise _conflict(data.name) from None
    if row is None:
        raise NotFound("no such label")
    return Label.model_validate(dict(row))


_DELETE_SQL = f"delete from labels where id = $1 returning {_COLUMNS}"


async def delete_label(conn: Connection, *, label_id: UUID) -> Label:
    row = await conn.fetchrow(_DELETE_SQL, label_id)
    if row is None:
        raise NotFound("no such label")
    return Label.model_validate(dict(row))


def announce_updated(batch: EventBatch, conversation: Conversation) -> None:
    """`conversation.updated` (its labels changed), to whoever follows it."""
    batch.add(
        "conversation.updated",
        followers_now(conversation),
        conversation_id=conversation.id,
        payload={"conversation": conversation.model_dump(mode="json")},
    )


_LABEL_EXISTS_SQL = "select id from labels where id = $1"
_ADD_LABEL_SQL = """
insert into conversation_labels (tenant_id, conversation_id, label_id) values ($1, $2, $3)
on conflict do nothing
"""
_REMOVE_LABEL_SQL = "delete from conversation_labels where conversation_id = $1 and label_id = $2"


async def _check_label(conn: Connection, label_id: UUID) -> None:
    if await conn.fetchval(_LABEL_EXISTS_SQL, label_id) is None:
        raise NotFound("no such label in this tenant")


async def add_label(conn: Connection, *, viewer: Viewer, conversation_id: UUID, label_id: UUID) -> Conversation:
    """Put a label on a conversation the viewer sees; putting it twice is the same as once."""
    await ensure_visible(conn, viewer=viewer, conversation_id=conversation_id)
    await _check_label(conn, label_id)
    try:
        await conn.execute(_ADD_LABEL_SQL, viewer.tenant_id, conversation_id, label_id)
    except asyncpg.ForeignKeyViolationError:
        # Deleted (or the conversation removed) between the check and the insert.
        raise NotFound("no such label") from None
    return await get_conversation(conn, viewer=viewer, conversation_id=conversation_id)


async def remove_label(conn: Connection, *, viewer: Viewer, conversation_id: UUID, label_id: UUID) -> Conversation:
    """Take a label off; taking off one that is not there changes nothing."""
    await ensure_visible(conn, viewer=viewer, conversation_id=conversation_id)
    await _check_label(conn, label_id)
    await conn.execute(_REMOVE_LABEL_SQL, conversation_id, label_id)
    return await get_conversation(conn, viewer=viewer, conversation_id=conversation_id)
