"""Server-rendered pages (aiohttp-jinja2 templates; autoescaped, no inline scripts).

The pages carry no user data: their ES modules in `static/` fetch it from `/api` and put it in with
`textContent`, so a name or message holding markup can never run.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from fiv_console.accounts import tenants
from fiv_console.db.pool import tenant_tx
from fiv_console.errors import Unauthenticated, Unavailable
from fiv_console.keys import database_key, settings_key
from fiv_console.web.sessions import bearer_token, claim_of, confirm

_RETRY_AFTER_SECONDS = "5"


async def _has_live_session(request: web.Request) -> bool:
    """A browser session the database still honours: the user exists, is not disabled, and the session's
    version is current (so a logout elsewhere, a password or role change, or disabling ends it here too)."""
    if bearer_token(request) is not None:
        # Pages are for browsers signed in with the cookie; API tokens have no console.
        return False
    db = request.app[database_key]
    try:
        claim = await claim_of(request, db, request.app[settings_key])
        async with tenant_tx(db, claim.tenant_id) as conn:
            # A session that has ended is also cleared from the cookie here (`confirm` ends it).
            await confirm(request, conn, claim)
    except Unauthenticated:
        return False
    except Unavailable:
        raise web.HTTPServiceUnavailable(
            text="The console is unavailable for a moment; try again shortly.",
            headers={"Retry-After": _RETRY_AFTER_SECONDS},
        ) from None
    return True


async def console(request: web.Request) -> web.StreamResponse:
    """`GET /`: the console for a signed-in user, the sign-in page for anybody else."""
    if not await _has_live_session(request):
        raise web.HTTPFound("/login")
    return aiohttp_jinja2.render_template("console.html", request, {})


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
