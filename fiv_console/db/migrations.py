"""The migration runner: `sql/NNNN_name.sql` applied in order, each in its own transaction, with checksums.

Runs as the schema owner. A session-level advisory lock makes concurrent runs (several instances
releasing at once) take turns: the second finds everything applied. An applied migration whose file
changed is refused, as is a database that has migrations this code does not know.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from fiv_console.db import roles
from fiv_console.db.pool import Connection
from fiv_console.db.urls import APP_ROLE
from fiv_console.resources import SQL_DIR

log = logging.getLogger(__name__)

# pg_advisory_lock key: "fiv-migrate" folded into a bigint; any constant works if nothing else uses it.
MIGRATION_LOCK_KEY = 0x6669762D6D696772
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """Migrations cannot be applied as they stand; the message says which file and what to do."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def file_name(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def load_migrations(directory: Path = SQL_DIR) -> list[Migration]:
    """Every `NNNN_name.sql` of `directory`, in order; a misnamed or duplicate file is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version:04d} is also {found[version].file_name}")
        raw = path.read_bytes()
        found[version] = Migration(
            version=version,
            name=match.group(2),
            sql=raw.decode("utf-8"),
            checksum=hashlib.sha256(raw).hexdigest(),
        )
    if not found:
        raise MigrationError(f"no migrations in {directory}: the installation is incomplete: reinstall fiv-console")
    return [found[version] for version in sorted(found)]


_CREATE_LEDGER_SQL = """
create table if not exists schema_migrations (
    version     integer primary key,
    name        text not null,
    checksum    text not null,
    applied_at  timestamptz not null default now()
)
"""
_APPLIED_SQL = "select version, name, checksum from schema_migrations order by version"
_RECORD_SQL = "insert into schema_migrations (version, name, checksum) values ($1, $2, $3)"
_LATEST_APPLIED_SQL = "select max(version) from schema_migrations"


def pending_migrations(known: list[Migration], applied: dict[int, tuple[str, str]]) -> list[Migration]:
    """What to apply, after refusing edited, unknown or out-of-order files."""
    by_version = {m.version: m for m in known}
    for version, (name, checksum) in applied.items():
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name}.sql, which this code does not have: "
                "run a newer version of fiv-console"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.file_name} was edited after it was applied (checksum differs): "
                "restore it and put the change in a new migration"
            )
    latest = max(applied, default=0)
    pending = [m for m in known if m.version not in applied]
    for migration in pending:
        if migration.version < latest:
            raise MigrationError(
                f"{migration.file_name} is new but {latest:04d} is already applied: "
                "number it after the latest applied migration"
            )
    return pending


async def migrate(
    owner_url: str,
    *,
    app_role: str,
    app_password: str | None,
    directory: Path = SQL_DIR,
) -> list[Migration]:
    """Apply what is pending, then (re)configure the server's login role. Returns what was applied."""
    known = load_migrations(directory)
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute("select pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        await roles.ensure_group_role(conn)
        await conn.execute(_CREATE_LEDGER_SQL)
        applied = {r["version"]: (r["name"], r["checksum"]) for r in await conn.fetch(_APPLIED_SQL)}
        pending = pending_migrations(known, applied)
        for migration in pending:
            log.info("applying migration", extra={"migration": migration.file_name})
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(_RECORD_SQL, migration.version, migration.name, migration.checksum)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{migration.file_name} failed and was rolled back: {exc}") from exc
        await conn.execute(f'grant select on schema_migrations to "{APP_ROLE}"')
        await roles.configure_login_role(conn, role=app_role, password=app_password)
        return pending
    finally:
        # Closing the session releases the advisory lock too; unlocking first frees it without waiting
        # for the server to notice the closed socket.
        if not conn.is_closed():
            try:
                await conn.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
            finally:
                await conn.close()


async def schema_versions(conn: Connection, directory: Path = SQL_DIR) -> tuple[int, int]:
    """(applied, expected) latest versions, for `serve` to refuse a database that needs `migrate`."""
    expected = max((m.version for m in load_migrations(directory)), default=0)
    try:
        applied = await conn.fetchval(_LATEST_APPLIED_SQL)
    except asyncpg.UndefinedTableError:
        applied = None
    return int(applied or 0), expected
