"""Browser sessions and API callers: who is asking, for which tenant, as what role.

Sessions live in an encrypted, signed cookie (aiohttp-session with Fernet, keyed from SECRET_KEY): no
session store, so every instance can read them. What the cookie cannot do alone, the database does: each
request re-reads the user's `session_version`, role and disabled flag inside the request's transaction,
so a logout, password change, disable or role change ends every session at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import aiohttp_session
from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning
from aiohttp_session import Session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography import fernet

from fiv_console.accounts import sign_in as accounts
from fiv_console.accounts import tokens
from fiv_console.accounts.audit import Actor
from fiv_console.accounts.users import Role
from fiv_console.constants import CSRF_HEADER, SESSION_COOKIE
from fiv_console.db.pool import Connection, Database
from fiv_console.errors import Forbidden, Unauthenticated
from fiv_console.observability.context import request_id_var
from fiv_console.settings import Settings

# aiohttp-session keeps its state under string request keys, which aiohttp 3.14 flags; harmless.
warnings.filterwarnings("ignore", category=NotAppKeyWarning, module="aiohttp_session")

log = logging.getLogger(__name__)

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Refreshing `seen` rewrites the cookie; once a minute keeps idle expiry accurate without a cookie per call.
_SEEN_REFRESH_SECONDS = 60


def session_cipher(settings: Settings) -> fernet.Fernet:
    """The cookie's cipher: a key of its own derived from SECRET_KEY, so the secret itself is never the key."""
    assert settings.secret_key is not None
    secret = settings.secret_key.get_secret_value().encode()
    return fernet.Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"fiv-console session cookie\0" + secret).digest()))


# How many cookies' contents are remembered (`RememberingCookieStorage`): a few hundred bytes each.
REMEMBERED_COOKIES = 4096


