"""The audit log (admins): newest first, filtered by action or actor."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from fiv_console import audit
from fiv_console.audit import AuditEntry
from fiv_console.text import NO_NUL
from fiv_console.web.api.routing import ADMIN, ApiCall, NoInput, Page, PageQuery, RouteTable

routes = RouteTable()


class AuditQuery(PageQuery):
    action: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL)
    actor_id: UUID | None = None


@routes.route(
    "GET", "/api/audit-log", roles=ADMIN, summary="Audit log entries", tag="audit", query=AuditQuery,
    response=list[AuditEntry], paginated=True,
)  # fmt: skip
async def list_audit_log(call: ApiCall[NoInput, AuditQuery]) -> Page[AuditEntry]:
    query = call.query
    items, total = await audit.list_entries(
        call.conn, action=query.action, actor_id=query.actor_id, limit=query.limit, offset=query.offset
    )
    return Page(items, total, query)
