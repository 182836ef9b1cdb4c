"""A tenant's data as a whole (issue #17, point 5): `tenant export` writes every row of every tenant table as
JSON lines, and only that tenant's, without credentials, and with `--media fetch` the media files from the
Cloud API simulator (one Meta no longer has recorded, not fatal; the folder refusing a write stops it, with
no file half written and a manifest saying so); `tenant delete` leaves no row of the tenant in any table of
the catalogue and every row of the others.

Two tenants get one row in every tenant table (tests/tenant_rows.py, as the isolation tests seed them); the
commands run for real as `python -m fiv_console`.
"""

from __future__ import annotations

import io
import os
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from fiv_console.accounts.tenant_data import DERIVED_TABLES, EXPORTED_TABLES, SECRET_COLUMNS, rows_left, tenant_tables
from fiv_console.db.pool import Database, tenant_tx
from tests.api import Browsers, TenantPeople
from tests.conftest import TestDatabase, new_tenant
from tests.tenant_rows import seed_every_table
from tests.test_cli import cli, cli_env
from tests.webhooks import envelope, post_webhook, simulated_world


@pytest.fixture
async def two_tenants(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    a, b = await new_tenant(db, "Exported"), await new_tenant(db, "Kept")
    for tenant in (a, b):
        async with tenant_tx(db, tenant) as conn:
            await seed_every_table(conn, tenant)
    return a, b


async def test_the_export_names_every_tenant_table_of_the_catalogue(owner: asyncpg.Connection) -> None:
    # The tenants table itself is keyed by `id`, not `tenant_id`.
    assert sorted({*EXPORTED_TABLES, *DERIVED_TABLES} - {"tenants"}) == await tenant_tables(owner)


def _without_secrets(table: str, row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in SECRET_COLUMNS.get(table, ())}


async def test_an_export_holds_every_row_of_the_tenant_and_nothing_else(
    database: TestDatabase, owner: asyncpg.Connection, two_tenants: tuple[uuid.UUID, uuid.UUID], tmp_path: Path
) -> None:
    exported, _ = two_tenants
    env = cli_env(database.owner_url)
    out = tmp_path / "export"
    run = await cli("tenant", "export", "--tenant", str(exported), "--out", str(out), env=env)
    assert run.code == 0, run
    assert run.stdout.startswith(f"exported tenant {exported} into {out}: ")

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["tenant_id"] == str(exported)
    assert list(manifest["tables"]) == list(EXPORTED_TABLES)
    # By default the files stay with Meta: messages carry their references.
    assert manifest["media"] == {"mode": "reference"}
    assert not (out / "media").exists()
    for table in EXPORTED_TABLES:
        lines = (out / f"{table}.jsonl").read_text().splitlines()
        written = [orjson.loads(line) for line in lines]
        assert len(written) == manifest["tables"][table]["rows"]
        key = "id" if table == "tenants" else "tenant_id"
        stored = [
            orjson.loads(value)
            for (value,) in await owner.fetch(f"select to_jsonb(t)::text from {table} t where {key} = $1", exported)
        ]
        assert written, f"{table}: every kind of row is in the seed, so in the export"
        # Row for row what the database holds, credentials left out.
        assert sorted(map(orjson.dumps, written)) == sorted(orjson.dumps(_without_secrets(table, r)) for r in stored)
        for column in SECRET_COLUMNS.get(table, ()):
            assert all(column not in row for row in written), (table, column)
        assert all(row.get(key) == str(exported) for row in written), f"{table}: another tenant's row"
    assert not (out / "conversation_terms.jsonl").exists()

    # An export never writes over what is there.
    again = await cli("tenant", "export", "--tenant", str(exported), "--out", str(out), env=env)
    assert "must be a folder that does not exist yet, or an empty one" in again.error(2)
    nobody = await cli(
        "tenant", "export", "--tenant", str(uuid.uuid4()), "--out", str(tmp_path / "x"), env=cli_env(database.owner_url)
    )
    assert nobody.error(1).startswith("no tenant")


async def test_delete_leaves_no_row_of_the_tenant_and_every_row_of_the_others(
    database: TestDatabase, owner: asyncpg.Connection, two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    deleted, kept = two_tenants
    before = await rows_left(owner, tenant_id=kept)
    env = cli_env(database.owner_url)

    unasked = await cli("tenant", "delete", "--tenant", str(deleted), env=env)
    assert "pass --yes" in unasked.error(2)
    assert await rows_left(owner, tenant_id=deleted), "nothing deleted without the confirmation"

    run = await cli("tenant", "delete", "--tenant", str(deleted), "--yes", env=env)
    assert run.code == 0, run
    assert run.stdout.startswith(f"deleted tenant {deleted} (workspace ")
    assert await rows_left(owner, tenant_id=deleted) == {}
    assert await owner.fetchval("select count(*) from tenants where id = $1", deleted) == 0
    assert await rows_left(owner, tenant_id=kept) == before
    assert set(before) >= set(EXPORTED_TABLES) - {"tenants"} - {"event_counters", "assignment_counters"}

    gone = await cli("tenant", "delete", "--tenant", str(deleted), "--yes", env=env)
    assert gone.error(1).startswith("no tenant")


async def test_an_admin_downloads_the_same_export_as_a_zip(
    database: TestDatabase, db: Database, browsers: Browsers, tenant: TenantPeople, tmp_path: Path
) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await seed_every_table(conn, tenant.id)
    admin = await browsers.signed_in(tenant.admin)
    response = await admin.client.get("/api/tenant/export")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"] == f'attachment; filename="tenant-{tenant.id}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    assert sorted(archive.namelist()) == sorted([*(f"{t}.jsonl" for t in EXPORTED_TABLES), "manifest.json"])

    out = tmp_path / "cli"
    run = await cli("tenant", "export", "--tenant", str(tenant.id), "--out", str(out), env=cli_env(database.owner_url))
    assert run.code == 0, run
    for table in EXPORTED_TABLES:
        zipped = sorted(archive.read(f"{table}.jsonl").decode().splitlines())
        if table not in ("audit_log", "events", "event_counters"):  # the download itself is audited
            assert zipped == sorted((out / f"{table}.jsonl").read_text().splitlines()), table
    actions = [orjson.loads(line)["action"] for line in archive.read("audit_log.jsonl").decode().splitlines()]
    assert "tenant.exported" in actions

    for person in (tenant.supervisor, tenant.agent):
        refused = await (await browsers.signed_in(person)).get("/api/tenant/export")
        assert (refused.status, refused.body["error"]["code"]) == (403, "FORBIDDEN")


PNG = b"\x89PNG\r\n\x1a\n"


async def test_an_export_fetches_the_media_files_and_records_those_meta_no_longer_has(
    database: TestDatabase, db: Database, tenant: TenantPeople, tmp_path: Path
) -> None:
    image = PNG + os.urandom(200_000)  # several chunks, streamed to the file
    async with simulated_world(database, db, tenant, seed=17) as world:
        kept = world.simulator.add_media(image, "image/png", None)
        # An id the simulator never held: Meta answers as for media it no longer keeps.
        messages = [
            {"from": "5511911112222", "id": f"wamid.{uuid.uuid4().hex}", "timestamp": str(int(time.time())),
             "type": kind, kind: content, "_name": "Customer"}
            for kind, content in (
                ("image", {"id": kept, "mime_type": "image/png"}),
                ("document", {"id": "1999999999999999", "mime_type": "application/pdf", "filename": "../x.pdf"}),
            )
        ]  # fmt: skip
        async with aiohttp.ClientSession() as http:
            answer = await post_webhook(http, world.webhook_url, envelope(world.phone_number_id, messages=messages))
        assert answer.status == 200
        async with tenant_tx(db, tenant.id) as conn:
            ids = {
                r["media_id"]: r["id"] for r in await conn.fetch("select id, media->>'id' as media_id from messages")
            }
        assert set(ids) == {kept, "1999999999999999"}

        out = tmp_path / "export"
        env = cli_env(database.owner_url, WHATSAPP_GRAPH_URL=world.settings.whatsapp_graph_url)
        run = await cli("tenant", "export", "--tenant", str(tenant.id), "--out", str(out), "--media", "fetch", env=env)
    assert run.code == 0, run
    assert "media: 1 files fetched, 1 not" in run.stdout

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["media"] == {
        "mode": "fetch", "complete": True, "folder": "media/", "index": "media.jsonl", "references": 2, "fetched": 1,
        "not_fetched": {"NOT_FOUND": 1},
    }  # fmt: skip
    assert "media" not in manifest["left_out"]
    index = {line["media_id"]: line for line in map(orjson.loads, (out / "media.jsonl").read_bytes().splitlines())}
    fetched, gone = index[kept], index["1999999999999999"]
    # Named by the message's id and the type's extension: nothing the customer chose.
    assert fetched["file"] == f"media/{ids[kept]}.png"
    assert fetched["bytes"] == len(image)
    assert (out / fetched["file"]).read_bytes() == image
    assert gone["file"] is None
    assert gone["message_id"] == str(ids["1999999999999999"])
    assert gone["error"]["code"] == "NOT_FOUND"
    assert sorted(p.name for p in (out / "media").iterdir()) == [f"{ids[kept]}.png"]


async def test_a_folder_refusing_a_write_stops_the_export_and_its_manifest_says_so(
    database: TestDatabase, db: Database, tenant: TenantPeople, tmp_path: Path
) -> None:
    limit = 100_000  # far above any table file of this tenant, below each image
    images = [PNG + os.urandom(2 * limit) for _ in range(3)]
    async with simulated_world(database, db, tenant, seed=18) as world:
        media_ids = [world.simulator.add_media(image, "image/png", None) for image in images]
        messages = [
            {"from": "5511911113333", "id": f"wamid.{uuid.uuid4().hex}", "timestamp": str(int(time.time())),
             "type": "image", "image": {"id": media_id, "mime_type": "image/png"}, "_name": "Customer"}
            for media_id in [*media_ids, "1999999999999998"]
        ]  # fmt: skip
        async with aiohttp.ClientSession() as http:
            answer = await post_webhook(http, world.webhook_url, envelope(world.phone_number_id, messages=messages))
        assert answer.status == 200

        out = tmp_path / "export"
        env = cli_env(database.owner_url, WHATSAPP_GRAPH_URL=world.settings.whatsapp_graph_url)
        run = await cli(
            "tenant", "export", "--tenant", str(tenant.id), "--out", str(out), "--media", "fetch",
            env=env, max_file_bytes=limit,
        )  # fmt: skip
    # One line naming the folder and what the system said; no traceback, no success line.
    stopped = f"cannot write into {out / 'media'}: File too large; the export stopped"
    assert run.error(1) == stopped

    # Not one file half written, and the rest of the folder says what it holds.
    assert list((out / "media").iterdir()) == []
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    for table in EXPORTED_TABLES:
        assert len((out / f"{table}.jsonl").read_text().splitlines()) == manifest["tables"][table]["rows"]
    assert manifest["tables"]["messages"]["rows"] == 4
    media = manifest["media"]
    assert (media["mode"], media["complete"], media["stopped"]) == ("fetch", False, stopped)
    assert (media["references"], media["fetched"]) == (4, 0)
    # Only what was done before the stop is recorded: at most the one Meta no longer has.
    index = [orjson.loads(line) for line in (out / "media.jsonl").read_bytes().splitlines()]
    assert [line["media_id"] for line in index] == ["1999999999999998"] * len(index)
    assert media["not_fetched"] == ({"NOT_FOUND": 1} if index else {})


async def test_an_export_refuses_an_unknown_media_mode(database: TestDatabase, tmp_path: Path) -> None:
    out = tmp_path / "export"
    run = await cli(
        "tenant", "export", "--tenant", str(uuid.uuid4()), "--out", str(out), "--media", "everything",
        env=cli_env(database.owner_url),
    )  # fmt: skip
    assert run.code == 2
    assert "--media" in run.stderr
    assert not out.exists()
