"""The migration runner: order, checksums, refusal of edited/unknown/out-of-order files, concurrency."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from fiv_console.db.migrations import MigrationError, load_migrations, migrate
from fiv_console.db.urls import APP_ROLE, derived_app_password, with_database, with_role
from fiv_console.resources import SQL_DIR
from tests.conftest import TestDatabase, project_root


async def _migrate(db: TestDatabase, directory: Path) -> list[str]:
    applied = await migrate(
        db.owner_url, app_role=APP_ROLE, app_password=derived_app_password(db.owner_url), directory=directory
    )
    return [m.file_name for m in applied]


async def _ledger(db: TestDatabase) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(db.owner_url)
    try:
        rows = await conn.fetch("select version, name from schema_migrations order by version")
        return [(r["version"], r["name"]) for r in rows]
    finally:
        await conn.close()


def _write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


def test_project_migrations_are_numbered_in_order() -> None:
    migrations = load_migrations(SQL_DIR)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))


def test_files_are_loaded_in_version_order_and_misnamed_files_refused(tmp_path: Path) -> None:
    _write(tmp_path, "0002_second.sql", "select 2")
    _write(tmp_path, "0001_first.sql", "select 1")
    _write(tmp_path, "0010_tenth.sql", "select 10")
    assert [m.file_name for m in load_migrations(tmp_path)] == [
        "0001_first.sql",
        "0002_second.sql",
        "0010_tenth.sql",
    ]
    _write(tmp_path, "3_bad name.sql", "select 3")
    with pytest.raises(MigrationError, match=re.escape("3_bad name.sql")):
        load_migrations(tmp_path)


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "0001_first.sql", "select 1")
    _write(tmp_path, "0001_again.sql", "select 1")
    with pytest.raises(MigrationError, match="0001"):
        load_migrations(tmp_path)


async def test_applies_in_order_each_once_and_records_checksums(fresh_database: TestDatabase, tmp_path: Path) -> None:
    _write(tmp_path, "0001_create.sql", "create table t (n int)")
    _write(tmp_path, "0002_fill.sql", "insert into t values (1)")
    assert await _migrate(fresh_database, tmp_path) == ["0001_create.sql", "0002_fill.sql"]
    assert await _migrate(fresh_database, tmp_path) == []
    _write(tmp_path, "0003_more.sql", "insert into t values (2)")
    assert await _migrate(fresh_database, tmp_path) == ["0003_more.sql"]
    conn = await asyncpg.connect(fresh_database.owner_url)
    try:
        assert await conn.fetchval("select array_agg(n order by n) from t") == [1, 2]
        checksums = await conn.fetch("select checksum from schema_migrations")
        assert all(len(r["checksum"]) == 64 for r in checksums)
    finally:
        await conn.close()


async def test_an_edited_applied_migration_is_refused(fresh_database: TestDatabase, tmp_path: Path) -> None:
    _write(tmp_path, "0001_create.sql", "create table t (n int)")
    await _migrate(fresh_database, tmp_path)
    _write(tmp_path, "0001_create.sql", "create table t (n bigint)")
    _write(tmp_path, "0002_next.sql", "create table u (n int)")
    with pytest.raises(MigrationError, match=r"0001_create\.sql was edited after it was applied"):
        await _migrate(fresh_database, tmp_path)
    assert await _ledger(fresh_database) == [(1, "create")]


async def test_a_database_newer_than_the_code_is_refused(fresh_database: TestDatabase, tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "select 1")
    _write(tmp_path, "0002_b.sql", "select 1")
    await _migrate(fresh_database, tmp_path)
    (tmp_path / "0002_b.sql").unlink()
    with pytest.raises(MigrationError, match=re.escape("0002_b.sql, which this code does not have")):
        await _migrate(fresh_database, tmp_path)


async def test_a_new_file_numbered_before_the_latest_applied_is_refused(
    fresh_database: TestDatabase, tmp_path: Path
) -> None:
    _write(tmp_path, "0001_a.sql", "select 1")
    _write(tmp_path, "0003_c.sql", "select 1")
    await _migrate(fresh_database, tmp_path)
    _write(tmp_path, "0002_b.sql", "select 1")
    with pytest.raises(MigrationError, match=re.escape("0002_b.sql is new but 0003 is already applied")):
        await _migrate(fresh_database, tmp_path)


async def test_a_failing_migration_rolls_back_alone(fresh_database: TestDatabase, tmp_path: Path) -> None:
    _write(tmp_path, "0001_ok.sql", "create table ok (n int)")
    _write(tmp_path, "0002_broken.sql", "create table half (n int); select no_such_function()")
    with pytest.raises(MigrationError, match=re.escape("0002_broken.sql failed and was rolled back")):
        await _migrate(fresh_database, tmp_path)
    assert await _ledger(fresh_database) == [(1, "ok")]
    conn = await asyncpg.connect(fresh_database.owner_url)
    try:
        assert await conn.fetchval("select to_regclass('half')") is None
    finally:
        await conn.close()


async def test_concurrent_runs_in_one_process_apply_each_migration_once(fresh_database: TestDatabase) -> None:
    results = await asyncio.gather(*(_migrate(fresh_database, SQL_DIR) for _ in range(3)))
    expected = [m.file_name for m in load_migrations(SQL_DIR)]
    assert sorted(results, key=len) == [[], [], expected]
    assert [v for v, _ in await _ledger(fresh_database)] == [m.version for m in load_migrations(SQL_DIR)]


def test_two_concurrent_migrate_commands(fresh_database: TestDatabase) -> None:
    env = {**os.environ, "DATABASE_URL": fresh_database.owner_url, "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_APP_URL", None)
    command = [sys.executable, "-m", "fiv_console", "migrate"]
    runs = [
        subprocess.Popen(command, env=env, cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outcomes = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    ledger = asyncio.run(_ledger(fresh_database))
    assert [v for v, _ in ledger] == [m.version for m in load_migrations(SQL_DIR)]


@asynccontextmanager
async def _database_of_an_ordinary_owner(postgres_url: str) -> AsyncIterator[tuple[str, str, str]]:
    """Managed PostgreSQL has no superuser: a database owned by an ordinary role, whom forced row-level
    security hides every tenant's rows from. Yields the owner's URL, the server's login role, and a
    superuser's URL (to put data in as it was before a migration)."""
    suffix = uuid.uuid4().hex[:10]
    owner_role, login_role, name = f"fiv_owner_{suffix}", f"fiv_login_{suffix}", f"fiv_rls_owner_{suffix}"
    server = await asyncpg.connect(postgres_url)
    try:
        await server.execute(f"create role {owner_role} login nosuperuser nobypassrls password 'owner'")
        await server.execute(f"create role {login_role} login nosuperuser nobypassrls password 'login'")
        if not await server.fetchval("select 1 from pg_roles where rolname = $1", APP_ROLE):
            await server.execute(f"create role {APP_ROLE} nologin")
        await server.execute(f"grant {APP_ROLE} to {login_role}")
        await server.execute(f'create database "{name}" owner {owner_role}')
    finally:
        await server.close()
    try:
        yield (
            with_role(with_database(postgres_url, name), owner_role, "owner"),
            login_role,
            with_database(postgres_url, name),
        )
    finally:
        server = await asyncpg.connect(postgres_url)
        try:
            await server.execute(f'drop database if exists "{name}" with (force)')
            await server.execute(f"drop role if exists {login_role}")
            await server.execute(f"drop role if exists {owner_role}")
        finally:
            await server.close()


