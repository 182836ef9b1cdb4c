"""Signing in and out, who am I, and changing one's own password."""

from __future__ import annotations

import logging
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fiv_console.accounts import audit, login_throttle, tenants, users
from fiv_console.accounts import sign_in as accounts
from fiv_console.accounts.passwords import hash_password_async
from fiv_console.accounts.tenants import Slug
from fiv_console.accounts.users import Password, Role, User
from fiv_console.db.pool import Connection, tenant_tx
from fiv_console.errors import Forbidden, InvalidInput, Unauthenticated
from fiv_console.keys import database_key, rate_limiter_key, settings_key
from fiv_console.observability.context import request_id_var, tenant_id_var, user_id_var
from fiv_console.realtime import wire
from fiv_console.settings import Settings
from fiv_console.text import NO_NUL
from fiv_console.web.api.routing import ANYONE_SIGNED_IN, ApiCall, NoInput, RouteTable
from fiv_console.web.sessions import csrf_token, end_session, start_session

log = logging.getLogger(__name__)
routes = RouteTable()

WRONG_CREDENTIALS = "the email or password is wrong"
WRONG_WORKSPACE_CREDENTIALS = "the workspace, email or password is wrong"


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace: Slug | None = Field(
        default=None,
        description="The workspace (the tenant's slug, any case); may be left out where the deployment has one tenant.",
    )
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254, pattern=NO_NUL)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class SessionInfo(BaseModel):
    """The caller: the user (none for an API token), its role, tenant and workspace, and the session's CSRF
    token."""

    user: User | None
    role: Role
    tenant_id: UUID
    workspace: str = Field(description="The tenant's slug, which people type when they sign in.")
    tenant_name: str
    time_zone: str = Field(description="The tenant's IANA time zone: the console shows dates and times in it.")
    agents_can_take_waiting: bool = Field(description="Whether agents may take a waiting conversation themselves.")
    csrf_token: str | None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    new_password: Password


def _limits(settings: Settings) -> login_throttle.Limits:
    return login_throttle.Limits(
        failures_per_account_and_address=settings.login_failures_per_account_and_address,
        failures_per_address=settings.login_failures_per_address,
        account_delay_after=settings.login_account_delay_after,
        account_delay_max_seconds=settings.login_account_delay_max_seconds,
    )


async def _tenant_of(conn: Connection, tenant_id: UUID) -> tenants.Tenant:
    tenant = await tenants.get_tenant(conn, tenant_id=tenant_id)
    assert tenant is not None, "the caller's tenant exists"
    return tenant


def _session_info(caller_role: Role, tenant: tenants.Tenant, user: User | None, csrf: str | None) -> SessionInfo:
    return SessionInfo(
        user=user,
        role=caller_role,
        tenant_id=tenant.id,
        workspace=tenant.slug,
        tenant_name=tenant.name,
        time_zone=tenant.time_zone,
        agents_can_take_waiting=tenant.settings.agents_can_take_waiting,
        csrf_token=csrf,
    )


@routes.route(
    "POST",
    "/api/auth/login",
    roles=None,
    summary="Sign in with workspace, email and password; sets the session cookie",
    tag="auth",
    body=LoginRequest,
    response=SessionInfo,
)
async def login(call: ApiCall[LoginRequest, NoInput]) -> SessionInfo:
    app = call.request.app
    settings, db = app[settings_key], app[database_key]
    email = call.body.email.lower()
    workspace = call.body.workspace
    if workspace is None:
        async with db.connection() as conn:
            workspace = await tenants.sole_workspace(conn)
        if workspace is None:
            raise InvalidInput(
                "the workspace is required: this deployment has several",
                details=[{"field": "body.workspace", "message": "required"}],
            )
    attempt = await login_throttle.begin_sign_in(
        app[rate_limiter_key], _limits(settings), workspace=workspace, email=email, remote=call.request.remote
    )
    try:
        checked = await accounts.check_password(db, workspace=workspace, email=email, password=call.body.password)
    except BaseException:
        await attempt.abandoned()
        raise
    signed_in = checked.signed_in
    if signed_in is None:
        await _record_failure(call, checked.account)
        # What was typed decides the message, never what exists.
        raise Unauthenticated(WRONG_WORKSPACE_CREDENTIALS if call.body.workspace else WRONG_CREDENTIALS)
    await attempt.succeeded()

    csrf = await start_session(call.request, signed_in)
    tenant_id_var.set(str(signed_in.tenant_id))
    user_id_var.set(str(signed_in.user_id))
    async with tenant_tx(db, signed_in.tenant_id) as conn:
        user = await users.get_user(conn, user_id=signed_in.user_id)
        tenant = await _tenant_of(conn, signed_in.tenant_id)
        await audit.record(
            conn,
            tenant_id=signed_in.tenant_id,
            actor=audit.Actor("user", user.id, call.request.remote, request_id_var.get()),
            action="login.succeeded",
            target_type="user",
            target_id=user.id,
        )
    return _session_info(user.role, tenant, user, csrf)


