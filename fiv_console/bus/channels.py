"""Every bus channel's name, in one place: one channel per tenant, so a tenant's messages never reach an
instance that serves none of its people, and never another tenant's sockets."""

from __future__ import annotations

from uuid import UUID

PREFIX = "fiv"


def tenant_channel(tenant_id: UUID) -> str:
    """Events, typing, session and access changes of one tenant."""
    return f"{PREFIX}:tenant:{tenant_id}"


def tenant_of(channel: str) -> UUID:
    """The tenant whose channel this is; ValueError for a name not made by `tenant_channel`."""
    prefix = f"{PREFIX}:tenant:"
    if not channel.startswith(prefix):
        raise ValueError(f"not a tenant channel: {channel!r}")
    return UUID(channel.removeprefix(prefix))
