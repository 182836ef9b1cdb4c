"""The API's route table: each operation with its roles, input models and answer model, in one place.

Role checks (RBAC), validation of path, query and body, the answer envelope and the OpenAPI document all
read this table, so an operation cannot be served without the checks its entry declares.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fiv_console import events
from fiv_console.access import STAFF_ROLES
from fiv_console.accounts import audit
from fiv_console.accounts.sign_in import LIVE_USER_WITH_TENANT_SQL, LiveUser, live_user_of
from fiv_console.accounts.users import ROLES, Role
from fiv_console.db.pool import Connection, Database, tenant_tx, tenant_tx_reading
from fiv_console.errors import Forbidden, InvalidInput
from fiv_console.events import EventBatch
from fiv_console.keys import database_key, hub_key, settings_key
from fiv_console.observability.context import tenant_id_var, user_id_var
from fiv_console.realtime import wire
from fiv_console.web import envelope
from fiv_console.web.bodies import read_body
from fiv_console.web.sessions import Caller, Claim, claim_of, confirm, confirm_session

ANYONE_SIGNED_IN: frozenset[Role] = frozenset(ROLES)
STAFF: frozenset[Role] = STAFF_ROLES
ADMIN: frozenset[Role] = frozenset({"admin"})

MAX_LIMIT = 100
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")

T = TypeVar("T")
BodyT = TypeVar("BodyT")
QueryT = TypeVar("QueryT")


class NoInput(BaseModel):
    """An operation that takes no query string or body."""

    model_config = ConfigDict(extra="forbid")


class PageQuery(BaseModel):
    """`page` and `limit` (at most 100); resources extend it with their filters."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=1_000_000)
    limit: int = Field(default=25, ge=1, le=MAX_LIMIT)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    query: PageQuery


@dataclass(frozen=True, slots=True)
class Created(Generic[T]):
    """An answer with 201 Created."""

    data: T


@dataclass(slots=True)
class ApiCall(Generic[BodyT, QueryT]):
    """What a handler gets: the validated inputs, the confirmed caller and the request's transaction."""

    request: web.Request
    body: BodyT
    query: QueryT
    ids: dict[str, UUID]
    caller_or_none: Caller | None = None
    conn_or_none: Connection | None = None
    batch_or_none: EventBatch | None = None
    committed: list[Callable[[], None]] = field(default_factory=list)

    @property
    def caller(self) -> Caller:
        assert self.caller_or_none is not None, "operation declared no roles"
        return self.caller_or_none

    @property
    def conn(self) -> Connection:
        assert self.conn_or_none is not None, "operation declared no roles"
        return self.conn_or_none

    @property
    def events(self) -> EventBatch:
        """The events of this request's change: appended last in its transaction, announced after commit."""
        assert self.conn_or_none is not None, "events belong to the request's transaction"
        if self.batch_or_none is None:
            self.batch_or_none = EventBatch(self.caller.tenant_id)
        return self.batch_or_none

    def notify(self, notice: wire.Notice) -> None:
        """Tells every instance (its sockets of the caller's tenant) once the request's work is committed;
        never if it fails."""
        hub, tenant_id = self.request.app[hub_key], self.caller.tenant_id
        self.committed.append(lambda: hub.notify(tenant_id, notice))

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A transaction in the caller's tenant, for operations declared with `transaction=False`."""
        return tenant_tx(self.request.app[database_key], self.caller.tenant_id)

    async def audit(
        self,
        action: str,
        target_type: str,
        target_id: UUID | None,
        details: dict[str, Any] | None = None,
        *,
        conn: Connection | None = None,
    ) -> None:
        """An audit entry by this caller, in this request's transaction (or the one given)."""
        await audit.record(
            conn or self.conn,
            tenant_id=self.caller.tenant_id,
            actor=self.caller.actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
        )


