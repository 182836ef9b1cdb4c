"""The audit log (admins): newest first, filtered by action, actor or kind of actor (people, tokens)."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from fiv_console.accounts import audit
from fiv_console.accounts.audit import ActorKind, AuditEntry
from fiv_console.text import NO_NUL
from fiv_console.web.api.routing import ADMIN, ApiCall, NoInput, Page, PageQuery, RouteTable

routes = RouteTable()


class AuditQuery(PageQuery):
    action: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL)
    actor_id: UUID | None = None
    actor_kind: ActorKind | None = Field(default=None, description="`token`: what integrations did.")


@routes.route(
    "GET", "/api/audit-log", roles=ADMIN, summary="Audit log entries", tag="audit", query=AuditQuery,
    response=list[AuditEntry], paginated=True,
)  # fmt: skip
async def list_audit_log(call: ApiCall[NoInput, AuditQuery]) -> Page[AuditEntry]:
    query = call.query
    items, total = await audit.list_entries(
        call.conn,
        action=query.action,
        actor_id=query.actor_id,
        actor_kind=query.actor_kind,
        limit=query.limit,
        offset=query.offset,
    )
    return Page(items, total, query)
