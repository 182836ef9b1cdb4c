"""Changing a tenant's own details: its settings (what the assignment engine and the console read), its name
and its time zone, each change written with what it was before.

A change names only what it changes. `TenantSettingsChange` is made from `TenantSettings` itself, so every
setting the engine reads can be changed, with the same limits, and no other key: a field left out stays, an
optional setting (`int | None`, `text | None`) is turned off with `null`, and `null` for one that cannot be
off is refused like any other bad value. Stored keys this version does not know are kept (`settings ||
changes`), so an older instance cannot erase a newer one's setting. The engine reads the tenant at the start
of every round, so a change applies from the next round on every instance, without a restart.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.fields import FieldInfo

from fiv_console.accounts.tenants import Name, Tenant, TenantSettings, check_time_zone, get_tenant
from fiv_console.db.pool import Connection
from fiv_console.errors import NotFound


def _no_default(schema: dict[str, Any]) -> None:
    """Left out means unchanged, not a default value: the schema must not suggest one."""
    schema.pop("default", None)


def _optional_field(info: FieldInfo) -> tuple[Any, FieldInfo]:
    # The default is not validated, so a setting left out reads as None and is not in `model_fields_set`,
    # while an explicit null is checked against the setting's own type (refused where it cannot be off).
    return info.annotation, FieldInfo.merge_field_infos(info, default=None, json_schema_extra=_no_default)


TenantSettingsChange: type[BaseModel] = create_model(
    "TenantSettingsChange",
    __config__=ConfigDict(extra="forbid"),
    __doc__="Settings to change: a field left out stays as it is; `null` turns an optional setting off.",
    **{name: _optional_field(info) for name, info in TenantSettings.model_fields.items()},  # type: ignore[call-overload]
)


class TenantChange(BaseModel):
    """An admin's change to the tenant's name or time zone; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    time_zone: str | None = Field(
        default=None, max_length=64, description="An IANA time zone (Europe/Lisbon): reports and business hours."
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)


class Changed(BaseModel):
    """What a change did: every field whose value differs, with its value before and after."""

    tenant: Tenant
    changes: dict[str, dict[str, Any]]


def _differences(before: dict[str, Any], after: dict[str, Any], names: set[str]) -> dict[str, dict[str, Any]]:
    return {name: {"from": before[name], "to": after[name]} for name in sorted(names) if before[name] != after[name]}


# The row is locked while the change is computed: two admins saving at once apply one after the other, and
# each audit entry's "from" is what the other left.
_LOCK_TENANT_SQL = "select 1 from tenants where id = $1 for no key update"
_MERGE_SETTINGS_SQL = "update tenants set settings = settings || $2::jsonb where id = $1"


async def _locked_tenant(conn: Connection, tenant_id: UUID) -> Tenant:
    await conn.execute(_LOCK_TENANT_SQL, tenant_id)
    tenant = await get_tenant(conn, tenant_id=tenant_id)
    if tenant is None:
        raise NotFound("no such tenant")
    return tenant


async def change_settings(conn: Connection, *, tenant_id: UUID, change: BaseModel) -> Changed:
    """Applies a `TenantSettingsChange` in the caller's transaction; the tenant as it is after."""
    before = await _locked_tenant(conn, tenant_id)
    names = set(change.model_fields_set)
    wanted = change.model_dump(include=names, mode="json")
    # Each value was checked by the change model; the whole is checked again as the engine will read it.
    after = TenantSettings.model_validate({**before.settings.model_dump(), **wanted})
    if names:
        await conn.execute(_MERGE_SETTINGS_SQL, tenant_id, after.model_dump(include=names, mode="json"))
    tenant = before.model_copy(update={"settings": after})
    return Changed(tenant=tenant, changes=_differences(before.settings.model_dump(), after.model_dump(), names))


_UPDATE_TENANT_SQL = """
update tenants set name = coalesce($2, name), time_zone = coalesce($3, time_zone) where id = $1
"""


async def change_tenant(conn: Connection, *, tenant_id: UUID, change: TenantChange) -> Changed:
    """Renames the tenant or moves it to another time zone, in the caller's transaction."""
    before = await _locked_tenant(conn, tenant_id)
    await conn.execute(_UPDATE_TENANT_SQL, tenant_id, change.name, change.time_zone)
    after = before.model_copy(
        update={"name": change.name or before.name, "time_zone": change.time_zone or before.time_zone}
    )
    names = {name for name in change.model_fields_set if getattr(change, name) is not None}
    return Changed(tenant=after, changes=_differences(before.model_dump(), after.model_dump(), names))