Handler = Callable[[ApiCall[Any, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    roles: frozenset[Role] | None
    summary: str
    tag: str
    body: type[BaseModel]
    query: type[BaseModel]
    response: Any
    paginated: bool
    status: int
    # False for operations with slow work (Argon2) before their writes: they open `call.transaction()`
    # themselves, so no pooled connection waits on a CPU-bound hash.
    transaction: bool = True
    # A multipart/form-data upload of one `file` field, read by the handler (`request.multipart()`) once the
    # caller is known, under a limit of its own rather than the app's client_max_size (sized for JSON).
    upload: bool = False
    # The answer is a file in its own content type (a `web.StreamResponse`), or 304 on If-None-Match.
    file_answer: bool = False
    # The answer is a document of this media type written by the handler as it goes (a `web.StreamResponse`,
    # never cached): a CSV export.
    stream_answer: str | None = None

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def path_parameters(self) -> list[str]:
        return _PATH_PARAMETER.findall(self.path)


@dataclass
class RouteTable:
    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        roles: frozenset[Role] | None,
        summary: str,
        tag: str,
        body: type[BaseModel] = NoInput,
        query: type[BaseModel] = NoInput,
        response: Any = None,
        paginated: bool = False,
        status: int = 200,
        transaction: bool = True,
        upload: bool = False,
        file_answer: bool = False,
        stream_answer: str | None = None,
    ) -> Callable[[Callable[[ApiCall[Any, Any]], Awaitable[T]]], Callable[[ApiCall[Any, Any]], Awaitable[T]]]:
        """Declare an operation. `roles=None` means no sign-in is needed (login itself)."""
        if upload and (transaction or body is not NoInput):
            # The upload arrives at the client's pace: no pooled connection may wait on it.
            raise ValueError("an upload is read by its handler outside the request's transaction")

        def register(
            handler: Callable[[ApiCall[Any, Any]], Awaitable[T]],
        ) -> Callable[[ApiCall[Any, Any]], Awaitable[T]]:
            self.operations.append(
                Operation(
                    method,
                    path,
                    handler,
                    roles,
                    summary,
                    tag,
                    body,
                    query,
                    response,
                    paginated,
                    status,
                    transaction,
                    upload,
                    file_answer,
                    stream_answer,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for operation in self.operations:
            app.router.add_route(operation.method, operation.path, _serve(operation), name=operation.operation_id)


def _field_errors(exc: ValidationError, prefix: str) -> list[dict[str, str]]:
    """Field-level details; the offending values are never echoed (they may be huge or secret)."""
    return [
        {
            "field": ".".join([prefix, *(str(part) for part in error["loc"])]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors(include_input=False, include_url=False)
    ]


def _validate(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"the {where} is not valid", details=_field_errors(exc, where)) from None


def _ids(request: web.Request, operation: Operation) -> dict[str, UUID]:
    ids: dict[str, UUID] = {}
    for name in operation.path_parameters:
        try:
            ids[name] = UUID(request.match_info[name])
        except ValueError:
            raise InvalidInput(
                f"{name} is not a valid id", details=[{"field": f"path.{name}", "message": "must be a UUID"}]
            ) from None
    return ids


def _query(request: web.Request, operation: Operation) -> BaseModel:
    repeated = [key for key in request.query if len(request.query.getall(key)) > 1]
    if repeated:
        raise InvalidInput(
            "a query parameter is repeated",
            details=[{"field": f"query.{key}", "message": "give it once"} for key in repeated],
        )
    return _validate(operation.query, dict(request.query), "query")


async def _body(request: web.Request, operation: Operation) -> BaseModel:
    if operation.body is NoInput:
        return NoInput()
    if request.content_type != "application/json":
        raise InvalidInput("the body must be JSON (Content-Type: application/json)")
    raw = await read_body(request)
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise InvalidInput("the body is not valid JSON") from None
    return _validate(operation.body, data, "body")


def _answer(operation: Operation, result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, Page):
        pagination = {
            "page": result.query.page,
            "limit": result.query.limit,
            "total": result.total,
            "hasNext": result.query.offset + len(result.items) < result.total,
        }
        return envelope.ok(result.items, pagination=pagination)
    if isinstance(result, Created):
        return envelope.ok(result.data, status=201)
    return envelope.ok(result, status=operation.status)


@asynccontextmanager
async def _transaction(db: Database, claim: Claim) -> AsyncIterator[tuple[Connection, LiveUser | None]]:
    """The call's transaction in the claimed tenant; for a session, its user read with the tenant's setting."""
    if claim.via == "token":
        async with tenant_tx(db, claim.tenant_id) as conn:
            yield conn, None
        return
    async with tenant_tx_reading(db, claim.tenant_id, LIVE_USER_WITH_TENANT_SQL, claim.subject_id) as (conn, row):
        yield conn, live_user_of(row)


def _serve(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if operation.roles is None:
            call: ApiCall[Any, Any] = ApiCall(
                request, await _body(request, operation), _query(request, operation), _ids(request, operation)
            )
            return _answer(operation, await operation.handler(call))
        db = request.app[database_key]
        claim = await claim_of(request, db, request.app[settings_key])
        # Read the body before taking a connection: a slow client must not hold a database connection.
        # An upload is left to its handler, which reads it after the connection is given back.
        if not operation.upload:
            await read_body(request)
        async with _transaction(db, claim) as (conn, user):
            caller = (
                await confirm(request, conn, claim)
                if claim.via == "token"
                else await confirm_session(request, claim, user)
            )
            tenant_id_var.set(str(caller.tenant_id))
            user_id_var.set(str(caller.user_id or caller.token_id))
            if caller.role not in operation.roles:
                raise Forbidden("your role may not do this")
            appended: list[events.Event] = []
            call = ApiCall(
                request,
                await _body(request, operation),
                _query(request, operation),
                _ids(request, operation),
                caller,
                conn if operation.transaction else None,
            )
            if operation.transaction:
                result = await operation.handler(call)
                appended = await events.append(conn, call.batch_or_none) if call.batch_or_none else []
        if not operation.transaction:
            result = await operation.handler(call)
        if appended:
            request.app[hub_key].announce(caller.tenant_id, appended)
        for action in call.committed:
            action()
        return _answer(operation, result)

    return handle
