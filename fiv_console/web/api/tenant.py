"""The caller's own tenant: its name and time zone, and the settings the assignment engine and the console
read. Staff read them (supervisors run the queues the settings act on); only admins change them, and each
change is audited with every value before and after, and announced to the tenant's open consoles
(`tenant.updated`: what the console shows of the tenant, as `GET /api/me` does)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from fiv_console.access import Audience
from fiv_console.accounts import tenant_settings
from fiv_console.accounts.tenant_settings import TenantChange, TenantSettingsChange
from fiv_console.accounts.tenants import Tenant, TenantSettings, get_tenant
from fiv_console.errors import NotFound
from fiv_console.web.api.routing import ADMIN, STAFF, ApiCall, NoInput, RouteTable

routes = RouteTable()


async def _own_tenant(call: ApiCall[NoInput, NoInput]) -> Tenant:
    tenant = await get_tenant(call.conn, tenant_id=call.caller.tenant_id)
    if tenant is None:
        raise NotFound("no such tenant")
    return tenant


# What the console shows of the tenant (`GET /api/me`): a change to anything else is not announced.
_SHOWN = frozenset({"name", "time_zone", "agents_can_take_waiting"})


def _announce(call: ApiCall[Any, NoInput], tenant: Tenant, changes: dict[str, Any]) -> None:
    if _SHOWN.isdisjoint(changes):
        return
    payload = {
        "tenant_name": tenant.name,
        "time_zone": tenant.time_zone,
        "agents_can_take_waiting": tenant.settings.agents_can_take_waiting,
    }
    call.events.add("tenant.updated", Audience.everyone(), conversation_id=None, payload=payload)


@routes.route("GET", "/api/tenant", roles=STAFF, summary="Your tenant", tag="tenant", response=Tenant)
async def get_own_tenant(call: ApiCall[NoInput, NoInput]) -> Tenant:
    return await _own_tenant(call)


@routes.route(
    "PATCH", "/api/tenant", roles=ADMIN, summary="Rename your tenant or change its time zone", tag="tenant",
    body=TenantChange, response=Tenant,
)  # fmt: skip
async def change_own_tenant(call: ApiCall[TenantChange, NoInput]) -> Tenant:
    tenant_id = call.caller.tenant_id
    changed = await tenant_settings.change_tenant(call.conn, tenant_id=tenant_id, change=call.body)
    if changed.changes:
        await call.audit("tenant.changed", "tenant", tenant_id, {"changes": changed.changes})
        _announce(call, changed.tenant, changed.changes)
    return changed.tenant


@routes.route(
    "GET", "/api/tenant/settings", roles=STAFF, summary="Your tenant's settings", tag="tenant",
    response=TenantSettings,
)  # fmt: skip
async def get_tenant_settings(call: ApiCall[NoInput, NoInput]) -> TenantSettings:
    return (await _own_tenant(call)).settings


@routes.route(
    "PATCH", "/api/tenant/settings", roles=ADMIN,
    summary="Change settings (left out: unchanged; `null` turns an optional one off); answers them all",
    tag="tenant", body=TenantSettingsChange, response=TenantSettings,
)  # fmt: skip
async def change_tenant_settings(call: ApiCall[BaseModel, NoInput]) -> TenantSettings:
    tenant_id = call.caller.tenant_id
    changed = await tenant_settings.change_settings(call.conn, tenant_id=tenant_id, change=call.body)
    if changed.changes:
        await call.audit("tenant.settings_changed", "tenant", tenant_id, {"changes": changed.changes})
        _announce(call, changed.tenant, changed.changes)
    return changed.tenant.settings
