"""Tenants: the companies sharing one deployment, each with its workspace (the slug people sign in with),
its time zone and validated settings."""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from fiv_console.db.pool import Connection, Database, tenant_tx
from fiv_console.errors import Conflict
from fiv_console.text import NO_NUL

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)]

SLUG_MAX_LENGTH = 40
# Lower-case letters, digits and hyphens, neither first nor last (sql/0008 checks the same).
_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


def _check_slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            f"must be 1 to {SLUG_MAX_LENGTH} lower-case letters, digits and hyphens, starting and ending with a "
            "letter or digit"
        )
    return value


# Typed by people: surrounding spaces and capitals are forgiven.
Slug = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=SLUG_MAX_LENGTH),
    AfterValidator(_check_slug),
]


_ACCENTS = re.compile("[\u0300-\u036f]")


def slug_from_name(name: str) -> str:
    """`Café Lisboa, Lda.` -> `cafe-lisboa-lda`: accents dropped, anything else but ASCII letters and digits
    becoming one hyphen (the rule sql/0008 applied to existing tenants)."""
    unaccented = _ACCENTS.sub("", unicodedata.normalize("NFKD", name))
    base = re.sub(r"[^a-z0-9]+", "-", unaccented.lower()).strip("-")
    return base[:SLUG_MAX_LENGTH].rstrip("-") or "workspace"


def _numbered(base: str, suffix: str) -> str:
    return f"{base[: SLUG_MAX_LENGTH - len(suffix) - 1].rstrip('-')}-{suffix}"


ReplyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096, pattern=NO_NUL)]