async def _migrate_before(owner_url: str, login_role: str, directory: Path, version: int) -> None:
    for migration in SQL_DIR.glob("*.sql"):
        if int(migration.name[:4]) < version:
            _write(directory, migration.name, migration.read_text())
    await migrate(owner_url, app_role=login_role, app_password=None, directory=directory)


async def _old_tenant(data: asyncpg.Connection, *, with_slug: bool) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A tenant with a queue and a channel, written as the schema of an earlier migration has them (tenants
    got their slug in 0008)."""
    tenant_sql = (
        "insert into tenants (name, slug) values ('Old data', 'old-data') returning id"
        if with_slug
        else "insert into tenants (name) values ('Old data') returning id"
    )
    tenant = await data.fetchval(tenant_sql)
    queue = await data.fetchval("insert into queues (tenant_id, name) values ($1, 'Q') returning id", tenant)
    channel = await data.fetchval(
        "insert into channels (tenant_id, phone_number_id, display_number, default_queue_id) "
        "values ($1, '1234567', '+1 555', $2) returning id",
        tenant,
        queue,
    )
    return tenant, queue, channel


async def test_the_counters_start_from_what_exists_also_for_an_owner_held_to_row_level_security(
    postgres_url: str, tmp_path: Path
) -> None:
    """Migration 0007 must count the conversations there are even for an owner held to row-level security."""
    async with _database_of_an_ordinary_owner(postgres_url) as (owner_url, login_role, as_superuser):
        await _migrate_before(owner_url, login_role, tmp_path, 7)
        data = await asyncpg.connect(as_superuser)
        try:
            tenant, queue, channel = await _old_tenant(data, with_slug=False)
            for n in range(2):
                contact = await data.fetchval(
                    "insert into contacts (tenant_id, wa_id) values ($1, $2) returning id", tenant, f"5511{n:09d}"
                )
                await data.execute(
                    "insert into conversations (tenant_id, channel_id, contact_id, queue_id) values ($1, $2, $3, $4)",
                    tenant,
                    channel,
                    contact,
                    queue,
                )
        finally:
            await data.close()
        seventh = next(SQL_DIR.glob("0007_*.sql"))
        _write(tmp_path, seventh.name, seventh.read_text())
        applied = await migrate(owner_url, app_role=login_role, app_password=None, directory=tmp_path)
        assert [m.version for m in applied] == [7]
        data = await asyncpg.connect(as_superuser)
        try:
            counted = await data.fetch("select kind, subject_id, value from assignment_counters")
        finally:
            await data.close()
        assert [(r["kind"], r["subject_id"], r["value"]) for r in counted] == [("queue_waiting", queue, 2)]


async def test_open_conversations_await_a_reply_from_their_first_unanswered_message_after_0010(
    postgres_url: str, tmp_path: Path
) -> None:
    """Migration 0010 reads, for an owner held to row-level security too, since when each open conversation's
    customer has awaited an answer: replies answer, automatic ones and WhatsApp's notices do not count."""
    async with _database_of_an_ordinary_owner(postgres_url) as (owner_url, login_role, as_superuser):
        await _migrate_before(owner_url, login_role, tmp_path, 10)
        data = await asyncpg.connect(as_superuser)
        try:
            tenant, queue, channel = await _old_tenant(data, with_slug=True)
            # (status, [(minutes ago, direction, kind, details)]) -> awaiting since, minutes ago; an outbound
            # message was sent unless its direction says "failed"
            histories = {
                "answered, then written twice": (
                    "waiting",
                    [
                        (10, "inbound", "text", None),
                        (8, "outbound", "text", None),
                        (6, "inbound", "text", None),
                        (4, "inbound", "text", None),
                    ],
                    6,
                ),
                "told only automatically": (
                    "waiting",
                    [(5, "inbound", "text", None), (3, "outbound", "text", {"automatic": "queue_position"})],
                    5,
                ),
                "answered": ("waiting", [(5, "inbound", "image", None), (2, "outbound", "template", None)], None),
                "a reply WhatsApp refused": (
                    "waiting",
                    [(5, "inbound", "text", None), (3, "outbound failed", "text", None)],
                    5,
                ),
                "a notice": ("waiting", [(5, "inbound", "system", None)], None),
                "closed": ("closed", [(5, "inbound", "text", None)], None),
            }
            made = {}
            for n, (label, (status, messages, _)) in enumerate(histories.items()):
                contact = await data.fetchval(
                    "insert into contacts (tenant_id, wa_id) values ($1, $2) returning id", tenant, f"5511{n:09d}"
                )
                made[label] = conversation = await data.fetchval(
                    "insert into conversations (tenant_id, channel_id, contact_id, queue_id, status, closed_at) "
                    "values ($1, $2, $3, $4, $5, case when $5 = 'closed' then now() end) returning id",
                    tenant,
                    channel,
                    contact,
                    queue,
                    status,
                )
                for minutes, direction, kind, details in messages:
                    await data.execute(
                        "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, details, "
                        "status, created_at) values ($1, $2, $3, $4, $5, $6::jsonb, $7, "
                        "date_trunc('minute', now()) - make_interval(mins => $8))",
                        tenant,
                        conversation,
                        channel,
                        direction.split()[0],
                        kind,
                        None if details is None else json.dumps(details),
                        "received" if direction == "inbound" else "failed" if "failed" in direction else "sent",
                        minutes,
                    )
        finally:
            await data.close()
        applied = await migrate(owner_url, app_role=login_role, app_password=None)
        assert applied[0].version == 10
        data = await asyncpg.connect(as_superuser)
        try:
            rows = await data.fetch(
                "select id, (extract(epoch from date_trunc('minute', now()) - awaiting_reply_since) / 60)::int "
                "as minutes from conversations"
            )
        finally:
            await data.close()
        awaiting = {r["id"]: r["minutes"] for r in rows}
        assert {label: awaiting[made[label]] for label in histories} == {
            label: since for label, (_, _, since) in histories.items()
        }
