"""WhatsApp channels: a tenant's business numbers, each feeding a default queue.

The Graph API access token of a channel is write-only: it is stored for sending, and no read ever returns
it (`has_access_token` says whether one is set). `waba_id` names the WhatsApp Business Account the number
belongs to, whose message templates the channel may send; without it the channel sends no template.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints, WithJsonSchema

from fiv_console.db.pool import Connection
from fiv_console.errors import Conflict, NotFound
from fiv_console.text import NO_NUL

_ACCESS_TOKEN_MAX = 4096
# The token goes into an `Authorization` header: a space, CR or LF in it would break (or inject) headers.
_ACCESS_TOKEN = re.compile(rf"[!-~]{{1,{_ACCESS_TOKEN_MAX}}}")


def _check_access_token(value: SecretStr) -> SecretStr:
    if not _ACCESS_TOKEN.fullmatch(value.get_secret_value()):
        raise ValueError(f"must be 1 to {_ACCESS_TOKEN_MAX} visible ASCII characters")
    return value


AccessToken = Annotated[
    SecretStr,
    AfterValidator(_check_access_token),
    WithJsonSchema(
        {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "minLength": 1,
            "maxLength": _ACCESS_TOKEN_MAX,
            "pattern": "^[!-~]+$",
            "description": "The Graph API token for sending. Write-only: never returned.",
        }
    ),
]
DisplayNumber = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32, pattern=NO_NUL)]
WabaId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{5,32}$"),
    Field(description="The WhatsApp Business Account id (digits) whose templates this number sends."),
]


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_number_id: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")] = Field(
        description="Meta's id of the business phone number (digits)."
    )
    display_number: DisplayNumber
    default_queue_id: UUID
    access_token: AccessToken | None = None
    waba_id: WabaId | None = None


class ChannelUpdate(BaseModel):
    """An admin's change to a channel: a field left out stays as it is; `access_token: null` removes the
    token (the channel can then receive but not send), `waba_id: null` the account (no templates)."""

    model_config = ConfigDict(extra="forbid")

    display_number: DisplayNumber | None = None
    default_queue_id: UUID | None = None
    access_token: AccessToken | None = None
    waba_id: WabaId | None = None
    active: bool | None = None


class Channel(BaseModel):
    """A channel as the rest of the code sees it: never with its access token."""

    id: UUID
    tenant_id: UUID
    phone_number_id: str
    display_number: str
    default_queue_id: UUID
    has_access_token: bool
    waba_id: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


_CHANNEL_COLUMNS = """id, tenant_id, phone_number_id, display_number, default_queue_id,
    access_token is not null as has_access_token, waba_id, active, created_at, updated_at"""

_INSERT_CHANNEL_SQL = f"""
insert into channels (tenant_id, phone_number_id, display_number, default_queue_id, access_token, waba_id)
values ($1, $2, $3, $4, $5, $6)
returning {_CHANNEL_COLUMNS}
"""


async def create_channel(conn: Connection, *, tenant_id: UUID, data: ChannelCreate) -> Channel:
    """Connect a number. Its `phone_number_id` is unique across tenants (it decides the tenant of a webhook),
    so a number another tenant connected is a conflict here too."""
    token = data.access_token.get_secret_value() if data.access_token else None
    try:
        row = await conn.fetchrow(
            _INSERT_CHANNEL_SQL,
            tenant_id,
            data.phone_number_id,
            data.display_number,
            data.default_queue_id,
            token,
            data.waba_id,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"phone number id {data.phone_number_id} is already connected") from None
    except asyncpg.ForeignKeyViolationError:
        raise NotFound("the default queue is not a queue of this tenant") from None
    return Channel.model_validate(dict(row or {}))


_LIST_CHANNELS_SQL = f"""
select {_CHANNEL_COLUMNS} from channels
where ($1::boolean is null or active = $1)
order by display_number, id
limit $2 offset $3
"""
_COUNT_CHANNELS_SQL = "select count(*) from channels where ($1::boolean is null or active = $1)"


async def list_channels(conn: Connection, *, active: bool | None, limit: int, offset: int) -> tuple[list[Channel], int]:
    rows = await conn.fetch(_LIST_CHANNELS_SQL, active, limit, offset)
    total = await conn.fetchval(_COUNT_CHANNELS_SQL, active)
    return [Channel.model_validate(dict(r)) for r in rows], int(total)


_GET_CHANNEL_SQL = f"select {_CHANNEL_COLUMNS} from channels where id = $1"


async def get_channel(conn: Connection, *, channel_id: UUID) -> Channel:
    row = await conn.fetchrow(_GET_CHANNEL_SQL, channel_id)
    if row is None:
        raise NotFound("no such channel")
    return Channel.model_validate(dict(row))


_UPDATE_CHANNEL_SQL = f"""
update channels set
    display_number = coalesce($2, display_number),
    default_queue_id = coalesce($3, default_queue_id),
    access_token = case when $4 then $5 else access_token end,
    active = coalesce($6, active),
    waba_id = case when $7 then $8 else waba_id end,
    updated_at = now()
where id = $1
returning {_CHANNEL_COLUMNS}
"""


async def update_channel(conn: Connection, *, channel_id: UUID, data: ChannelUpdate) -> Channel:
    # Only for the token and the account does null mean something (remove it), so only theirs is told apart.
    token_given = "access_token" in data.model_fields_set
    token = data.access_token.get_secret_value() if data.access_token else None
    try:
        row = await conn.fetchrow(
            _UPDATE_CHANNEL_SQL,
            channel_id,
            data.display_number,
            data.default_queue_id,
            token_given,
            token,
            data.active,
            "waba_id" in data.model_fields_set,
            data.waba_id,
        )
    except asyncpg.ForeignKeyViolationError:
        raise NotFound("the default queue is not a queue of this tenant") from None
    if row is None:
        raise NotFound("no such channel")
    return Channel.model_validate(dict(row))
