"""A non-editable install: the wheel built from the checkout, installed in a venv of its own outside it.

The wheel must carry every module and the top-level `sql/`, `templates/` and `static/` folders (inside the
package), and its `fiv-console`, run away from the checkout with nothing on `PYTHONPATH`, must migrate a fresh
database and serve `/health`, the rendered `/login` and the static files from its own copies. Building and
installing take about half a minute (pip's cache serves the dependencies), so it is done once per module.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from fiv_console.serving import free_port
from tests.conftest import TestDatabase, project_root

ROOT = project_root()
DATA_FOLDERS = ("sql", "templates", "static")
# What a copy of the checkout leaves out: tools' state, and earlier builds (setuptools' build/ would carry
# files since removed into the wheel).
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".fiv-data"
)
COMMAND_TIMEOUT = 120.0
START_DEADLINE = 60.0


@dataclass(frozen=True)
class Installed:
    """A venv outside the checkout with the wheel installed, and a scratch folder to run its commands in."""

    venv: Path
    workdir: Path

    @property
    def fiv_console(self) -> Path:
        return self.venv / "bin" / "fiv-console"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _outside_env(**extra: str) -> dict[str, str]:
    """A bare environment: nothing that points into the checkout (no PYTHONPATH, VIRTUAL_ENV or PATH entry
    inside it), and none of the outer settings (DATABASE_URL, REDIS_URL, ...)."""
    path = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if entry and not Path(entry).resolve().is_relative_to(ROOT)
    )
    env = {"PATH": path, "LOG_LEVEL": "WARNING"}
    for kept in ("HOME", "LANG", "LC_ALL", "TMPDIR"):
        if kept in os.environ:
            env[kept] = os.environ[kept]
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as `pip wheel` builds it, from a clean copy of the checkout."""
    scratch = tmp_path_factory.mktemp("wheel")
    source = scratch / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", scratch / "dist", source], cwd=scratch)
    (built,) = (scratch / "dist").glob("fiv_console-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    scratch = tmp_path_factory.mktemp("installed")
    assert not scratch.resolve().is_relative_to(ROOT), "the install must live outside the checkout (--basetemp)"
    venv, workdir = scratch / "venv", scratch / "work"
    workdir.mkdir()
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=scratch)
    # This suite's pip installs into the new venv (a pip of its own would only add its start-up).
    _run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", "--no-compile", wheel],
        cwd=scratch,
    )
    return Installed(venv=venv, workdir=workdir)


def _checkout_files() -> set[str]:
    """What the wheel must hold, as paths inside it: the package's modules and the data folders' files."""
    package = ROOT / "fiv_console"
    files = {f"fiv_console/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    for folder in DATA_FOLDERS:
        files |= {
            f"fiv_console/{folder}/{p.relative_to(ROOT / folder).as_posix()}"
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
    return files


def test_the_wheel_carries_every_module_and_the_data_folders(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert any(name.startswith("fiv_console/sql/") for name in names)
    assert _checkout_files() - names == set()
    assert not any(name.startswith(tuple(f"{folder}/" for folder in DATA_FOLDERS)) for name in names), (
        "the data folders belong inside the package, not at the top of site-packages"
    )


def test_the_installed_package_reads_its_own_copies(installed: Installed) -> None:
    script = (
        "from fiv_console import resources as r\n"
        "print(r.PACKAGE_DIR, r.SQL_DIR, r.TEMPLATES_DIR, r.STATIC_DIR, sep='\\n')"
    )
    output = _run([installed.python, "-c", script], cwd=installed.workdir, env=_outside_env())
    package, *found = output.splitlines()
    venv = installed.venv.resolve()
    assert Path(package).is_relative_to(venv), package
    assert len(found) == len(DATA_FOLDERS)
    for folder, name in zip(found, DATA_FOLDERS, strict=True):
        assert Path(folder).is_relative_to(venv), folder
        assert Path(folder).name == name
        assert Path(folder).is_dir(), folder


@asynccontextmanager
async def _serving(installed: Installed, env: dict[str, str], port: int) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        installed.fiv_console,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        cwd=installed.workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await process.communicate()
        except TimeoutError:
            process.kill()
            await process.communicate()


async def _wait_for_health(http: aiohttp.ClientSession, base: str) -> dict[str, object]:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{base}/health") as response:
                if response.status == 200:
                    health: dict[str, object] = await response.json()
                    return health
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.2)
    pytest.fail(f"the installed server did not answer /health within {START_DEADLINE}s")


@pytest.fixture
def outside_database(installed: Installed, fresh_database: TestDatabase) -> dict[str, str]:
    """The installed command's environment, on a fresh database it migrated itself."""
    env = _outside_env(DATABASE_URL=fresh_database.owner_url, SECRET_KEY="wheel-test-secret-key-0123456789")
    _run([installed.fiv_console, "migrate"], cwd=installed.workdir, env=env)
    return env


async def test_the_installed_command_migrates_and_serves_pages_and_static_files(
    installed: Installed, outside_database: dict[str, str]
) -> None:
    async with (
        _serving(installed, outside_database, free_port()) as base,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
    ):
        health = await _wait_for_health(http, base)
        assert health["status"] == "ok", health

        async with http.get(f"{base}/login") as response:
            page = await response.text()
            assert response.status == 200, page
            assert response.content_type == "text/html"
        assert "<title>Sign in · Fi.V Console</title>" in page
        assert '<form id="login-form"' in page
        assert 'src="/static/login.js' in page
        assert "{%" not in page
        assert "{{" not in page

        async with http.get(f"{base}/static/login.js") as response:
            assert response.status == 200
            assert "javascript" in response.content_type
            assert await response.read() == (ROOT / "static" / "login.js").read_bytes()
