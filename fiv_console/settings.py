"""The one settings class: every environment variable the server reads, validated at start-up."""

from __future__ import annotations

import os
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Network = IPv4Network | IPv6Network


def _parse_networks(value: object) -> object:
    """`127.0.0.1, 10.0.0.0/8, ::1`: IP addresses or networks separated by commas, each one checked."""
    if not isinstance(value, str):
        return value
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    networks: list[Network] = []
    for number, entry in enumerate(entries, start=1):
        try:
            networks.append(ip_network(entry))
        except ValueError:
            raise ValueError(
                f"entry {number} is not an IP address or a network (written like 10.0.0.0/8, host bits zero)"
            ) from None
    return tuple(networks)


def _check_postgres_url(value: str | None) -> str | None:
    """Accept postgres:// or postgresql:// URLs with a host (TCP or `?host=/socket/dir`)."""
    if value is None or value == "":
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ValueError("must be a postgresql:// URL") from exc
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("must be a postgresql:// URL")
    if not parts.hostname and "host" not in parse_qs(parts.query):
        raise ValueError("must name a host (postgresql://user:password@host:5432/database)")
    return value


class Settings(BaseSettings):
    """Configuration from the environment (12-factor names; see README's configuration table)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        repr=False,
        description="PostgreSQL URL of the schema owner (migrations); unset: embedded PostgreSQL.",
    )
    database_app_url: str | None = Field(
        default=None,
        repr=False,
        description="URL the server connects with (a role that owns nothing, no BYPASSRLS); "
        "unset: derived from DATABASE_URL with the role `fiv_app` that `migrate` manages.",
    )
    redis_url: str | None = Field(default=None, repr=False, description="Redis URL; unset: in-process bus.")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    secret_key: SecretStr | None = Field(default=None, description="Signs and encrypts sessions (16+ characters).")
    metrics_token: SecretStr | None = Field(
        default=None, description="When set, GET /metrics asks for `Authorization: Bearer <it>`; unset, it is open."
    )
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_graph_url: str = Field(
        default="https://graph.facebook.com/v23.0", description="Graph API base URL, version included."
    )
    whatsapp_rate_per_second: float = Field(
        default=80.0, gt=0, le=1000, description="Messages per second per business number (Meta's default 80)."
    )
    whatsapp_verify_numbers: bool = Field(
        default=True,
        description="Connecting a number through the API first asks WhatsApp to confirm the access token may use "
        "it: without that, any tenant could claim any number and receive its customers' messages.",
    )
    whatsapp_send_timeout: float = Field(
        default=15.0, gt=0, le=120, description="Seconds a send may take, retries included, before it fails."
    )
    media_max_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1024 * 1024,
        le=100 * 1024 * 1024,
        description="Largest media file fetched from or uploaded to WhatsApp (Meta's own limit: 100 MB).",
    )
    event_retention_days: int = Field(
        default=7, ge=1, le=365, description="Days the event log keeps events for reconnecting consoles."
    )
    presence_grace_seconds: float = Field(
        default=30.0, ge=1, le=3600, description="An agent without a console socket this long is not connected."
    )
    ws_heartbeat_seconds: float = Field(
        default=20.0, ge=1, le=300, description="Console socket ping interval; a silent peer is dropped after it."
    )
    ws_send_queue: int = Field(
        default=1000, ge=10, le=100_000, description="Frames queued for one console socket before it is closed."
    )
    ws_max_sockets_per_user: int = Field(default=10, ge=1, le=1000, description="Open consoles per user and instance.")
    public_url: str | None = Field(
        default=None,
        description="The console's address as browsers reach it (https://console.example.com). Console sockets "
        "must come from this origin; unset, from the address the request names (behind a proxy that ends TLS, "
        "the server sees http, so set it there).",
    )
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = Field(
        default=(),
        description="Reverse proxies (IP addresses or networks, separated by commas) whose X-Forwarded-For and "
        "X-Forwarded-Proto name the client's address and scheme; empty: no forwarded header is believed.",
    )
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "text"] | None = Field(
        default=None,
        description="json: one object per line; text: short lines for a person. Unset: text for the demo and the "
        "admin commands at a terminal, json for `serve` and anything not at a terminal.",
    )
    cookie_secure: bool = False
    fiv_data_dir: Path = Path(".fiv-data")
    db_pool_min_size: int = Field(default=2, ge=0, le=100)
    db_pool_max_size: int = Field(default=20, ge=1, le=500)
    db_acquire_timeout: float = Field(default=5.0, gt=0, le=300)
    db_command_timeout: float = Field(default=30.0, gt=0, le=3600)
    shutdown_timeout: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="Seconds from SIGTERM or Ctrl-C to the end of the process: requests in flight finish, console "
        "sockets close with 1012, then the loops and pools; past it the process stops at once.",
    )
    session_idle_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60, description="Signed out after this idle.")
    session_max_hours: int = Field(default=12, ge=1, le=30 * 24, description="Signed out this long after login.")
    login_failures_per_account_and_address: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Failed sign-ins on one account from one address per 15 minutes; then that address is "
        "refused for that account until the window ends.",
    )
    login_failures_per_address: int = Field(
        default=50,
        ge=1,
        le=100_000,
        description="Failed sign-ins from one address, whatever the accounts, per 15 minutes; then the address "
        "is refused until the window ends.",
    )
    login_account_delay_after: int = Field(
        default=5,
        ge=1,
        le=10_000,
        description="Failed sign-ins on one account, from anywhere, per 15 minutes before each further attempt "
        "on it waits (never refused).",
    )
    login_account_delay_max_seconds: float = Field(
        default=3.0, ge=0, le=10, description="The longest such wait; it starts at 0.25 s and doubles per failure."
    )
    header_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="A connection must send a request's complete headers this soon after connecting or after "
        "its previous answer, or it is closed (slow or idle clients hold no connection longer).",
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="A request body that is read whole must arrive within this."
    )
    upload_idle_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="A streamed upload that sends nothing for this long is cut off."
    )
    unauthenticated_bodies_at_once: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="Bodies of callers that have proven nothing yet (webhooks, sign-in) read at once, per route.",
    )
    unauthenticated_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=4 * 1024 * 1024,
        le=1024 * 1024 * 1024,
        description="Bytes of such bodies held at once, per route, counted as they arrive.",
    )
    unauthenticated_share_per_address: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="The part of those two budgets one client address (IPv6: one /64) may take (behind a proxy, "
        "the address is the client's only when the proxy is in TRUSTED_PROXIES).",
    )
    unauthenticated_body_grace_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="Such a body must start arriving within this of its headers; each byte then buys it "
        "1/UNAUTHENTICATED_BODY_MIN_BYTES_PER_SECOND seconds more (BODY_TIMEOUT_SECONDS still bounds the whole).",
    )
    unauthenticated_body_min_bytes_per_second: int = Field(
        default=16 * 1024,
        ge=1,
        le=100 * 1024 * 1024,
        description="The average rate such a body must keep up after its grace period.",
    )

    @field_validator("database_url", "database_app_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        return _check_postgres_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("public_url")
    @classmethod
    def _origin_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValueError("must be an origin like https://console.example.com (no path)")
        return f"{parts.scheme}://{parts.netloc}".lower()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        return _parse_networks(value)

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        return value.strip().lower() or None if isinstance(value, str) else value


class ConfigError(Exception):
    """A setting has a wrong value; the message names the variable and never echoes the value."""


# Variables an earlier release read, with what replaced them: a setting that quietly stopped applying would
# loosen what the operator set (login throttling above all), so a start with one of them set is refused.
RETIRED_VARIABLES = {
    "LOGIN_ATTEMPTS_PER_ACCOUNT": "LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS and LOGIN_ACCOUNT_DELAY_AFTER",
    "LOGIN_ATTEMPTS_PER_ADDRESS": "LOGIN_FAILURES_PER_ADDRESS",
}


def load_settings(**overrides: object) -> Settings:
    """Read the environment, turning pydantic's report into one line that names the variable."""
    for name in sorted(os.environ):
        if (retired := name.upper()) in RETIRED_VARIABLES:
            raise ConfigError(
                f"{retired}: no longer read (sign-in throttling counts failures only): use {RETIRED_VARIABLES[retired]}"
            ) from None
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else "settings"
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more)" if more else ""
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{variable}: {message}{suffix}") from None
