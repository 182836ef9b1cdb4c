"""Tenants: settings are validated when written and read tolerantly (a newer version may add keys)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fiv_console.accounts.tenants import TenantCreate, TenantSettings, create_tenant, get_tenant
from fiv_console.db.pool import Database, tenant_tx


async def test_unknown_settings_are_refused_on_write_and_ignored_on_read(db: Database) -> None:
    with pytest.raises(ValidationError):
        TenantSettings.model_validate({"agents_can_take_waiting": True, "from_the_future": 1})
    with pytest.raises(ValidationError):
        TenantCreate(name="Zoned", time_zone="Mars/Olympus")
    tenant = await create_tenant(db, TenantCreate(name="Lisbon Co", time_zone="Europe/Lisbon"))
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            'update tenants set settings = settings || \'{"from_the_future": 1, "agents_can_take_waiting": false}\''
        )
        read = await get_tenant(conn, tenant_id=tenant.id)
    assert read is not None
    assert read.time_zone == "Europe/Lisbon"
    assert read.settings.agents_can_take_waiting is False
