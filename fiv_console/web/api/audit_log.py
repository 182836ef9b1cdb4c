"""The audit log (admins): newest first, filtered by action, actor, kind of actor (people, tokens) and time."""

from __future__ import annotations

from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from fiv_console.accounts import audit
from fiv_console.accounts.audit import ActorKind, AuditEntry
from fiv_console.text import NO_NUL
from fiv_console.web.api.routing import ADMIN, ApiCall, NoInput, Page, PageQuery, RouteTable

routes = RouteTable()


class AuditQuery(PageQuery):
    action: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL)
    actor_id: UUID | None = None
    actor_kind: ActorKind | None = Field(default=None, description="`token`: what integrations did.")
    since: AwareDatetime | None = Field(default=None, description="Entries from this moment on (RFC 3339).")
    until: AwareDatetime | None = Field(default=None, description="Entries before this moment (RFC 3339).")

    @model_validator(mode="after")
    def _ordered(self) -> AuditQuery:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


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
        since=query.since,
        until=query.until,
        limit=query.limit,
        offset=query.offset,
    )
    return Page(items, total, query)
