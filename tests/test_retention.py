"""A tenant's retention (issue #17, point 5): with `retention_days` set, its conversations closed longer
ago than that are deleted with their messages, notes, labels and delivery statuses; everything else stays:
conversations closed more recently, open ones however old, contacts, and every other tenant's rows. The
server's role itself may delete no conversation or message: only the reviewed function deletes, and only
in the tenant its transaction has set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fiv_console.conversations.retention import BATCH, apply_retention
from fiv_console.db.pool import Database, tenant_tx
from tests.conftest import new_tenant
from tests.tenant_rows import seed_every_table

RETENTION_DAYS = 30
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Kept:
    """A tenant's conversations by what retention must do with them."""

    tenant_id: uuid.UUID
    old_closed: list[uuid.UUID]
    recent_closed: uuid.UUID
    old_open: uuid.UUID
    contact_id: uuid.UUID


async def _conversation(conn: asyncpg.Connection, ids: dict[str, object], *, closed_at: datetime | None) -> uuid.UUID:
    """A conversation with two messages (one with a delivery status), a note and a label."""
    started = (closed_at or NOW) - timedelta(days=400)
    conversation_id: uuid.UUID = await conn.fetchval(
        """
        insert into conversations (tenant_id, channel_id, contact_id, queue_id, status, closed_at, close_reason,
                                   created_at, enqueued_at)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $8) returning id
        """,
        ids["tenants"], ids["channels"], ids["contacts"], ids["queues"],
        "closed" if closed_at else "waiting", closed_at, "done" if closed_at else None, started,
    )  # fmt: skip
    for direction in ("inbound", "outbound"):
        wamid = f"wamid.{uuid.uuid4().hex}"
        await conn.execute(
            """
            insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, wa_message_id,
                                  status, created_at)
            values ($1, $2, $3, $4, 'text', 'hello', $5, 'sent', $6)
            """,
            ids["tenants"], conversation_id, ids["channels"], direction, wamid, started,
        )  # fmt: skip
        if direction == "outbound":
            await conn.execute(
                "insert into message_statuses (tenant_id, channel_id, wa_message_id, status, occurred_at)"
                " values ($1, $2, $3, 'delivered', $4)",
                ids["tenants"], ids["channels"], wamid, started,
            )  # fmt: skip
    await conn.execute(
        "insert into notes (tenant_id, conversation_id, author_id, body) values ($1, $2, $3, 'a note')",
        ids["tenants"], conversation_id, ids["users"],
    )  # fmt: skip
    await conn.execute(
        "insert into conversation_labels (tenant_id, conversation_id, label_id) values ($1, $2, $3)",
        ids["tenants"], conversation_id, ids["labels"],
    )  # fmt: skip
    return conversation_id


async def _tenant(db: Database, name: str, retention_days: int | None, old: int = 2) -> Kept:
    tenant_id = await new_tenant(db, name)
    async with tenant_tx(db, tenant_id) as conn:
        ids = await seed_every_table(conn, tenant_id)
        await conn.execute(
            "update tenants set settings = settings || jsonb_build_object('retention_days', $2::int) where id = $1",
            tenant_id,
            retention_days,
        )
        past = NOW - timedelta(days=RETENTION_DAYS, minutes=1)
        old_closed = [await _conversation(conn, ids, closed_at=past - timedelta(days=n)) for n in range(old)]
        recent = await _conversation(conn, ids, closed_at=NOW - timedelta(days=RETENTION_DAYS) + timedelta(minutes=1))
        # A contact has one open conversation at most: the seed's has one already.
        other_contact = await conn.fetchval(
            "insert into contacts (tenant_id, wa_id) values ($1, $2) returning id",
            tenant_id,
            str(uuid.uuid4().int)[:15],
        )
        old_open = await _conversation(conn, {**ids, "contacts": other_contact}, closed_at=None)
    return Kept(tenant_id, old_closed, recent, old_open, ids["contacts"])


async def _rows(owner: asyncpg.Connection, tenant_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    for table in ("conversations", "messages", "notes", "conversation_labels", "message_statuses", "contacts"):
        counts[table] = await owner.fetchval(f"select count(*) from {table} where tenant_id = $1", tenant_id)
    return counts


async def test_closed_conversations_past_the_setting_go_and_nothing_else(
    db: Database, owner: asyncpg.Connection
) -> None:
    kept = await _tenant(db, "Retains", RETENTION_DAYS)
    other = await _tenant(db, "Keeps forever", None)
    other_before = await _rows(owner, other.tenant_id)
    before = await _rows(owner, kept.tenant_id)

    assert await apply_retention(db, kept.tenant_id, now=NOW) == len(kept.old_closed)
    assert await apply_retention(db, other.tenant_id, now=NOW) == 0

    left = {r["id"] for r in await owner.fetch("select id from conversations where tenant_id = $1", kept.tenant_id)}
    assert not left & set(kept.old_closed)
    assert {kept.recent_closed, kept.old_open} <= left
    after = await _rows(owner, kept.tenant_id)
    gone = len(kept.old_closed)
    assert after == {
        "conversations": before["conversations"] - gone,
        "messages": before["messages"] - 2 * gone,
        "notes": before["notes"] - gone,
        "conversation_labels": before["conversation_labels"] - gone,
        "message_statuses": before["message_statuses"] - gone,
        "contacts": before["contacts"],
    }
    assert await _rows(owner, other.tenant_id) == other_before
    # Again: nothing more is old enough.
    assert await apply_retention(db, kept.tenant_id, now=NOW) == 0


async def test_a_long_history_goes_in_batches(db: Database, owner: asyncpg.Connection) -> None:
    kept = await _tenant(db, "Long history", RETENTION_DAYS, old=BATCH + 3)
    assert await apply_retention(db, kept.tenant_id, now=NOW) == BATCH + 3
    # Left: the recently closed one, the old open one, and the seed's own (open).
    assert await owner.fetchval("select count(*) from conversations where tenant_id = $1", kept.tenant_id) == 3


async def test_the_server_role_deletes_only_through_the_function_in_its_tenant(db: Database) -> None:
    kept = await _tenant(db, "Guarded", RETENTION_DAYS)
    async with tenant_tx(db, kept.tenant_id) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("delete from conversations where id = $1", kept.old_open)
    async with db.connection() as conn:
        with pytest.raises(asyncpg.RaiseError, match="no tenant is set"):
            await conn.fetchval("select purge_closed_conversations(now(), 10)")
