"""Users: admins manage them (disable instead of delete); supervisors list them; agents set their status."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fiv_console.accounts import users
from fiv_console.accounts.passwords import hash_password_async
from fiv_console.accounts.users import AgentStatus, Role, User, UserCreate, UserUpdate
from fiv_console.assignment import presence
from fiv_console.errors import Forbidden
from fiv_console.realtime import wire
from fiv_console.text import NO_NUL
from fiv_console.web.api.routing import (
    ADMIN,
    ANYONE_SIGNED_IN,
    STAFF,
    ApiCall,
    Created,
    NoInput,
    Page,
    PageQuery,
    RouteTable,
)

routes = RouteTable()


class UserQuery(PageQuery):
    role: Role | None = None
    disabled: bool | None = None
    q: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=NO_NUL, description="Part of the name or email."
    )


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: AgentStatus


@routes.route(
    "GET",
    "/api/users",
    roles=STAFF,
    summary="List users",
    tag="users",
    query=UserQuery,
    response=list[User],
    paginated=True,
)
async def list_users(call: ApiCall[NoInput, UserQuery]) -> Page[User]:
    query = call.query
    items, total = await users.list_users(
        call.conn, role=query.role, disabled=query.disabled, search=query.q, limit=query.limit, offset=query.offset
    )
    return Page(items, total, query)


@routes.route(
    "POST", "/api/users", roles=ADMIN, summary="Create a user", tag="users", body=UserCreate, response=User,
    status=201, transaction=False,
)  # fmt: skip
async def create_user(call: ApiCall[UserCreate, NoInput]) -> Created[User]:
    caller = call.caller
    # Hashed before the transaction: no pooled connection waits on Argon2.
    password_hash = await hash_password_async(call.body.password.get_secret_value())
    async with call.transaction() as conn:
        user = await users.create_user(conn, tenant_id=caller.tenant_id, data=call.body, password_hash=password_hash)
        await call.audit("user.created", "user", user.id, {"role": user.role}, conn=conn)
    return Created(user)


@routes.route("GET", "/api/users/{user_id}", roles=STAFF, summary="One user", tag="users", response=User)
async def get_user(call: ApiCall[NoInput, NoInput]) -> User:
    return await users.get_user(call.conn, user_id=call.ids["user_id"])


@routes.route(
    "PATCH",
    "/api/users/{user_id}",
    roles=ADMIN,
    summary="Change a user (a role, password or disabled change ends their sessions)",
    tag="users",
    body=UserUpdate,
    response=User,
    transaction=False,
)
async def update_user(call: ApiCall[UserUpdate, NoInput]) -> User:
    caller, change, user_id = call.caller, call.body, call.ids["user_id"]
    if user_id == caller.user_id and (change.disabled or (change.role is not None and change.role != "admin")):
        raise Forbidden("admins cannot disable or demote themselves (ask another admin)")
    # Hashed before the transaction: no pooled connection waits on Argon2.
    password_hash = await hash_password_async(change.password.get_secret_value()) if change.password else None
    async with call.transaction() as conn:
        before = await users.get_user(conn, user_id=user_id)
        role_changed = change.role is not None and change.role != before.role
        disabled_changed = change.disabled is not None and change.disabled != before.disabled
        after = await users.update_user(
            conn,
            user_id=user_id,
            data=change,
            password_hash=password_hash,
            end_sessions=role_changed or disabled_changed or password_hash is not None,
        )
        changed = sorted(name for name in change.model_fields_set if name != "password")
        await call.audit("user.changed", "user", user_id, {"fields": changed}, conn=conn)
        if role_changed:
            await call.audit("user.role_changed", "user", user_id, {"from": before.role, "to": after.role}, conn=conn)
        if disabled_changed:
            await call.audit("user.disabled" if after.disabled else "user.enabled", "user", user_id, conn=conn)
        if password_hash is not None:
            await call.audit("user.password_reset", "user", user_id, conn=conn)
    if role_changed or disabled_changed or password_hash is not None:
        call.notify(wire.SessionsEnded(user_id))
    return after


@routes.route(
    "GET", "/api/agents/me/status", roles=ANYONE_SIGNED_IN, summary="My chosen status", tag="agents", response=User
)
async def get_my_status(call: ApiCall[NoInput, NoInput]) -> User:
    if call.caller.user_id is None:
        raise Forbidden("an API token has no status")
    return await users.get_user(call.conn, user_id=call.caller.user_id)


@routes.route(
    "PUT",
    "/api/agents/me/status",
    roles=ANYONE_SIGNED_IN,
    summary="Choose online, away or offline",
    tag="agents",
    body=StatusChange,
    response=User,
)
async def set_my_status(call: ApiCall[StatusChange, NoInput]) -> User:
    if call.caller.user_id is None:
        raise Forbidden("an API token has no status")
    return await presence.set_status(call.conn, call.events, user_id=call.caller.user_id, status=call.body.status)
