"""The audit log: who did what sensitive thing, when, from where. Rows are append-only for the server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from fiv_console.db.pool import Connection

ActorKind = Literal["user", "token", "system", "anonymous"]


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    id: UUID | None = None
    client_address: str | None = None
    request_id: str | None = None


class AuditEntry(BaseModel):
    id: int
    actor_kind: ActorKind
    actor_id: UUID | None = Field(description="The user's id, or the API token's id when a token made the call.")
    actor_name: str | None = Field(description="The user's or the API token's name, as it is now.")
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    client_address: str | None
    request_id: str | None
    created_at: datetime


_RECORD_SQL = """
insert into audit_log (tenant_id, actor_kind, actor_id, action, target_type, target_id, details, client_address,
                       request_id)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


async def record(
    conn: Connection,
    *,
    tenant_id: UUID,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: UUID | str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry in the caller's transaction, so it commits (or not) with the change it describes."""
    await conn.execute(
        _RECORD_SQL,
        tenant_id,
        actor.kind,
        actor.id,
        action,
        target_type,
        str(target_id) if target_id is not None else None,
        details or {},
        (actor.client_address or "")[:64] or None,
        actor.request_id,
    )


# The actor's name is looked up when read: the id is what the entry records, and a token's name is what
# tells an admin which integration acted.
_LIST_SQL = """
select a.id, a.actor_kind, a.actor_id, coalesce(u.name, t.name) as actor_name, a.action, a.target_type,
       a.target_id, a.details, a.client_address, a.request_id, a.created_at
from audit_log a
left join users u on a.actor_kind = 'user' and u.id = a.actor_id
left join api_tokens t on a.actor_kind = 'token' and t.id = a.actor_id
where ($1::text is null or a.action = $1) and ($2::uuid is null or a.actor_id = $2)
  and ($3::text is null or a.actor_kind = $3)
  and ($4::timestamptz is null or a.created_at >= $4) and ($5::timestamptz is null or a.created_at < $5)
order by a.created_at desc, a.id desc
limit $6 offset $7
"""
_COUNT_SQL = """
select count(*) from audit_log
where ($1::text is null or action = $1) and ($2::uuid is null or actor_id = $2)
  and ($3::text is null or actor_kind = $3)
  and ($4::timestamptz is null or created_at >= $4) and ($5::timestamptz is null or created_at < $5)
"""


async def list_entries(
    conn: Connection,
    *,
    action: str | None,
    actor_id: UUID | None,
    actor_kind: ActorKind | None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int,
    offset: int,
) -> tuple[list[AuditEntry], int]:
    """Newest first; `since` included, `until` not."""
    filters = (action, actor_id, actor_kind, since, until)
    rows = await conn.fetch(_LIST_SQL, *filters, limit, offset)
    total = await conn.fetchval(_COUNT_SQL, *filters)
    return [AuditEntry.model_validate(dict(r)) for r in rows], int(total)
