"""What every benchmark needs: a PostgreSQL server on loopback, a scratch database on it, and the processes
under measurement started (`wait_healthy`) and stopped (`stop`) the same way.

The server is `DATABASE_URL`'s (a role that may create databases and roles, as for the tests) or, when it
is unset, the embedded one in `FIV_DATA_DIR`, started here and stopped when the benchmark ends (or joined,
if a local `fiv-console` already runs it). The scratch database is created, migrated exactly as the tests
migrate theirs, and dropped at the end whatever happens in between.

`fiv_app` is a cluster-wide role: migrating the scratch database re-sets its password from the owner's
credentials, as `fiv-console migrate` and the tests do. Do not point a benchmark at a cluster whose live
deployment logs in as `fiv_app` with a different owner.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import aiohttp
import asyncpg
import orjson
import psutil

from fiv_console.db.embedded import EmbeddedPostgresError, embedded_postgres
from fiv_console.db.migrations import migrate
from fiv_console.db.urls import APP_ROLE, derived_app_password, with_database, with_role
from fiv_console.serving import run_async
from fiv_console.settings import ConfigError, load_settings

# Load must come from this machine: a remote server would measure the network, and a benchmark must
# never hammer someone's shared database by accident.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class BenchError(Exception):
    """The benchmark cannot run as configured; the message says why."""


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    kind: str  # "embedded" or "DATABASE_URL"


@dataclass(frozen=True, slots=True)
class Scratch:
    name: str
    owner_url: str
    postgres_version: str
    # Made by an earlier run and kept (`scratch_database(keep=...)`): already seeded.
    kept: bool = False

    @property
    def app_url(self) -> str:
        """What `fiv-console serve` would connect with: `fiv_app`, password derived from the owner's."""
        return with_role(self.owner_url, APP_ROLE, derived_app_password(self.owner_url))


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    hosts = [parts.hostname] if parts.hostname else parse_qs(parts.query).get("host", [])
    return bool(hosts) and all(host.startswith("/") or host in _LOOPBACK_HOSTS for host in hosts)


@contextmanager
def postgres_server() -> Iterator[Server]:
    """`DATABASE_URL`'s server (loopback only) or the embedded one, stopped again on the way out."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise BenchError(f"configuration: {exc}") from None
    if settings.database_url:
        if not is_loopback(settings.database_url):
            raise BenchError("DATABASE_URL must name a server on this machine (127.0.0.1, ::1 or a socket)")
        yield Server(url=settings.database_url, kind="DATABASE_URL")
        return
    with embedded_postgres(settings.fiv_data_dir) as url:
        yield Server(url=url, kind="embedded")


@asynccontextmanager
async def in_tenant(conn: asyncpg.Connection, tenant_id: UUID) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on an owner's connection with the tenant set as the server sets it: row-level security
    is forced on the tenant tables, so an owner that is not a superuser sees a tenant's rows only this way."""
    async with conn.transaction():
        await conn.execute("select set_config('app.current_tenant', $1, true)", str(tenant_id))
        yield conn


@asynccontextmanager
async def scratch_database(server: Server, prefix: str, *, keep: str | None = None) -> AsyncIterator[Scratch]:
    """A new database on `server`, migrated; dropped (with any connections left) when the block ends.

    With `keep`, the database of that name instead: made if it is missing, migrated to the latest (a
    migration added since it was made is applied), and left in place, so a slow seed is paid once while
    iterating (`Scratch.kept` says whether it already existed)."""
    name = keep or f"{prefix}_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.url)
    try:
        kept = keep is not None and bool(await admin.fetchval("select 1 from pg_database where datname = $1", keep))
        if not kept:
            await admin.execute(f'create database "{name}"')
        version = str(await admin.fetchval("show server_version"))
    finally:
        await admin.close()
    owner_url = with_database(server.url, name)
    try:
        await migrate(owner_url, app_role=APP_ROLE, app_password=derived_app_password(owner_url))
        yield Scratch(name=name, owner_url=owner_url, postgres_version=version, kept=kept)
    finally:
        if keep is None:
            admin = await asyncpg.connect(server.url)
            try:
                await admin.execute(f'drop database if exists "{name}" with (force)')
            finally:
                await admin.close()


def fail(message: str) -> int:
    print(f"{sys.argv[0]}: error: {message}", file=sys.stderr)
    return 2


def measure_and_report(
    measure: Callable[[Server], Awaitable[dict[str, Any]]], print_table: Callable[[dict[str, Any]], None]
) -> int:
    """Run one benchmark on the database server, print its table and its final JSON line; the exit code."""
    try:
        with postgres_server() as server:
            report = run_async(lambda: measure(server))
    except (BenchError, EmbeddedPostgresError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        # The scratch database was dropped and the embedded server left on the way out.
        print(f"{sys.argv[0]}: interrupted", file=sys.stderr)
        return 130
    print_table(report)
    print(orjson.dumps(report).decode())
    return 0


def serve_env(owner_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `fiv-console serve` on a scratch database: the outer one without another
    database's server role or a Redis (`extra` may name one), a throwaway SECRET_KEY (a configured database
    asks for one), and warnings only, so that logging is not what is measured; `extra` adds or overrides."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_APP_URL", "REDIS_URL")}
    env |= {"DATABASE_URL": owner_url, "SECRET_KEY": secrets.token_urlsafe(32), "LOG_LEVEL": "WARNING"}
    return env | extra


READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


async def wait_healthy(session: aiohttp.ClientSession, url: str, process: Process) -> None:
    """Until `url` answers 200; BenchError if the process exits first or it takes too long."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise BenchError(f"the process exited with code {process.returncode} before answering {url}")
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise BenchError(f"{url} did not answer 200 within {READY_TIMEOUT_SECONDS:g} s")


async def stop(process: Process, signum: signal.Signals) -> None:
    """`signum` (the process's orderly exit), then SIGKILL if it does not end in time."""
    if process.returncode is None:
        process.send_signal(signum)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()


def report_header(bench: str, server: Server, postgres: str, load_before: float) -> dict[str, Any]:
    """What a report's JSON line starts with: which benchmark, when, and on what. Other work on the machine
    skews absolute figures (ratios less so), so the load before and after is in it too."""
    return {
        "bench": bench,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": server.kind,
        "postgres": postgres,
        "cpus": os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "load_1min_before": load_before,
        "load_1min_after": os.getloadavg()[0],
    }


async def start_worker(script: str, config: dict[str, Any], stderr: Any) -> Process:
    """`script` again as a worker process (`--worker`), given `config` as the first line on its stdin."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        "--worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        limit=2**27,
    )
    assert process.stdin is not None
    process.stdin.write(orjson.dumps(config) + b"\n")
    await process.stdin.drain()
    return process


async def stop_workers(processes: Sequence[Process], seconds: float) -> None:
    """Closes every worker's stdin (its signal to finish), waits `seconds` for each, kills the stragglers."""
    for process in processes:
        if process.returncode is None and process.stdin is not None:
            with suppress(OSError):
                process.stdin.close()
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), seconds)
        except TimeoutError:
            process.kill()
            await process.wait()
