"""Server-rendered pages (aiohttp-jinja2 templates; autoescaped, no inline scripts): the signed-in pages
with their navigation by role, the sign-in form, and the console's own 404 for any other address.

The pages carry no user data: their ES modules in `static/` fetch it from `/api` and put it in with
`textContent`, so a name or message holding markup can never run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from fiv_console.access import STAFF_ROLES
from fiv_console.accounts import tenants
from fiv_console.accounts.users import ROLES, Role
from fiv_console.db.pool import tenant_tx
from fiv_console.errors import Unauthenticated, Unavailable
from fiv_console.keys import database_key, settings_key
from fiv_console.web.sessions import Caller, bearer_token, claim_of, confirm

_RETRY_AFTER_SECONDS = "5"


async def _live_caller(request: web.Request) -> Caller | None:
    """The person of a browser session the database still honours: the user exists, is not disabled, and the
    session's version is current (so a logout elsewhere, a password or role change, or disabling ends it here
    too). None for anybody else."""
    if bearer_token(request) is not None:
        # Pages are for browsers signed in with the cookie; API tokens have no console.
        return None
    db = request.app[database_key]
    try:
        claim = await claim_of(request, db, request.app[settings_key])
        async with tenant_tx(db, claim.tenant_id) as conn:
            # A session that has ended is also cleared from the cookie here (`confirm` ends it).
            return await confirm(request, conn, claim)
    except Unauthenticated:
        return None
    except Unavailable:
        raise web.HTTPServiceUnavailable(
            text="The console is unavailable for a moment; try again shortly.",
            headers={"Retry-After": _RETRY_AFTER_SECONDS},
        ) from None


@dataclass(frozen=True, slots=True)
class Section:
    """One entry of the pages' navigation: a page and the roles it is for."""

    path: str
    label_key: str
    # Shown until the page's script puts the person's language in.
    label: str
    roles: frozenset[Role]


SECTIONS: tuple[Section, ...] = (
    Section("/", "nav.console", "Console", frozenset(ROLES)),
    Section("/wallboard", "nav.wallboard", "Wallboard", STAFF_ROLES),
    Section("/reports", "nav.reports", "Reports", STAFF_ROLES),
    Section("/admin", "nav.admin", "Administration", STAFF_ROLES),
)


def _context(request: web.Request, caller: Caller) -> dict[str, Any]:
    """What every signed-in page's header draws: the sections the role may open, the current one marked."""
    sections = [s for s in SECTIONS if caller.role in s.roles]
    return {"sections": sections if len(sections) > 1 else [], "current_path": request.path, "role": caller.role}


def _login_redirect(request: web.Request) -> web.HTTPFound:
    """To the sign-in page, which comes back here afterwards (`/` needs no reminder)."""
    if request.path == "/":
        return web.HTTPFound("/login")
    return web.HTTPFound(f"/login?{urlencode({'next': request.path_qs})}")


PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(template: str, *, roles: frozenset[Role]) -> PageHandler:
    """A signed-in page: the sign-in page for anybody else, and a page saying so for a role it is not for."""

    async def handler(request: web.Request) -> web.StreamResponse:
        caller = await _live_caller(request)
        if caller is None:
            raise _login_redirect(request)
        context = _context(request, caller)
        if caller.role not in roles:
            return aiohttp_jinja2.render_template("forbidden.html", request, context, status=403)
        return aiohttp_jinja2.render_template(template, request, context)

    return handler


console = page("console.html", roles=frozenset(ROLES))


@aiohttp_jinja2.template("login.html")
async def login(request: web.Request) -> dict[str, Any]:
    """`GET /login`: the form; `static/login.js` posts it to `/api/auth/login`.

    It asks for the workspace unless the deployment has a single tenant (and asks anyway while the database
    cannot say: asking too much only costs a field).
    """
    try:
        async with request.app[database_key].connection() as conn:
            single_tenant = await tenants.sole_workspace(conn) is not None
    except Unavailable:
        single_tenant = False
    return {"ask_workspace": not single_tenant}


@web.middleware
async def not_found_page_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An address no route has is the console's own page with a way back, not aiohttp's bare text; the API
    keeps its envelope and the static files their plain answer."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith(("/api/", "/static/")) or request.path == "/api" or request.method != "GET":
            raise
        return aiohttp_jinja2.render_template("not_found.html", request, {}, status=404)
