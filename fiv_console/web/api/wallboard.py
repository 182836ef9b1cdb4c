"""The wallboard for supervisors and admins: the board itself, and setting an agent's status from it."""

from __future__ import annotations

from fiv_console.accounts import users
from fiv_console.accounts.users import User
from fiv_console.assignment import presence
from fiv_console.wallboard import board
from fiv_console.wallboard.board import Wallboard
from fiv_console.web.api.routing import STAFF, ApiCall, NoInput, RouteTable
from fiv_console.web.api.users import StatusChange

routes = RouteTable()


@routes.route(
    "GET", "/api/wallboard", roles=STAFF, summary="Every queue's and agent's figures now and today",
    tag="wallboard", response=Wallboard,
)  # fmt: skip
async def get_wallboard(call: ApiCall[NoInput, NoInput]) -> Wallboard:
    return await board.read(call.conn)


@routes.route(
    "PUT", "/api/agents/{user_id}/status", roles=STAFF, summary="Set someone's status (online, away, offline)",
    tag="agents", body=StatusChange, response=User,
)  # fmt: skip
async def set_agent_status(call: ApiCall[StatusChange, NoInput]) -> User:
    # The person's consoles follow through the `agent.presence` event; their own next choice wins again.
    user_id = call.ids["user_id"]
    before = await users.get_user(call.conn, user_id=user_id)
    after = await presence.set_status(call.conn, call.events, user_id=user_id, status=call.body.status)
    if after.status != before.status:
        await call.audit("agent.status_set", "user", user_id, {"from": before.status, "to": after.status})
    return after
