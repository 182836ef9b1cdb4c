"""Benchmark of the idle server's memory: `fiv-console serve` RSS against a bare aiohttp process's.

    python bench/idle_memory.py [--settle S] [--requests N]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or, when unset, the
embedded PostgreSQL in `FIV_DATA_DIR`, it makes a migrated scratch database and starts two processes on
free loopback ports, one after the other:

- ceiling: a bare aiohttp application on uvloop answering `GET /health` (the interpreter, aiohttp and
  uvloop loaded: the floor any aiohttp server pays);
- server:  `python -m fiv_console serve` on the scratch database, as `fiv_app` (its pool opened, RLS
  checks and schema check passed).

For each it waits for `/health` to answer 200, lets it settle, reads `VmRSS` and `VmHWM` from
`/proc/<pid>/status` (Linux only), sends N sequential `/health` requests and reads them again. It prints a
table and one JSON line, stops both processes with SIGTERM and drops the scratch database. The target
(docs/benchmarks.md) is an idle server at or under 150 MB RSS; nothing here asserts it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from _scratch import BenchError, Server, fail, measure_and_report, scratch_database, stop, wait_healthy

from fiv_console.serving import free_port

TARGET_IDLE_MB = 150.0

# The floor: what an aiohttp server on uvloop costs before any of our code, in the same interpreter.
_BARE_SERVER = """
import sys
import uvloop
from aiohttp import web

async def health(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, loop=uvloop.new_event_loop())
"""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    idle_rss_mb: float
    idle_hwm_mb: float
    after_requests_rss_mb: float
    after_requests_hwm_mb: float
    ratio: float  # idle RSS relative to the bare aiohttp process of the same run


def _status_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


async def sample(
    name: str, command: list[str], env: dict[str, str], port: int, *, settle: float, requests: int
) -> tuple[float, float, float, float]:
    url = f"http://127.0.0.1:{port}/health"
    with tempfile.TemporaryFile() as stderr:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr
        )
        try:
            async with aiohttp.ClientSession() as session:
                try:
                    await wait_healthy(session, url, process)
                except BenchError as exc:
                    stderr.seek(0)
                    tail = stderr.read()[-2000:].decode(errors="replace")
                    raise BenchError(f"{name}: {exc}\n{tail}") from None
                await asyncio.sleep(settle)
                idle = _status_mb(process.pid)
                for _ in range(requests):
                    async with session.get(url) as response:
                        await response.read()
                await asyncio.sleep(settle)
                after = _status_mb(process.pid)
        finally:
            await stop(process, signal.SIGTERM)  # the server's orderly exit
    return idle[0], idle[1], after[0], after[1]


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_APP_URL", "REDIS_URL")}
    bare_port, server_port = free_port(), free_port()
    async with scratch_database(server, "fiv_bench_mem") as scratch:
        bare = await sample(
            "bare aiohttp",
            [sys.executable, "-c", _BARE_SERVER, str(bare_port)],
            base_env,
            bare_port,
            settle=args.settle,
            requests=args.requests,
        )
        # With DATABASE_URL set the server starts no embedded PostgreSQL of its own: it is measured alone.
        ours = await sample(
            "fiv-console serve",
            [sys.executable, "-m", "fiv_console", "serve", "--port", str(server_port)],
            # A configured database asks for a shared SECRET_KEY (sessions); a throwaway one serves here.
            {"SECRET_KEY": secrets.token_urlsafe(32), **base_env, "DATABASE_URL": scratch.owner_url},
            server_port,
            settle=args.settle,
            requests=args.requests,
        )
        version = scratch.postgres_version
    samples = [
        Sample(name, *values, ratio=values[0] / bare[0])
        for name, values in (("bare aiohttp", bare), ("fiv-console serve", ours))
    ]
    return {
        "bench": "idle_memory",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": server.kind,
        "postgres": version,
        "settle_seconds": args.settle,
        "requests": args.requests,
        "target_idle_mb": TARGET_IDLE_MB,
        "within_target": ours[0] <= TARGET_IDLE_MB,
        "results": [asdict(s) for s in samples],
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"idle memory on {report['server']} PostgreSQL {report['postgres']}: settle {report['settle_seconds']:g} s, "
        f"then {report['requests']} GET /health; target idle <= {report['target_idle_mb']:g} MB"
    )
    print(f"{'process':<20} {'idle RSS':>9} {'idle HWM':>9} {'RSS after':>10} {'HWM after':>10} {'ratio':>6}")
    for s in report["results"]:
        print(
            f"{s['name']:<20} {s['idle_rss_mb']:>6.1f} MB {s['idle_hwm_mb']:>6.1f} MB "
            f"{s['after_requests_rss_mb']:>7.1f} MB {s['after_requests_hwm_mb']:>7.1f} MB {s['ratio']:>6.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure the idle server's RSS against a bare aiohttp process.")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait before reading (3)")
    parser.add_argument("--requests", type=int, default=1000, help="GET /health between the readings (1000)")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        return fail("reads /proc/<pid>/status: Linux only")
    if not 0 <= args.settle <= 300:
        return fail("--settle must be between 0 and 300")
    if not 0 <= args.requests <= 100_000:
        return fail("--requests must be between 0 and 100000")
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
