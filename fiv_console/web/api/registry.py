"""Every operation of the REST API: the route tables of the resource modules, in one list."""

from __future__ import annotations

from aiohttp import web

from fiv_console.web.api import (
    audit_log,
    auth,
    canned_responses,
    channels,
    contacts,
    conversations,
    labels,
    media,
    messages,
    queues,
    reports,
    templates,
    tenant,
    tenant_export,
    tokens,
    users,
    wallboard,
)
from fiv_console.web.api.routing import Operation, RouteTable

ROUTE_TABLES: tuple[RouteTable, ...] = (
    auth.routes,
    users.routes,
    queues.routes,
    channels.routes,
    contacts.routes,
    conversations.routes,
    messages.routes,
    templates.routes,
    media.routes,
    canned_responses.routes,
    labels.routes,
    tokens.routes,
    audit_log.routes,
    tenant.routes,
    tenant_export.routes,
    wallboard.routes,
    reports.routes,
)


def operations() -> list[Operation]:
    return [operation for table in ROUTE_TABLES for operation in table.operations]


def install(app: web.Application) -> None:
    for table in ROUTE_TABLES:
        table.install(app)
