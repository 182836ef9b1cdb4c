"""Running things for the command line: the database to use (embedded or configured), and the server (with
the garbage collector settled for serving once it has started).

Ctrl-C and SIGTERM become an orderly exit at every stage, so the embedded PostgreSQL is always stopped.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from ipaddress import ip_address
from pathlib import Path
from types import FrameType
from typing import TypeVar

from aiohttp import web
from pydantic import SecretStr

from fiv_console.app import drain
from fiv_console.db import migrations
from fiv_console.db.embedded import embedded_postgres
from fiv_console.db.startup import StartupError
from fiv_console.db.urls import app_role, derived_app_password, owner_url
from fiv_console.keys import database_key, in_flight_key, settings_key
from fiv_console.settings import Settings
from fiv_console.web import connection_limits

log = logging.getLogger(__name__)

T = TypeVar("T")


class Terminated(SystemExit):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so `finally` blocks run."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(128 + signum)


def install_sigterm_handler() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop has no Windows build; the standard loop serves there
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on uvloop."""

    async def _main() -> T:
        return await main()

    with asyncio.Runner(loop_factory=_new_loop) as runner:
        return runner.run(_main())


@contextmanager
def database_for(
    settings: Settings,
    *,
    migrate: bool,
    on_migrated: Callable[[list[migrations.Migration]], None] = lambda applied: None,
) -> Iterator[Settings]:
    """Settings with a DATABASE_URL: the configured server, or the embedded one started (and stopped) here.

    The embedded database is always migrated (no one else would); a configured one only when asked.
    `on_migrated` is told which migrations were applied.
    """
    if settings.database_url:
        if migrate:
            on_migrated(run_async(lambda: apply_migrations(settings)))
        yield settings
        return
    with embedded_postgres(settings.fiv_data_dir) as url:
        embedded = settings.model_copy(update={"database_url": url})
        on_migrated(run_async(lambda: apply_migrations(embedded)))
        yield embedded


SECRET_KEY_FILE = "secret_key"  # noqa: S105 - the file name, not a secret
DEMO_APP_SECRET_FILE = "demo_whatsapp_app_secret"  # noqa: S105 - the file name, not a secret