class RememberingCookieStorage(EncryptedCookieStorage):
    """aiohttp-session's encrypted cookie storage, remembering what the latest cookies decrypted to.

    A browser sends the same cookie with every call until the session changes it (at most once a minute,
    `_SEEN_REFRESH_SECONDS`), and verifying and decrypting it was about a tenth of a list call's CPU. A cookie's
    content is fixed by its bytes and the key, so only its age is checked again: the same rule as Fernet's
    (`issued + max_age < now` refuses it). Nothing about who may still use the session is remembered: that
    is read from the database on every call (`confirm`)."""

    def __init__(self, cipher: fernet.Fernet, *, max_age: int, **cookie: Any) -> None:
        super().__init__(cipher, max_age=max_age, **cookie)
        self._cipher = cipher
        self._ttl = max_age
        self._remembered: dict[str, tuple[int, str]] = {}

    async def load_session(self, request: web.Request) -> aiohttp_session.Session:
        cookie = self.load_cookie(request)
        if cookie is None:
            return aiohttp_session.Session(None, data=None, new=True, max_age=self._ttl)
        remembered = self._remembered.get(cookie)
        if remembered is None:
            try:
                plain = self._cipher.decrypt(cookie.encode(), ttl=self._ttl).decode()
            except fernet.InvalidToken:
                log.warning("Cannot decrypt cookie value, create a new fresh session")
                return aiohttp_session.Session(None, data=None, new=True, max_age=self._ttl)
            issued = int.from_bytes(base64.urlsafe_b64decode(cookie)[1:9], "big")
            if len(self._remembered) >= REMEMBERED_COOKIES:
                del self._remembered[next(iter(self._remembered))]
            remembered = self._remembered[cookie] = (issued, plain)
        issued, plain = remembered
        if issued + self._ttl < int(time.time()):
            del self._remembered[cookie]
            return aiohttp_session.Session(None, data=None, new=True, max_age=self._ttl)
        return aiohttp_session.Session(None, data=self._decoder(plain), new=False, max_age=self._ttl)

    async def save_session(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        """Marked `Secure` with COOKIE_SECURE and also whenever the request came over HTTPS, directly or as a
        trusted proxy says (`forwarded.py` has set the scheme by then): a cookie sent over HTTPS once must
        never be sent back over plain HTTP."""
        await super().save_session(request, response, session)
        if request.secure and self.cookie_name in response.cookies:
            response.cookies[self.cookie_name]["secure"] = True


def setup_sessions(app: web.Application, settings: Settings) -> None:
    storage = RememberingCookieStorage(
        session_cipher(settings),
        cookie_name=SESSION_COOKIE,
        max_age=settings.session_max_hours * 3600,
        httponly=True,
        samesite="Lax",
        secure=settings.cookie_secure,
    )
    aiohttp_session.setup(app, storage)


@dataclass(frozen=True, slots=True)
class Caller:
    """A signed-in user (browser session) or an API token, confirmed against the database."""

    tenant_id: UUID
    role: Role
    via: Literal["session", "token"]
    user_id: UUID | None
    token_id: UUID | None
    client_address: str | None

    @property
    def actor(self) -> Actor:
        if self.via == "token":
            return Actor("token", self.token_id, self.client_address, request_id_var.get())
        return Actor("user", self.user_id, self.client_address, request_id_var.get())


@dataclass(frozen=True, slots=True)
class Claim:
    """Who the request says it is, before the database confirms it."""

    tenant_id: UUID
    via: Literal["session", "token"]
    subject_id: UUID
    session_version: int = 0
    csrf_token: str = ""
    # When the session began (Unix seconds); 0 for an API token.
    issued_at: int = 0


async def start_session(request: web.Request, signed_in: accounts.SignedIn) -> str:
    """A brand-new session (never the pre-login one: no fixation); returns its CSRF token."""
    session = await aiohttp_session.new_session(request)
    now = int(time.time())
    csrf = secrets.token_urlsafe(32)
    session.update(
        {
            "sid": secrets.token_urlsafe(16),
            "tid": str(signed_in.tenant_id),
            "uid": str(signed_in.user_id),
            "ver": signed_in.session_version,
            "csrf": csrf,
            "iat": now,
            "seen": now,
        }
    )
    return csrf


async def end_session(request: web.Request) -> None:
    session = await aiohttp_session.get_session(request)
    session.invalidate()


async def csrf_token(request: web.Request) -> str | None:
    session = await aiohttp_session.get_session(request)
    token = session.get("csrf")
    return token if isinstance(token, str) else None


async def _session_claim(request: web.Request, settings: Settings) -> Claim | None:
    session = await aiohttp_session.get_session(request)
    if session.new or "uid" not in session:
        return None
    now = int(time.time())
    try:
        claim = Claim(
            tenant_id=UUID(session["tid"]),
            via="session",
            subject_id=UUID(session["uid"]),
            session_version=int(session["ver"]),
            csrf_token=str(session["csrf"]),
            issued_at=int(session["iat"]),
        )
        issued, seen = int(session["iat"]), int(session["seen"])
    except (KeyError, ValueError, TypeError):
        session.invalidate()
        return None
    if now - issued > settings.session_max_hours * 3600 or now - seen > settings.session_idle_minutes * 60:
        session.invalidate()
        raise Unauthenticated("the session has expired: sign in again")
    if now - seen >= _SEEN_REFRESH_SECONDS:
        session["seen"] = now
    return claim


def bearer_token(request: web.Request) -> str | None:
    """The secret of `Authorization: Bearer <secret>` ("" when the scheme is Bearer but nothing follows).

    Other schemes (a proxy's Basic credentials, say) are not ours: the request is judged by its cookie.
    """
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else None


async def _token_claim(db: Database, secret: str) -> Claim:
    if not secret:
        raise Unauthenticated("the Authorization header must be `Bearer <api token>`")
    found = await tokens.authenticate(db, secret=secret)
    if found is None:
        raise Unauthenticated("the API token is not valid")
    return Claim(tenant_id=found[0], via="token", subject_id=found[1])


async def claim_of(request: web.Request, db: Database, settings: Settings) -> Claim:
    """Who the request claims to be, from `Authorization: Bearer` or the session cookie; 401 if nobody."""
    secret = bearer_token(request)
    claim = await _token_claim(db, secret) if secret is not None else await _session_claim(request, settings)
    if claim is None:
        raise Unauthenticated("sign in first")
    return claim


async def confirm(request: web.Request, conn: Connection, claim: Claim) -> Caller:
    """Inside the claimed tenant's transaction: is the user or token still live, with which role, and does
    a cookie-authenticated change carry the session's CSRF token?"""
    if claim.via == "token":
        role = await tokens.token_role(conn, token_id=claim.subject_id)
        if role is None:
            raise Unauthenticated("the API token is not valid")
        return Caller(claim.tenant_id, role, "token", None, claim.subject_id, request.remote)
    return await confirm_session(request, claim, await accounts.live_user(conn, user_id=claim.subject_id))


async def confirm_session(request: web.Request, claim: Claim, user: accounts.LiveUser | None) -> Caller:
    """`confirm` for a session, its user read already in the tenant's transaction (`tenant_tx_reading` with
    `accounts.LIVE_USER_WITH_TENANT_SQL`)."""
    if user is None or user.disabled or user.session_version != claim.session_version:
        await end_session(request)
        raise Unauthenticated("the session has ended: sign in again")
    if request.method not in _SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), claim.csrf_token.encode()):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header")
    return Caller(claim.tenant_id, user.role, "session", claim.subject_id, None, request.remote)
