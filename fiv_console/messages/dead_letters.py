"""The webhook dead-letter box: signed bodies, or items of them, that no tenant can be given.

A body that is not a webhook, a business number no tenant has (`unroutable`), or an item without the ids
needed to store it (`unstorable`) is kept here, whole, for an operator: answering Meta anything but 200
would only bring the same bytes back for 7 days. The server may only add rows (it connects as `fiv_app`);
reading them is for operators, as the schema owner (`fiv-console dead-letters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fiv_console.db.pool import Connection

Reason = Literal["unparseable", "unroutable", "unstorable"]

_DETAIL_MAX = 2000

_INSERT_SQL = """
insert into webhook_dead_letters (reason, phone_number_id, detail, body) values ($1, $2, $3, $4)
"""


async def keep(conn: Connection, *, reason: Reason, body: bytes, phone_number_id: str | None, detail: str) -> None:
    await conn.execute(_INSERT_SQL, reason, phone_number_id, detail[:_DETAIL_MAX], body)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_at: datetime
    reason: Reason
    phone_number_id: str | None
    detail: str | None
    body: bytes


_LIST_SQL = """
select id, received_at, reason, phone_number_id, detail, body from webhook_dead_letters
order by received_at desc, id desc limit $1
"""


async def latest(owner: Connection, *, limit: int) -> list[DeadLetter]:
    """The newest dead letters; needs the owner's connection (the server role cannot read them)."""
    return [DeadLetter(**dict(r)) for r in await owner.fetch(_LIST_SQL, limit)]
