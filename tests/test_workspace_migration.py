"""sql/0008: tenants that existed before workspaces get a unique slug from their name, and emails become
unique per tenant. Run as a superuser owner and as one held to the FORCEd policies (managed PostgreSQL)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from fiv_console.db.migrations import migrate
from fiv_console.db.urls import APP_ROLE, derived_app_password, role_of
from fiv_console.resources import SQL_DIR
from tests.conftest import TestDatabase
from tests.test_lookups import unprivileged_owner

__all__ = ["unprivileged_owner"]

WORKSPACES_VERSION = 8
# Oldest first: a taken slug goes to the older tenant, the newer one is numbered.
NAMES_AND_SLUGS = [
    ("Acme", "acme"),
    ("ACME!", "acme-2"),
    ("acme 2", "acme-2-2"),
    ("  Café Lisboa, Lda. ", "cafe-lisboa-lda"),
    ("ÅNGSTRÖM & Søn", "angstrom-s-n"),
    ("東京", "workspace"),
    ("x" * 39 + " tail", "x" * 39),
]
_INSERT_TENANT_SQL = "insert into tenants (id, name, created_at) values ($1, $2, now() + make_interval(secs => $3))"
_INSERT_USER_SQL = "insert into users (tenant_id, email, name, role, password_hash) values ($1, $2, 'N', 'agent', 'x')"


async def _as_tenant(conn: asyncpg.Connection, tenant_id: uuid.UUID, sql: str, *args: object) -> None:
    """Write one row under `tenant_id`: an owner that is not a superuser is held to the policies too."""
    async with conn.transaction():
        await conn.execute("select set_config('app.current_tenant', $1, true)", str(tenant_id))
        await conn.execute(sql, *args)


@pytest.fixture(params=["superuser", "not a superuser"])
def owner_and_server_role(request: pytest.FixtureRequest) -> tuple[str, str, str | None]:
    """(owner URL, server role, its password: None for an operator's own role)."""
    if request.param == "superuser":
        database: TestDatabase = request.getfixturevalue("fresh_database")
        return database.owner_url, APP_ROLE, derived_app_password(database.owner_url)
    owner_url, app_url = request.getfixturevalue("unprivileged_owner")
    return owner_url, role_of(app_url), None


async def test_existing_tenants_get_unique_slugs_and_emails_become_unique_per_tenant(
    owner_and_server_role: tuple[str, str, str | None], tmp_path: Path
) -> None:
    owner_url, app_role, app_password = owner_and_server_role
    for migration in sorted(SQL_DIR.glob("*.sql")):
        if int(migration.name[:4]) < WORKSPACES_VERSION:
            shutil.copy(migration, tmp_path / migration.name)
    await migrate(owner_url, app_role=app_role, app_password=app_password, directory=tmp_path)

    conn = await asyncpg.connect(owner_url)
    try:
        ids = [uuid.uuid4() for _ in NAMES_AND_SLUGS]
        for order, (tenant_id, (name, _)) in enumerate(zip(ids, NAMES_AND_SLUGS, strict=True)):
            await _as_tenant(conn, tenant_id, _INSERT_TENANT_SQL, tenant_id, name, order)
        await _as_tenant(conn, ids[0], _INSERT_USER_SQL, ids[0], "same@example.com")

        await migrate(owner_url, app_role=app_role, app_password=app_password)

        async with conn.transaction():
            slugs = {}
            for tenant_id in ids:
                await conn.execute("select set_config('app.current_tenant', $1, true)", str(tenant_id))
                slugs[tenant_id] = await conn.fetchval("select slug from tenants where id = $1", tenant_id)
        assert [slugs[tenant_id] for tenant_id in ids] == [slug for _, slug in NAMES_AND_SLUGS]

        # The same address in another tenant is now a person of its own; twice in one tenant it is not.
        await _as_tenant(conn, ids[1], _INSERT_USER_SQL, ids[1], "same@example.com")
        with pytest.raises(asyncpg.UniqueViolationError):
            await _as_tenant(conn, ids[0], _INSERT_USER_SQL, ids[0], "same@example.com")
    finally:
        await conn.close()
