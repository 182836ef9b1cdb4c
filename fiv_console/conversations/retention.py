"""A tenant's retention: closed conversations older than its `retention_days` are deleted, with their
messages, notes and labels, by `purge_closed_conversations` (sql/0019), in batches of a short transaction
each, so a first run over years of history never holds locks for long."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from fiv_console.accounts import tenants
from fiv_console.db.pool import Connection, Database, tenant_tx

log = logging.getLogger(__name__)

BATCH = 500
# A round stops a tenant after this many batches and comes back at the next round: others wait meanwhile.
MAX_BATCHES_PER_ROUND = 20

_PURGE_SQL = "select purge_closed_conversations($1, $2)"


async def purge_closed(conn: Connection, *, closed_before: datetime, limit: int) -> int:
    """In the tenant's transaction: up to `limit` conversations closed before `closed_before` deleted."""
    purged: int = await conn.fetchval(_PURGE_SQL, closed_before, limit)
    return purged


async def apply_retention(db: Database, tenant_id: UUID, *, now: datetime | None = None) -> int:
    """The tenant's retention, in batches; how many conversations went."""
    async with tenant_tx(db, tenant_id) as conn:
        tenant = await tenants.get_tenant(conn, tenant_id=tenant_id)
    if tenant is None or tenant.settings.retention_days is None:
        return 0
    closed_before = (now or datetime.now(UTC)) - timedelta(days=tenant.settings.retention_days)
    purged = 0
    for _ in range(MAX_BATCHES_PER_ROUND):
        async with tenant_tx(db, tenant_id) as conn:
            batch = await purge_closed(conn, closed_before=closed_before, limit=BATCH)
        purged += batch
        if batch < BATCH:
            break
    if purged:
        log.info("closed conversations past retention deleted", extra={"conversations": purged})
    return purged
