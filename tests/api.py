"""Driving the REST API as real people: a tenant with an admin, a supervisor and two agents, each signed in
through `POST /api/auth/login` (with their tenant's workspace: a test database holds many tenants) with their
own cookie jar and CSRF token, or calling with an API token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from fiv_console.accounts import users
from fiv_console.accounts.passwords import hash_password
from fiv_console.accounts.tenants import TenantCreate, create_tenant
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.routing import queues

PASSWORD = "correct horse battery staple"


@cache
def password_hash() -> str:
    """Hashed once per test run: Argon2 is slow on purpose, and every test person shares the password."""
    return hash_password(PASSWORD)


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    email: str
    role: users.Role
    workspace: str


@dataclass(frozen=True)
class TenantPeople:
    """A tenant with a queue, an admin, a supervisor and two agents (the first a member of the queue)."""

    id: uuid.UUID
    workspace: str
    queue_id: uuid.UUID
    admin: Person
    supervisor: Person
    agent: Person
    other_agent: Person
    people: dict[str, Person] = field(default_factory=dict)


async def make_tenant(db: Database, label: str = "T") -> TenantPeople:
    tenant = await create_tenant(db, TenantCreate(name=f"{label} {uuid.uuid4().hex[:6]}"))
    made: dict[str, Person] = {}
    async with tenant_tx(db, tenant.id) as conn:
        queue = await queues.create_queue(
            conn, tenant_id=tenant.id, data=queues.QueueCreate(name=f"Support {uuid.uuid4().hex[:4]}")
        )
        for key, role in (
            ("admin", "admin"),
            ("supervisor", "supervisor"),
            ("agent", "agent"),
            ("other_agent", "agent"),
        ):
            email = f"{key}-{uuid.uuid4().hex[:10]}@{label.lower()}.example"
            user = await users.create_user(
                conn,
                tenant_id=tenant.id,
                data=users.UserCreate(email=email, name=key.title(), role=role, password=SecretStr(PASSWORD)),  # type: ignore[arg-type]
                password_hash=password_hash(),
            )
            made[key] = Person(user.id, email, user.role, tenant.slug)
        await queues.add_member(conn, tenant_id=tenant.id, queue_id=queue.id, user_id=made["agent"].id)
    return TenantPeople(
        tenant.id, tenant.slug, queue.id, made["admin"], made["supervisor"], made["agent"], made["other_agent"], made
    )


async def add_crowd(db: Database, tenant: TenantPeople, count: int, *, in_queue: int = 0) -> list[Person]:
    """`count` more agents, "Crowd 001" to "Crowd <count>" (in that order by name, after "Agent"), the first
    `in_queue` of them members of the tenant's queue: a tenant with more people than one API page holds."""
    made = []
    tag = uuid.uuid4().hex[:8]
    async with tenant_tx(db, tenant.id) as conn:
        for n in range(1, count + 1):
            email = f"crowd-{n:03d}-{tag}@crowd.example"
            user = await users.create_user(
                conn,
                tenant_id=tenant.id,
                data=users.UserCreate(email=email, name=f"Crowd {n:03d}", role="agent", password=SecretStr(PASSWORD)),
                password_hash=password_hash(),
            )
            made.append(Person(user.id, email, user.role, tenant.workspace))
            if n <= in_queue:
                await queues.add_member(conn, tenant_id=tenant.id, queue_id=tenant.queue_id, user_id=user.id)
    return made


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any

    @property
    def data(self) -> Any:
        assert self.status < 300, (self.status, self.body)
        return self.body["data"]

    @property
    def code(self) -> str | None:
        return (self.body.get("error") or {}).get("code") if isinstance(self.body, dict) else None


class Api:
    """One browser (its own cookie jar) or one integration (a bearer token) talking to the server."""

    def __init__(self, client: TestClient[web.Request, web.Application], *, bearer: str | None = None) -> None:
        self.client = client
        self.csrf: str | None = None
        self.bearer = bearer

    async def call(self, method: str, path: str, *, json: Any = None, csrf: bool = True, **kwargs: Any) -> Answer:
        headers = dict(kwargs.pop("headers", {}))
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            headers["X-CSRF-Token"] = self.csrf
        response = await self.client.request(method, path, json=json, headers=headers, **kwargs)
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return Answer(response.status, body, response.headers)

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Answer:
        return await self.call("POST", path, json=json, **kwargs)

    async def patch(self, path: str, json: Any = None, **kwargs: Any) -> Answer:
        return await self.call("PATCH", path, json=json, **kwargs)

    async def put(self, path: str, json: Any = None, **kwargs: Any) -> Answer:
        return await self.call("PUT", path, json=json, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Answer:
        return await self.call("DELETE", path, **kwargs)

    async def login(self, person: Person, password: str = PASSWORD) -> Answer:
        """Sign in as `person`, in their tenant's workspace."""
        return await self.sign_in(person.email, password, workspace=person.workspace)

    async def sign_in(self, email: str, password: str, *, workspace: str | None) -> Answer:
        """Sign in with exactly these credentials (`workspace=None` leaves it out of the body)."""
        body = {"email": email, "password": password}
        if workspace is not None:
            body["workspace"] = workspace
        answer = await self.post("/api/auth/login", body, csrf=False)
        if answer.status == 200:
            self.csrf = answer.body["data"]["csrf_token"]
        return answer


class Browsers:
    """Opens API clients on one test server and closes them all at the end of the test."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self._clients: list[TestClient[web.Request, web.Application]] = []

    async def new(
        self, *, bearer: str | None = None, address: str | None = None, headers: dict[str, str] | None = None
    ) -> Api:
        """A client of its own; `address` (any of 127.0.0.0/8) is the client address the server sees, `headers`
        go with each of its requests (a proxy's `X-Forwarded-For`)."""
        connector = aiohttp.TCPConnector(local_addr=(address, 0)) if address else None
        # As a browser behind a proxy that ends TLS: a cookie marked Secure still comes back to the server.
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=str(self.server.make_url("/")))
        client: TestClient[web.Request, web.Application] = TestClient(
            self.server, connector=connector, headers=headers, cookie_jar=jar
        )
        await client.start_server()
        self._clients.append(client)
        return Api(client, bearer=bearer)

    async def signed_in(self, person: Person) -> Api:
        api = await self.new()
        answer = await api.login(person)
        assert answer.status == 200, answer.body
        return api

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
