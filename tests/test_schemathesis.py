"""Schemathesis fuzzes every operation of the OpenAPI document against a live server, as a tenant's admin.

One test item per operation (`test_api[GET /api/users]`, ...), so the document is built in-process at
collection, before any server runs; `test_the_fuzzed_document_is_the_served_one` holds it equal to what
`GET /api/openapi.json` serves. The server runs in a thread with its own
event loop: schemathesis calls it synchronously (requests), which would block a server sharing the test's
loop. The caller is an admin-role API token, so no CSRF token is needed and nothing generated can end
the session. Path parameters alternate between the ids of real rows of the tenant (so handlers past the
lookup run too) and generated ids (the not-found path).

Checks: no 5xx, the status code and content type are documented, and the body matches the documented schema.
Generation is derandomized (the same cases every run) and bounded: schemathesis's coverage cases (boundary
values, wrong types, unsupported methods) plus `max_examples` generated ones per operation, about a minute for
the current table.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fiv_console.app import create_app
from fiv_console.db.pool import tenant_tx
from fiv_console.keys import database_key
from fiv_console.web.api.registry import operations
from fiv_console.web.openapi import build_document
from tests.api import PASSWORD, make_tenant
from tests.conftest import TestDatabase
from tests.tenant_rows import TABLE_OF_ID, seed_every_table

T = TypeVar("T")

DOCUMENT = build_document(operations())
schema = schemathesis.openapi.from_dict(DOCUMENT)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class LiveServer:
    """The application on a real port, served from a thread of its own."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-server", daemon=True)

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
        """Run a coroutine on the server's loop (where its pool lives) and wait for its result."""

        async def wrapped() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def start(self) -> str:
        self.thread.start()

        async def listen() -> str:
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            host, port = self.runner.addresses[0][:2]
            return f"http://{host}:{port}"

        return self.run(listen)

    def stop(self) -> None:
        self.run(self.runner.cleanup)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Live:
    url: str
    session: requests.Session
    token: str
    ids: dict[str, Any]
    _turns: dict[str, Iterator[int]] = field(default_factory=dict)

    def seeded_id(self, name: str) -> str | None:
        table = TABLE_OF_ID.get(name.removesuffix("_id"))
        return str(self.ids[table]) if table in self.ids else None

    def use_seeded_ids(self, case: schemathesis.Case) -> None:
        """Every other case of an operation gets real ids in place of generated ones."""
        turn = next(self._turns.setdefault(case.operation.label, itertools.count()))
        if turn % 2 == 0:
            return
        for name, value in list((case.path_parameters or {}).items()):
            seeded = self.seeded_id(name)
            if seeded is not None and _is_uuid(value):
                case.path_parameters[name] = seeded
        if isinstance(case.body, dict):
            for name, value in list(case.body.items()):
                seeded = self.seeded_id(name) if name.endswith("_id") else None
                if seeded is not None and _is_uuid(value):
                    case.body[name] = seeded


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def live(database: TestDatabase) -> Iterator[Live]:
    # Login throttling would turn later login cases into 429s (or slow them), depending on how many came
    # before; it has tests of its own, and here every case should reach the code behind it.
    server = LiveServer(
        create_app(
            database.settings(
                login_failures_per_account_and_address=10_000,
                login_failures_per_address=10_000,
                login_account_delay_max_seconds=0,
            )
        )
    )
    url = server.start()
    try:
        db = server.runner.app[database_key]
        tenant = server.run(lambda: make_tenant(db, "Fuzz"))

        async def seed() -> dict[str, Any]:
            async with tenant_tx(db, tenant.id) as conn:
                return await seed_every_table(conn, tenant.id)

        ids = server.run(seed)
        with requests.Session() as session:
            signed_in = session.post(
                f"{url}/api/auth/login",
                json={"workspace": tenant.workspace, "email": tenant.admin.email, "password": PASSWORD},
                timeout=30,
            )
            assert signed_in.status_code == 200, signed_in.text
            created = session.post(
                f"{url}/api/tokens",
                json={"name": "schemathesis", "role": "admin"},
                headers={"X-CSRF-Token": signed_in.json()["data"]["csrf_token"]},
                timeout=30,
            )
            assert created.status_code == 201, created.text
            # The fuzzing calls carry only the token: no cookie, so no session can be ended or confused.
            session.cookies.clear()
            yield Live(url, session, created.json()["data"]["secret"], ids)
    finally:
        server.stop()


def test_the_fuzzed_document_is_the_served_one(live: Live) -> None:
    served = live.session.get(f"{live.url}/api/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking: a failure is reported with its request as found, and a run stays short.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api(case: schemathesis.Case, live: Live) -> None:
    live.use_seeded_ids(case)
    case.call_and_validate(
        base_url=live.url,
        session=live.session,
        headers={"Authorization": f"Bearer {live.token}"},
        checks=CHECKS,
        timeout=30,
    )