class TenantSettings(BaseModel):
    """Behaviour a tenant chooses; stored as JSON, validated on every read and write."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agents_can_take_waiting: bool = Field(
        default=True, description="Agents may pick a waiting conversation of their queues themselves."
    )
    offline_conversations: Literal["keep", "requeue"] = Field(
        default="requeue", description="What happens to an agent's open conversations when they go offline."
    )
    requeue_after_seconds: int = Field(
        default=0,
        ge=0,
        le=86_400,
        description="How long an agent may stay away before their conversations go back to the queue (with `requeue`).",
    )
    unanswered_reroute_seconds: int | None = Field(
        default=None, ge=30, le=86_400, description="Re-route an assigned conversation left unanswered."
    )
    inactivity_close_seconds: int | None = Field(
        default=None, ge=300, le=30 * 86_400, description="Close an open conversation nobody wrote in for this long."
    )
    inactivity_close_message: ReplyText | None = Field(
        default=None, description="Sent to the customer when a conversation is closed for inactivity."
    )
    prefer_last_agent: bool = Field(
        default=False, description="Give a returning customer to the agent of their last conversation if available."
    )
    queue_position_reply: ReplyText | None = Field(
        default=None,
        description="Sent once to a customer left waiting; {position} and {wait} are their place in the line "
        "and the estimated wait.",
    )
    priority_rise_seconds: int | None = Field(
        default=None, ge=10, le=86_400, description="A waiting conversation's priority rises by one every so long."
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="Delete closed conversations, with their messages and notes, this many days after they "
        "closed; unset: keep them.",
    )


def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Europe/Lisbon") from None
    return value


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    slug: Slug | None = Field(default=None, description="The workspace; unset: made from the name.")
    time_zone: str = Field(default="UTC", max_length=64)
    settings: TenantSettings = TenantSettings()

    _zone = field_validator("time_zone")(check_time_zone)


class Tenant(BaseModel):
    id: UUID
    name: str
    slug: str
    time_zone: str
    settings: TenantSettings
    created_at: datetime

    @field_validator("settings", mode="before")
    @classmethod
    def _known_settings_only(cls, stored: object) -> object:
        """Settings are refused with unknown keys when written, but a key stored by a newer version (or by
        hand) must not make every read of the tenant fail: reading keeps the keys this version knows."""
        if isinstance(stored, dict):
            return {key: value for key, value in stored.items() if key in TenantSettings.model_fields}
        return stored


_INSERT_TENANT_SQL = """
insert into tenants (id, name, slug, time_zone, settings)
values ($1, $2, $3, $4, $5)
returning id, name, slug, time_zone, settings, created_at
"""
# Slugs made from a name are tried as is, then numbered, then with a random suffix: the other tenants'
# slugs are out of sight (row-level security), so a taken one shows only as a refused insert.
_NUMBERED_TRIES = 8
_RANDOM_TRIES = 4


def _slug_candidates(data: TenantCreate) -> list[str]:
    if data.slug is not None:
        return [data.slug]
    base = slug_from_name(data.name)
    numbered = [_numbered(base, str(n)) for n in range(2, 2 + _NUMBERED_TRIES)]
    return [base, *numbered, *(_numbered(base, secrets.token_hex(3)) for _ in range(_RANDOM_TRIES))]


async def create_tenant(db: Database, data: TenantCreate) -> Tenant:
    """A new tenant; its id is chosen here so the row can be written inside its own tenant context.

    A slug that was asked for and is taken is a Conflict; one made from the name is made unique.
    """
    tenant_id = uuid4()
    for slug in _slug_candidates(data):
        try:
            async with tenant_tx(db, tenant_id) as conn:
                row = await conn.fetchrow(
                    _INSERT_TENANT_SQL, tenant_id, data.name, slug, data.time_zone, data.settings.model_dump()
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "tenants_slug_key":
                raise
            continue
        return Tenant.model_validate(dict(row or {}))
    raise Conflict(f"the workspace {data.slug or slug_from_name(data.name)} is taken: choose another with --slug")


_GET_TENANT_SQL = "select id, name, slug, time_zone, settings, created_at from tenants where id = $1"


async def get_tenant(conn: Connection, *, tenant_id: UUID) -> Tenant | None:
    row = await conn.fetchrow(_GET_TENANT_SQL, tenant_id)
    return Tenant.model_validate(dict(row)) if row else None


# The reviewed lookups (0020): the tenants background work has something to do in.
_WITH_OPEN_CONVERSATIONS_SQL = "select tenants_with_open_conversations()"
_WITH_PRESENCE_SQL = "select tenants_with_presence()"


async def tenants_with_open_conversations(db: Database) -> list[UUID]:
    """The tenants with a waiting or assigned conversation: all the assignment sweep has work in."""
    async with db.connection() as conn:
        return [r[0] for r in await conn.fetch(_WITH_OPEN_CONVERSATIONS_SQL)]


async def tenants_with_presence(db: Database) -> list[UUID]:
    """The tenants where someone is connected, or was within the grace period: all the presence sweep has
    work in."""
    async with db.connection() as conn:
        return [r[0] for r in await conn.fetch(_WITH_PRESENCE_SQL)]


_WITH_EVENTS_BEFORE_SQL = "select tenants_with_events_before($1)"
_WITH_RETENTION_SQL = "select tenants_with_retention()"


async def tenants_with_events_before(db: Database, before: datetime) -> list[UUID]:
    """The tenants whose event log holds an event older than `before`: all the log's pruning has work in."""
    async with db.connection() as conn:
        return [r[0] for r in await conn.fetch(_WITH_EVENTS_BEFORE_SQL, before)]


async def tenants_with_retention(db: Database) -> list[UUID]:
    """The tenants that set `retention_days`."""
    async with db.connection() as conn:
        return [r[0] for r in await conn.fetch(_WITH_RETENTION_SQL)]


# The reviewed lookup (0008): a deployment with exactly one tenant does not ask people for the workspace.
_SOLE_WORKSPACE_SQL = "select sole_workspace()"


async def sole_workspace(conn: Connection) -> str | None:
    """The only tenant's slug, before any tenant is set; None when there are several (or none)."""
    slug: str | None = await conn.fetchval(_SOLE_WORKSPACE_SQL)
    return slug
