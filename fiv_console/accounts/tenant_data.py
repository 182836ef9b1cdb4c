"""A tenant's data as a whole: exported table by table as JSON lines, and deleted to the last row.

The export reads as the server's role in one read-only, repeatable-read transaction with the tenant set, so
row-level security shows only the tenant's rows and every table is read at the same instant. Each table in
`EXPORTED_TABLES` becomes `<table>.jsonl` (one row per line, as PostgreSQL's `to_jsonb` writes it, ordered
by primary key) without the columns in `SECRET_COLUMNS`; the search-word tables are left out, being made
from the messages and contacts again by their triggers. `manifest.json` says what is where. Media bytes
are not kept by the console (Meta holds them for a while): messages carry their media references, and the
command line can fetch the files too (`tenant_media`). The command line writes `manifest.json` last: a
folder without one is an export that did not finish (`ExportFolderUnwritable` says why).

Deleting removes the tenant's row, which every tenant table references with `on delete cascade`, as the
schema owner (the server's role may delete no tenant, nor its audit log); what is left is then counted
over the catalogue, table by table, and anything found refuses the deletion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from fiv_console.db.pool import Connection, Database
from fiv_console.errors import Conflict, DomainError, NotFound

# Every table with a tenant_id, in an order a reader can follow (tests/test_tenant_data.py checks this list
# against the catalogue, so a new table cannot be left out unnoticed).
EXPORTED_TABLES: tuple[str, ...] = (
    "tenants",
    "users",
    "api_tokens",
    "queues",
    "queue_members",
    "channels",
    "contacts",
    "conversations",
    "conversation_segments",
    "messages",
    "message_statuses",
    "message_revisions",
    "message_reactions",
    "channel_errors",
    "notes",
    "labels",
    "conversation_labels",
    "canned_responses",
    "events",
    "event_counters",
    "audit_log",
    "agent_presence_log",
    "agent_connections",
    "assignment_counters",
    "assignment_counter_deltas",
    "wallboard_day_counters",
    "wallboard_day_counter_deltas",
)
# Made again from messages and contacts by their triggers: the search index, not data.
DERIVED_TABLES: tuple[str, ...] = ("conversation_terms", "contact_terms")
# Credentials are not data to hand over: a password's hash, a token's hash, the number's access token.
SECRET_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("password_hash",),
    "api_tokens": ("token_hash",),
    "channels": ("access_token",),
}
EXPORT_FORMAT = 1
_BATCH = 1000


class ExportFolderUnwritable(DomainError):
    """The export's folder refused a write (a full disk, no permission): not one file's fault, and every
    later write would fail alike, so the export stops."""

    def __init__(self, folder: Path, error: OSError) -> None:
        super().__init__(f"cannot write into {folder}: {error.strerror or error}; the export stopped")
        self.folder = folder
        self.error = error


@contextmanager
def writing_into(folder: Path) -> Iterator[None]:
    """Writes into the export's `folder`: an OSError of the block is `ExportFolderUnwritable`."""
    try:
        yield
    except OSError as exc:
        raise ExportFolderUnwritable(folder, exc) from exc


def _select_sql(table: str) -> str:
    """The table's rows as JSON text; names come from the constants above, never from input."""
    assert table in EXPORTED_TABLES
    hidden = "".join(f" - '{column}'" for column in SECRET_COLUMNS.get(table, ()))
    key = "id" if table == "tenants" else "tenant_id"
    return f"select (to_jsonb(t){hidden})::text from {table} t where t.{key} = $1 order by {_order_of(table)}"


_ORDER: dict[str, str] = {
    "queue_members": "t.queue_id, t.user_id",
    "conversation_labels": "t.conversation_id, t.label_id",
    "event_counters": "t.tenant_id",
    "agent_connections": "t.user_id, t.instance_id",
    "assignment_counters": "t.kind, t.subject_id",
    "assignment_counter_deltas": "t.kind, t.subject_id",
    "wallboard_day_counters": "t.day, t.kind, t.subject_id",
    "wallboard_day_counter_deltas": "t.day, t.kind, t.subject_id",
    "message_statuses": "t.channel_id, t.wa_message_id, t.status",
    "message_revisions": "t.channel_id, t.wa_message_id",
    "message_reactions": "t.channel_id, t.target_wa_message_id, t.reactor",
    "channel_errors": "t.channel_id, t.body_sha256, t.position",
    "events": "t.seq",
}