async def _record_failure(call: ApiCall[LoginRequest, NoInput], account: tuple[UUID, UUID] | None) -> None:
    """A failure on a real account goes to its tenant's audit log; an unknown account has no tenant."""
    if account is None:
        log.info("sign-in failed for an unknown workspace or email")
        return
    tenant_id, user_id = account
    async with tenant_tx(call.request.app[database_key], tenant_id) as conn:
        await audit.record(
            conn,
            tenant_id=tenant_id,
            actor=audit.Actor("anonymous", None, call.request.remote, request_id_var.get()),
            action="login.failed",
            target_type="user",
            target_id=user_id,
        )


@routes.route(
    "POST",
    "/api/auth/logout",
    roles=ANYONE_SIGNED_IN,
    summary="Sign out: ends every session of this user, on every device",
    tag="auth",
)
async def logout(call: ApiCall[NoInput, NoInput]) -> None:
    caller = call.caller
    if caller.user_id is None:
        raise Forbidden("an API token does not sign out: revoke it instead")
    await accounts.end_all_sessions(call.conn, user_id=caller.user_id)
    await call.audit("logout", "user", caller.user_id)
    call.notify(wire.SessionsEnded(caller.user_id))
    await end_session(call.request)


@routes.route("GET", "/api/me", roles=ANYONE_SIGNED_IN, summary="Who is signed in", tag="auth", response=SessionInfo)
async def me(call: ApiCall[NoInput, NoInput]) -> SessionInfo:
    caller = call.caller
    user = await users.get_user(call.conn, user_id=caller.user_id) if caller.user_id else None
    csrf = await csrf_token(call.request) if caller.via == "session" else None
    return _session_info(caller.role, await _tenant_of(call.conn, caller.tenant_id), user, csrf)


@routes.route(
    "POST",
    "/api/me/password",
    roles=ANYONE_SIGNED_IN,
    summary="Change one's own password; every other session of the user ends",
    tag="auth",
    body=PasswordChange,
    response=SessionInfo,
    transaction=False,
)
async def change_password(call: ApiCall[PasswordChange, NoInput]) -> SessionInfo:
    caller = call.caller
    if caller.user_id is None:
        raise Forbidden("an API token has no password")
    app = call.request.app
    # Guessing the current password here must cost as much as guessing it at sign-in.
    attempt = await login_throttle.begin_password_check(
        app[rate_limiter_key], user_id=caller.user_id, limit=app[settings_key].login_failures_per_account_and_address
    )
    async with call.transaction() as conn:
        current_hash = await accounts.password_hash(conn, user_id=caller.user_id)
    await accounts.check_current_password(current_hash, call.body.current_password)
    await attempt.succeeded()
    new_hash = await hash_password_async(call.body.new_password.get_secret_value())
    assert current_hash is not None, "a user that just signed in has a password"
    async with call.transaction() as conn:
        version = await accounts.replace_password(
            conn, user_id=caller.user_id, checked_hash=current_hash, new_hash=new_hash
        )
        await call.audit("user.password_changed", "user", caller.user_id, conn=conn)
        user = await users.get_user(conn, user_id=caller.user_id)
        tenant = await _tenant_of(conn, caller.tenant_id)
    call.notify(wire.SessionsEnded(caller.user_id))
    # The caller stays signed in here with a fresh session; every other session of theirs has ended.
    csrf = await start_session(call.request, accounts.SignedIn(caller.tenant_id, caller.user_id, version))
    return _session_info(user.role, tenant, user, csrf)