def _generated_secret(data_dir: Path, name: str) -> SecretStr:
    """A random secret made once into `data_dir/name` (owner-only), the same on every later start."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
    return SecretStr(path.read_text().strip())


def with_secret_key(settings: Settings, *, demo: bool = False) -> Settings:
    """SECRET_KEY, or for the demo and a single local instance (embedded database) one generated once into
    FIV_DATA_DIR. With a configured DATABASE_URL there may be several instances, which must share one key."""
    if settings.secret_key is not None:
        return settings
    if settings.database_url and not demo:
        raise StartupError("SECRET_KEY must be set when DATABASE_URL is: every instance must share one key")
    return settings.model_copy(update={"secret_key": _generated_secret(settings.fiv_data_dir, SECRET_KEY_FILE)})


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now on `host` (the OS picks it); for a server started straight after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def with_demo_whatsapp(settings: Settings, *, graph_url: str) -> Settings:
    """The demo's WhatsApp: the in-process simulator's Graph API, and an app secret the two share (generated
    once into FIV_DATA_DIR unless WHATSAPP_APP_SECRET is set)."""
    secret = settings.whatsapp_app_secret or _generated_secret(settings.fiv_data_dir, DEMO_APP_SECRET_FILE)
    return settings.model_copy(update={"whatsapp_app_secret": secret, "whatsapp_graph_url": graph_url})


async def apply_migrations(settings: Settings) -> list[migrations.Migration]:
    owner = owner_url(settings)
    password = None if settings.database_app_url else derived_app_password(owner)
    applied = await migrations.migrate(owner, app_role=app_role(settings), app_password=password)
    log.info("migrations done", extra={"applied": [m.file_name for m in applied]})
    return applied


class StoppedAtOnce(SystemExit):
    """A second SIGTERM or Ctrl-C, or SHUTDOWN_TIMEOUT spent: every task is cancelled where it stands."""


# Of SHUTDOWN_TIMEOUT, requests in flight may take all but the last fifth; what is still running then is
# cancelled (with a twentieth to let go first and another to unwind), then the loops and pools close.
_DRAIN_SHARE = 0.8
_LAST_GRACE_SHARE = 0.05


class _StopSignals:
    """Ctrl-C and SIGTERM while serving: the first asks for an orderly stop, which the deadline bounds; a second
    one, or the deadline, stops at once (`StoppedAtOnce`, raised out of the event loop)."""

    def __init__(self, timeout: float, *, on_stop_at_once: Callable[[], None]) -> None:
        self.requested = asyncio.Event()
        self.deadline = 0.0
        self._timeout = timeout
        self._on_stop_at_once = on_stop_at_once
        self._loop = asyncio.get_running_loop()
        self._at_deadline: asyncio.TimerHandle | None = None
        self._installed: list[signal.Signals] = []

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._loop.add_signal_handler(signum, self._received, signum)
            except NotImplementedError:  # Windows: Ctrl-C interrupts as KeyboardInterrupt instead
                continue
            self._installed.append(signum)

    def remove(self) -> None:
        if self._at_deadline is not None:
            self._at_deadline.cancel()
        for signum in self._installed:
            self._loop.remove_signal_handler(signum)
        # Until the process ends (the embedded database may still stop), SIGTERM stays orderly.
        install_sigterm_handler()

    def _received(self, signum: signal.Signals) -> None:
        if self.requested.is_set():
            self._stop_at_once(f"a second {signum.name}")
        log.info("stopping", extra={"signal": signum.name, "within_seconds": self._timeout})
        self.requested.set()
        self.deadline = self._loop.time() + self._timeout
        self._at_deadline = self._loop.call_at(self.deadline, self._stop_at_once, "SHUTDOWN_TIMEOUT spent")

    def _stop_at_once(self, reason: str) -> None:
        log.warning("stopping at once: requests still in flight are cut short", extra={"reason": reason})
        self._on_stop_at_once()
        raise StoppedAtOnce(1)


def public_url_warning(host: str, public_url: str | None) -> str | None:
    """What to tell the operator when the server listens beyond this machine with no PUBLIC_URL: console
    sockets then check their Origin against the Host header the request names."""
    if public_url is not None:
        return None
    try:
        local = ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    if local:
        return None
    return (
        f"PUBLIC_URL is not set while listening on {host}: console sockets will trust the Host header for their "
        "Origin check; set PUBLIC_URL to the address browsers use (https://console.example.com)"
    )


def serve(app: web.Application, *, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop within SHUTDOWN_TIMEOUT: stop listening, close the console
    sockets (1012), let requests in flight finish, and close the loops and pools.

    A second Ctrl-C or SIGTERM, or the timeout spent, stops at once (`StoppedAtOnce`, exit code 1): every task
    is cancelled; transactions not committed roll back, and webhooks not answered are sent again by Meta.
    """
    settings = app[settings_key]
    timeout = settings.shutdown_timeout
    if (warning := public_url_warning(host, settings.public_url)) is not None:
        log.warning(warning)

    async def _serve() -> None:
        stop = _StopSignals(timeout, on_stop_at_once=lambda: _drop_database_connections(app))
        stop.install()
        try:
            runner = connection_limits.AppRunner(app, access_log=None, shutdown_timeout=timeout * _LAST_GRACE_SHARE)
            await runner.setup()
            try:
                site = web.TCPSite(runner, host, port)
                await site.start()
                bound_port = runner.addresses[0][1] if runner.addresses else port  # `--port 0` picks one
                on_ready(f"http://{host}:{bound_port}")
                _settle_garbage_collection()
                await stop.requested.wait()
                await _drain(runner, until=stop.deadline - timeout * (1 - _DRAIN_SHARE))
            finally:
                await runner.cleanup()
        finally:
            stop.remove()

    # Where the loop cannot take signals (Windows), Ctrl-C cancels `_serve`, whose cleanup runs, and ends here.
    with suppress(KeyboardInterrupt):
        run_async(_serve)


# Young objects collected once this many allocations outnumber deallocations (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def _settle_garbage_collection() -> None:
    """Once started: what start-up made (modules, the app, pools) is moved out of the collector's sight, and
    young collections come less often. Each request makes thousands of short-lived objects (rows, dicts),
    and the collector walking them every 700 allocations, and the whole heap on every older collection,
    was about 6% of a list call's time in a profile."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _drop_database_connections(app: web.Application) -> None:
    """Stopping at once: the pool's connections are cut (their transactions roll back), so that the cleanup
    the cancelled tasks still run finds a closed pool at once instead of waiting for connections to return."""
    if database_key in app:
        app[database_key].pool.terminate()


async def _drain(runner: web.AppRunner, *, until: float) -> None:
    """Stops listening, then waits (until the loop time `until`) for the requests in flight, whose connections
    still read: aiohttp's shutdown (`runner.cleanup`), which follows, would stop reading them at once."""
    for site in list(runner.sites):
        await site.stop()
    try:
        await asyncio.wait_for(drain(runner.app), timeout=max(0.0, until - asyncio.get_running_loop().time()))
    except TimeoutError:
        log.warning("requests still in flight are cancelled", extra={"requests": runner.app[in_flight_key].count})