def _order_of(table: str) -> str:
    return _ORDER.get(table, "t.id")


_SET_TENANT_SQL = "select set_config('app.current_tenant', $1, true)"


@asynccontextmanager
async def export_snapshot(db: Database, tenant_id: UUID) -> AsyncIterator[Connection]:
    """A read-only, repeatable-read transaction with the tenant set: every table as of one instant."""
    async with db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(_SET_TENANT_SQL, str(tenant_id))
        yield conn


@dataclass(frozen=True, slots=True)
class TableLines:
    """One table's rows, each a line of JSON text."""

    table: str
    lines: AsyncIterator[str]


async def export_tables(conn: Connection, *, tenant_id: UUID) -> AsyncIterator[TableLines]:
    """In a read-only, repeatable-read transaction with the tenant set: each table's rows as JSON lines, read
    in batches (a million messages never sit in memory). Consume each table before asking for the next."""
    for table in EXPORTED_TABLES:
        yield TableLines(table, _lines(conn, table, tenant_id))


async def _lines(conn: Connection, table: str, tenant_id: UUID) -> AsyncIterator[str]:
    async for row in conn.cursor(_select_sql(table), tenant_id, prefetch=_BATCH):
        yield row[0]


async def write_table(table: TableLines, out: Path) -> int:
    """`<table>.jsonl` in `out`, and how many rows it holds. Only the file's writes are the folder's: an
    OSError of the database's reading stays what it is."""
    with writing_into(out):
        file = (out / f"{table.table}.jsonl").open("w", encoding="utf-8")
    count = 0
    try:
        async for line in table.lines:
            try:
                file.write(line + "\n")
            except OSError as exc:
                raise ExportFolderUnwritable(out, exc) from exc
            count += 1
    finally:
        with writing_into(out):
            file.close()
    return count


def manifest(
    *, tenant_id: UUID, counts: dict[str, int], schema_version: int, media: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What is where; `media` is what fetching the media files did (`tenant_media`), None when they were
    left with Meta."""
    left_out: dict[str, Any] = {
        "tables": {table: "the search index, made again from messages and contacts" for table in DERIVED_TABLES},
        "columns": {table: list(columns) for table, columns in SECRET_COLUMNS.items()},
    }
    if media is None:
        media = {"mode": "reference"}
        left_out["media"] = "the files stay with Meta; messages carry their media references"
    return {
        "format": EXPORT_FORMAT,
        "tenant_id": str(tenant_id),
        "exported_at": datetime.now(UTC).isoformat(),
        "schema_version": schema_version,
        "tables": {table: {"file": f"{table}.jsonl", "rows": counts[table]} for table in EXPORTED_TABLES},
        "media": media,
        "left_out": left_out,
    }


_TENANT_TABLES_SQL = """
select c.relname from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
where n.nspname = current_schema() and c.relkind in ('r', 'p')
order by c.relname
"""


async def tenant_tables(conn: Connection) -> list[str]:
    """Every table of the schema with a tenant_id column, from the catalogue."""
    return [r[0] for r in await conn.fetch(_TENANT_TABLES_SQL)]


_DELETE_TENANT_SQL = "delete from tenants where id = $1"


async def delete_tenant(owner: Connection, *, tenant_id: UUID) -> None:
    """As the schema owner, in the caller's transaction: the tenant and every row of it. Refuses (Conflict)
    and deletes nothing if any row would be left in any table."""
    await owner.execute(_SET_TENANT_SQL, str(tenant_id))
    if await owner.execute(_DELETE_TENANT_SQL, tenant_id) == "DELETE 0":
        raise NotFound(f"no tenant {tenant_id}")
    left = await rows_left(owner, tenant_id=tenant_id)
    if left:
        raise Conflict(f"rows of the tenant would be left behind: {left}; nothing was deleted")


async def rows_left(conn: Connection, *, tenant_id: UUID) -> dict[str, int]:
    """The tenant's rows in each table of the catalogue, where there are any."""
    left: dict[str, int] = {}
    for table in await tenant_tables(conn):
        # The name comes from the catalogue; quote_ident keeps it a name.
        quoted = await conn.fetchval("select quote_ident($1)", table)
        count = await conn.fetchval(f"select count(*) from {quoted} where tenant_id = $1", tenant_id)
        if count:
            left[table] = count
    return left
