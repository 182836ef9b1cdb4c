"""`GET /api/tenant/export` (admins): the caller's tenant as a zip of JSON lines, the same files as
`fiv-console tenant export`, compressed and sent while the tables are read (a million messages are never
held in memory). Media goes by reference only: fetching the files from Meta could keep one request open for
hours, so `tenant export --media fetch` is the way to have them."""

from __future__ import annotations

import logging
import zipfile

import orjson
from aiohttp import web

from fiv_console.accounts import tenant_data
from fiv_console.db.migrations import schema_versions
from fiv_console.keys import database_key
from fiv_console.web.api.routing import ADMIN, ApiCall, NoInput, RouteTable

log = logging.getLogger(__name__)
routes = RouteTable()

# Compressed bytes are sent on once this many have gathered.
_SEND_AT = 256 * 1024


class _Outbox:
    """Where the zip writes: chunks gathered until the handler sends them (a stream with no `tell`, so
    `zipfile` writes each member's sizes after it, as streamed zips do)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: the handler takes the chunks."""

    def close(self) -> None:
        """Nothing to close: the handler sends what is left."""

    def take(self) -> bytes:
        taken, self._chunks, self.size = b"".join(self._chunks), [], 0
        return taken


@routes.route(
    "GET", "/api/tenant/export", roles=ADMIN,
    summary="Export the tenant: a zip of JSON lines, one file per table (credentials left out), streamed",
    tag="tenant", transaction=False, file_answer=True,
)  # fmt: skip
async def export_tenant(call: ApiCall[NoInput, NoInput]) -> web.StreamResponse:
    request, tenant_id = call.request, call.caller.tenant_id
    async with call.transaction() as conn:
        await call.audit("tenant.exported", "tenant", tenant_id, conn=conn)
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="tenant-{tenant_id}.zip"',
            "Cache-Control": "no-store",
        }
    )
    outbox = _Outbox()
    try:
        async with tenant_data.export_snapshot(request.app[database_key], tenant_id) as conn:
            await response.prepare(request)
            counts: dict[str, int] = {}
            with zipfile.ZipFile(outbox, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                async for table in tenant_data.export_tables(conn, tenant_id=tenant_id):
                    counts[table.table] = 0
                    with archive.open(f"{table.table}.jsonl", "w", force_zip64=True) as member:
                        async for line in table.lines:
                            member.write(line.encode() + b"\n")
                            counts[table.table] += 1
                            if outbox.size >= _SEND_AT:
                                await response.write(outbox.take())
                version, _ = await schema_versions(conn)
                document = tenant_data.manifest(tenant_id=tenant_id, counts=counts, schema_version=version)
                archive.writestr("manifest.json", orjson.dumps(document, option=orjson.OPT_INDENT_2))
        await response.write(outbox.take())
    except (ConnectionError, OSError) as exc:
        log.warning("a tenant export broke off while it was being sent", extra={"error": type(exc).__name__})
        # Cut before the end: an ended chunked body would look like a whole archive.
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
