"""API tokens (admins): create (the secret is shown once), list with their creators, revoke."""

from __future__ import annotations

from fiv_console.accounts import tokens
from fiv_console.accounts.tokens import CreatedToken, Token, TokenCreate
from fiv_console.web.api.routing import ADMIN, ApiCall, Created, NoInput, Page, PageQuery, RouteTable

routes = RouteTable()


@routes.route(
    "GET", "/api/tokens", roles=ADMIN, summary="List API tokens", tag="tokens", query=PageQuery, response=list[Token],
    paginated=True,
)  # fmt: skip
async def list_tokens(call: ApiCall[NoInput, PageQuery]) -> Page[Token]:
    items, total = await tokens.list_tokens(call.conn, limit=call.query.limit, offset=call.query.offset)
    return Page(items, total, call.query)


@routes.route(
    "POST", "/api/tokens", roles=ADMIN, summary="Create an API token (its secret is shown only now)", tag="tokens",
    body=TokenCreate, response=CreatedToken, status=201,
)  # fmt: skip
async def create_token(call: ApiCall[TokenCreate, NoInput]) -> Created[CreatedToken]:
    caller = call.caller
    token = await tokens.create_token(
        call.conn,
        tenant_id=caller.tenant_id,
        data=call.body,
        created_by=caller.user_id,
        created_by_token=caller.token_id,
    )
    details = {"name": token.name, "role": token.role, "expires_at": token.expires_at}
    await call.audit("token.created", "token", token.id, details)
    return Created(token)


@routes.route(
    "DELETE", "/api/tokens/{token_id}", roles=ADMIN, summary="Revoke an API token", tag="tokens", response=Token
)
async def revoke_token(call: ApiCall[NoInput, NoInput]) -> Token:
    token = await tokens.revoke_token(call.conn, token_id=call.ids["token_id"])
    await call.audit("token.revoked", "token", token.id, {"name": token.name})
    return token
