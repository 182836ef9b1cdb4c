"""Errors Meta reports on a whole change, kept with the business number they concern.

A messages change may carry a value-level `errors[]` with no message at all (a webhook Meta could not
render, a rate limit hit); a `history` change carries one when the business declined to share its chat
history. They have no id of their own, so each is kept once per (number, body, position in the body): a
redelivered body adds nothing.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from fiv_console.db.pool import Connection
from fiv_console.whatsapp.payloads import WebhookError

_RECORD_SQL = """
insert into channel_errors (tenant_id, channel_id, body_sha256, position, code, title, message, details, raw)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
on conflict (channel_id, body_sha256, position) do nothing
"""


def body_digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


async def record(
    conn: Connection, *, tenant_id: UUID, channel_id: UUID, digest: bytes, position: int, error: WebhookError
) -> None:
    details = error.error
    await conn.execute(
        _RECORD_SQL,
        tenant_id,
        channel_id,
        digest,
        position,
        details.code if details else None,
        details.title if details else None,
        details.message if details else None,
        details.details if details else None,
        error.raw,
    )
