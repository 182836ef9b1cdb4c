"""Every bus channel's name, in one place: one channel per tenant, so a tenant's messages never reach an
instance that serves none of its people, and never another tenant's sockets."""

from __future__ import annotations

from uuid import UUID

PREFIX = "fiv"


def tenant_channel(tenant_id: UUID) -> str:
    """Events, typing, session and access changes of one tenant."""
    return f"{PREFIX}:tenant:{tenant_id}"
