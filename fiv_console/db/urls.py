"""Connection URL handling: swapping the role or database of a postgresql:// URL, and the server's URL.

The schema owner's URL (`DATABASE_URL`) runs migrations; the server connects as a different role that owns
nothing (`DATABASE_APP_URL`, or `fiv_app` with a password derived from the owner's credentials, which only
whoever holds `DATABASE_URL` can compute).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from fiv_console.settings import Settings

APP_ROLE = "fiv_app"
_PASSWORD_CONTEXT = b"fiv-console server role password v1"


def _require(url: str | None) -> str:
    if not url:
        raise ValueError("no database URL: start the embedded PostgreSQL or set DATABASE_URL")
    return url


def role_of(url: str) -> str:
    """The role a URL logs in as (asyncpg's default, the OS user, is never assumed)."""
    user = urlsplit(url).username
    if not user:
        raise ValueError("the database URL names no user")
    return unquote(user)


def with_role(url: str, role: str, password: str) -> str:
    """The same server and database, logging in as another role."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def with_database(url: str, database: str) -> str:
    """The same server and role, another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(database, safe="")))


def derived_app_password(owner_url: str) -> str:
    """The `fiv_app` password: an HMAC of the owner's own credentials, stable across instances."""
    parts = urlsplit(owner_url)
    secret = f"{unquote(parts.username or '')}\n{unquote(parts.password or '')}".encode()
    return hmac.new(secret, _PASSWORD_CONTEXT, hashlib.sha256).hexdigest()


def owner_url(settings: Settings) -> str:
    return _require(settings.database_url)


def app_url(settings: Settings) -> str:
    """What the server connects with."""
    if settings.database_app_url:
        return settings.database_app_url
    owner = owner_url(settings)
    return with_role(owner, APP_ROLE, derived_app_password(owner))


def app_role(settings: Settings) -> str:
    return role_of(settings.database_app_url) if settings.database_app_url else APP_ROLE
