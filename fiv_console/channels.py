"""WhatsApp channels: a tenant's business numbers, each feeding a default queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from fiv_console.db.pool import Connection
from fiv_console.errors import Conflict, NotFound


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_number_id: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")] = Field(
        description="Meta's id of the business phone number (digits)."
    )
    display_number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    default_queue_id: UUID
    access_token: SecretStr | None = Field(default=None, max_length=4096, description="Write-only.")


class Channel(BaseModel):
    """A channel as the rest of the code sees it: never with its access token."""

    id: UUID
    tenant_id: UUID
    phone_number_id: str
    display_number: str
    default_queue_id: UUID
    active: bool
    created_at: datetime


_INSERT_CHANNEL_SQL = """
insert into channels (tenant_id, phone_number_id, display_number, default_queue_id, access_token)
values ($1, $2, $3, $4, $5)
returning id, tenant_id, phone_number_id, display_number, default_queue_id, active, created_at
"""


async def create_channel(conn: Connection, *, tenant_id: UUID, data: ChannelCreate) -> Channel:
    token = data.access_token.get_secret_value() if data.access_token else None
    try:
        row = await conn.fetchrow(
            _INSERT_CHANNEL_SQL,
            tenant_id,
            data.phone_number_id,
            data.display_number,
            data.default_queue_id,
            token,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"phone number id {data.phone_number_id} is already connected") from None
    except asyncpg.ForeignKeyViolationError:
        raise NotFound("the default queue is not a queue of this tenant") from None
    return Channel.model_validate(dict(row or {}))
