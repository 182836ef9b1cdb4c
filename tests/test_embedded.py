"""The embedded default: with no DATABASE_URL, `serve` starts PostgreSQL in FIV_DATA_DIR, migrates it, serves,
and stops it again on Ctrl-C or SIGTERM; the data stays for the next start, and other commands join the
running server instead of starting (or stopping) their own.

These run the real command line; DATABASE_URL of the outer environment is always removed for the child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from fiv_console.db.migrations import load_migrations
from fiv_console.serving import free_port
from tests.conftest import project_root

START_DEADLINE_SECONDS = 90.0
STOP_DEADLINE_SECONDS = 60.0
CLI_TIMEOUT_SECONDS = 90.0
_OUTER_VARIABLES = ("DATABASE_URL", "DATABASE_APP_URL", "REDIS_URL", "HOST", "PORT", "LOG_LEVEL", "FIV_DATA_DIR")


def embedded_env(data_dir: Path, log_level: str = "WARNING") -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key.upper() not in _OUTER_VARIABLES}
    env.update(FIV_DATA_DIR=str(data_dir), LOG_LEVEL=log_level)
    return env


def processes_mentioning(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line names the data folder (the embedded postmaster does: `-D`)."""
    needle = str(data_dir.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(needle in arg for arg in cmdline) and proc.pid != os.getpid():
            found.append(proc)
    return found


def assert_no_process_left(data_dir: Path) -> None:
    # `pg_ctl stop -w` returns once the postmaster has removed its pid file, a moment before it exits.
    deadline = time.monotonic() + 3
    while (left := processes_mentioning(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], [proc.info for proc in left]
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fiv_console", *args],
        env=embedded_env(data_dir),
        cwd=project_root(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def created_id(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, run
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run
    record_id: str = orjson.loads(lines[0])["id"]
    return record_id


@dataclass
class Server:
    """A `fiv-console serve` in its own session (as a terminal's foreground job would be), logs in files."""

    proc: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def health(self) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    def wait_healthy(self) -> dict[str, Any]:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        last: object = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}: {self.stderr}"
            try:
                status, body = self.health()
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = exc
            else:
                if status == 200:
                    return body
                last = (status, body)
            time.sleep(0.1)
        raise AssertionError(f"no healthy answer within {START_DEADLINE_SECONDS}s (last: {last}): {self.stderr}")

    def stop(self, signum: signal.Signals) -> int:
        """Ctrl-C reaches the terminal's whole foreground group; a supervisor's SIGTERM only the process."""
        if signum == signal.SIGINT:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout=STOP_DEADLINE_SECONDS)

    def migrations_applied(self) -> list[list[str]]:
        """What each "migrations done" log line says was applied."""
        lines = [orjson.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]
        return [line["applied"] for line in lines if line["msg"] == "migrations done"]


@contextmanager
def serving(data_dir: Path, logs: Path) -> Iterator[Server]:
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    stdout_path, stderr_path = logs / "stdout", logs / "stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fiv_console", "serve", "--port", str(port)],
            env=embedded_env(data_dir, log_level="INFO"),
            cwd=project_root(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield Server(proc=proc, port=port, stdout_path=stdout_path, stderr_path=stderr_path)
    finally:
        # Only when the test failed half-way: stop what this test started, by pid.
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """FIV_DATA_DIR of the test; a PostgreSQL the test left running there is stopped afterwards, by pid."""
    path = tmp_path / "data"
    yield path
    leftovers = processes_mentioning(path)
    for proc in leftovers:
        proc.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=10)
    for proc in alive:
        proc.kill()


def test_serve_starts_stops_on_ctrl_c_and_sigterm_and_keeps_its_data(tmp_path: Path, data_dir: Path) -> None:
    all_migrations = [m.file_name for m in load_migrations()]

    with serving(data_dir, tmp_path / "first") as first:
        body = first.wait_healthy()
        assert body["status"] == "ok", body
        assert body["checks"]["database"]["status"] == "ok", body
        assert first.stdout == f"serving on http://127.0.0.1:{first.port}\n"
        assert processes_mentioning(data_dir) != []
        assert first.stop(signal.SIGINT) == 0, first.stderr
    assert first.migrations_applied() == [all_migrations]
    assert "Traceback" not in first.stderr
    assert_no_process_left(data_dir)
    assert (data_dir / "postgres" / "PG_VERSION").exists()

    with serving(data_dir, tmp_path / "second") as second:
        body = second.wait_healthy()
        assert (body["status"], body["checks"]["database"]["status"]) == ("ok", "ok"), body
        assert second.stop(signal.SIGTERM) == 0, second.stderr
    assert second.migrations_applied() == [[]]
    assert "Traceback" not in second.stderr
    assert_no_process_left(data_dir)


def test_an_admin_command_joins_the_running_server_and_leaves_it_running(tmp_path: Path, data_dir: Path) -> None:
    with serving(data_dir, tmp_path / "serve") as server:
        server.wait_healthy()
        postmaster = postmaster_pid(data_dir)

        tenant_id = created_id(run_cli(data_dir, "tenant", "create", "--name", "Joined", "--json"))
        assert server.proc.poll() is None
        assert server.health()[0] == 200
        created_id(run_cli(data_dir, "queue", "create", "--tenant", tenant_id, "--name", "Q", "--json"))
        assert server.health()[0] == 200
        assert postmaster_pid(data_dir) == postmaster
        assert psutil.pid_exists(postmaster)

        assert server.stop(signal.SIGTERM) == 0, server.stderr
    assert_no_process_left(data_dir)

    # With nothing running, the command starts the server itself (finding the tenant: the data stays)
    # and stops it when done.
    created_id(run_cli(data_dir, "queue", "create", "--tenant", tenant_id, "--name", "Later", "--json"))
    assert_no_process_left(data_dir)


def test_after_a_crash_the_next_serve_still_stops_the_server(tmp_path: Path, data_dir: Path) -> None:
    with serving(data_dir, tmp_path / "crashed") as crashed:
        crashed.wait_healthy()
        crashed.proc.kill()  # as the OOM killer would: no clean-up at all
        crashed.proc.wait(timeout=STOP_DEADLINE_SECONDS)
    assert processes_mentioning(data_dir) != []  # nobody stopped it: the next start joins it

    with serving(data_dir, tmp_path / "next") as following:
        following.wait_healthy()
        assert following.stop(signal.SIGINT) == 0, following.stderr
    assert_no_process_left(data_dir)
