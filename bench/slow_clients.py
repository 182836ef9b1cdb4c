"""Benchmark of what clients that prove nothing can make the server hold: stalled bodies and trickled
requests against `fiv-console serve`, with the server's RSS before, during and after.

    python bench/slow_clients.py [--stalled-webhooks N] [--stalled-logins N] [--tricklers N] [--hold S]
                                 [--settle S] [--share F]

Against `DATABASE_URL` (a loopback server; its role must create databases and roles) or, when unset, the
embedded PostgreSQL, it makes a migrated scratch database, starts `python -m fiv_console serve` on a free
loopback port (its settings from the environment, so deadlines and budgets can be varied; `--share` sets
UNAUTHENTICATED_SHARE_PER_ADDRESS, since every client here comes from 127.0.0.1) and measures its RSS
(psutil) in four phases, one after the other:

- idle: after a few signed webhooks and sign-ins (every path warmed), settled;
- stalled webhooks, twice: N (100) connections each send a signed-looking `POST /webhooks/whatsapp`
  declaring 4 MiB and send all of it but the last 10 bytes, then wait. Which answers come within 2 s of
  connecting and with what status, the peak RSS while they are held (`--hold`, 5 s), and RSS `--settle` s
  after they all close;
- stalled sign-ins: 30 `POST /api/auth/login` declaring 4 MiB (sent likewise, 10 bytes short) and N (100)
  declaring 8 KiB, 10 bytes short; the same figures;
- tricklers: N (600) connections, half sending request headers one short line a second, half a body one
  byte a second (webhooks and sign-ins alike, after complete headers), for at most the header deadline plus
  the body deadline plus 20 s. When each got an answer (and which) and when the server closed it, against
  HEADER_TIMEOUT_SECONDS and BODY_TIMEOUT_SECONDS; the peak RSS, and RSS after.

It prints a table and one JSON line, stops the server with SIGTERM and drops the scratch database. The
target (docs/benchmarks.md): 100 stalled 4 MiB bodies add less than 50 MiB, and tricklers are cut off
within the header and body deadlines; nothing here asserts it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil
from _scratch import BenchError, Server, fail, measure_and_report, report_header, scratch_database, stop, wait_healthy

from fiv_console.serving import free_port
from fiv_console.settings import load_settings
from fiv_console.whatsapp.signature import sign

MiB = 1024 * 1024
TARGET_STALLED_MIB = 50.0
ANSWERED_AT_ONCE_SECONDS = 2.0
SAMPLE_SECONDS = 0.1
_SETTINGS = (
    "header_timeout_seconds",
    "body_timeout_seconds",
    "unauthenticated_bodies_at_once",
    "unauthenticated_body_bytes",
    "unauthenticated_share_per_address",
    "unauthenticated_body_grace_seconds",
    "unauthenticated_body_min_bytes_per_second",
)
_DEFAULT_DEADLINES = {"header_timeout_seconds": 15.0, "body_timeout_seconds": 30.0}


@dataclass
class Connection:
    """One client connection and what became of it, in seconds from its phase's start."""

    kind: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened_at: float
    status: int | None = None
    answered_at: float | None = None
    closed_at: float | None = None
    watcher: asyncio.Task[None] | None = None

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
        self.writer.close()


@dataclass
class RssSampler:
    """The server's RSS every 100 ms, in MiB; `peak` since the last `reset`."""

    process: psutil.Process
    peak: float = 0.0
    task: asyncio.Task[None] | None = field(default=None)

    def now(self) -> float:
        rss: int = self.process.memory_info().rss
        return rss / MiB

    def reset(self) -> None:
        self.peak = self.now()

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            await asyncio.sleep(SAMPLE_SECONDS)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _webhook_head(length: int) -> bytes:
    headers = {"Content-Type": "application/json", "Content-Length": str(length)}
    return _head("POST", "/webhooks/whatsapp", {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64})


def _login_head(length: int) -> bytes:
    return _head("POST", "/api/auth/login", {"Content-Type": "application/json", "Content-Length": str(length)})


async def _watch(connection: Connection, started: float) -> None:
    """Notes the first answer's status and when the server closes the connection."""
    buffered = b""
    try:
        while chunk := await connection.reader.read(65536):
            if connection.status is None:
                buffered += chunk
                if b"\r\n" in buffered:
                    connection.status = int(buffered.split(b" ", 2)[1])
                    connection.answered_at = time.monotonic() - started
    except (ConnectionError, ValueError, IndexError):
        pass
    connection.closed_at = time.monotonic() - started


async def _open(port: int, kind: str, started: float) -> Connection:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
    connection = Connection(kind, reader, writer, opened_at=time.monotonic() - started)
    connection.watcher = asyncio.create_task(_watch(connection, started))
    return connection


async def _send(connection: Connection, data: bytes) -> None:
    """Writes `data`; a server that closed the connection (or stopped reading for long) ends the attempt."""
    with suppress(ConnectionError, TimeoutError):
        connection.writer.write(data)
        await asyncio.wait_for(connection.writer.drain(), 30)


async def _stalled(port: int, started: float, kind: str, head: bytes, length: int) -> Connection:
    connection = await _open(port, kind, started)
    await _send(connection, head + b" " * (length - 10))
    return connection


def _answers(connections: list[Connection]) -> dict[str, Any]:
    """Per kind: how many, the statuses of the answers within 2 s of connecting, the slowest of those, the
    later answers, and how many were held (no answer) until the clients left."""
    kinds: dict[str, Any] = {}
    for kind in sorted({c.kind for c in connections}):
        of_kind = [c for c in connections if c.kind == kind]
        at_once = [
            c for c in of_kind if c.answered_at is not None and c.answered_at - c.opened_at <= ANSWERED_AT_ONCE_SECONDS
        ]
        later = [c for c in of_kind if c.status is not None and c not in at_once]
        kinds[kind] = {
            "connections": len(of_kind),
            "answered_within_2s": dict(Counter(str(c.status) for c in at_once)),
            "slowest_answer_s": max(((c.answered_at or 0.0) - c.opened_at for c in at_once), default=None),
            "answered_later": dict(Counter(str(c.status) for c in later)),
            "held_without_answer": sum(c.status is None for c in of_kind),
        }
    return kinds


async def _stalled_phase(
    port: int, rss: RssSampler, openers: list[Callable[[float], Awaitable[Connection]]], *, hold: float, settle: float
) -> dict[str, Any]:
    before = rss.now()
    rss.reset()
    started = time.monotonic()
    connections = list(await asyncio.gather(*(opener(started) for opener in openers)))
    sent_all = time.monotonic() - started
    await asyncio.sleep(hold)
    during, held = rss.peak, rss.now()
    report = {
        "rss_before_mib": before,
        "rss_peak_during_mib": during,
        "rss_end_of_hold_mib": held,
        "added_peak_mib": during - before,
        "seconds_to_send": sent_all,
        "answers": _answers(connections),
    }
    for connection in connections:
        connection.close()
    await asyncio.sleep(settle)
    report["rss_after_mib"] = rss.now()
    report["added_after_mib"] = report["rss_after_mib"] - before
    return report


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


async def _trickle(connection: Connection, first: bytes, step: Callable[[int], bytes]) -> None:
    await _send(connection, first)
    for number in range(10_000):
        if connection.closed_at is not None:
            return
        await asyncio.sleep(1.0)
        await _send(connection, step(number))


async def _trickle_phase(
    port: int, rss: RssSampler, count: int, *, header_timeout: float, body_timeout: float, settle: float
) -> dict[str, Any]:
    before = rss.now()
    rss.reset()
    started = time.monotonic()
    plans: list[tuple[str, bytes, Callable[[int], bytes]]] = []
    for number in range(count):
        if number % 2 == 0:
            plans.append(
                ("headers", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n", lambda n: f"X-{n}: y\r\n".encode())
            )
        elif number % 4 == 1:
            plans.append(("webhook body", _webhook_head(100_000), lambda n: b" "))
        else:
            plans.append(("sign-in body", _login_head(4000), lambda n: b" "))
    connections = [await _open(port, kind, started) for kind, _, _ in plans]
    tricklers = [
        asyncio.create_task(_trickle(connection, first, step))
        for connection, (_, first, step) in zip(connections, plans, strict=True)
    ]
    window = header_timeout + body_timeout + 20.0
    while time.monotonic() - started < window and any(c.closed_at is None for c in connections):  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    during = rss.peak
    for trickler in tricklers:
        trickler.cancel()
    report: dict[str, Any] = {"rss_before_mib": before, "rss_peak_during_mib": during, "window_s": window}
    kinds: dict[str, Any] = {}
    for kind in ("headers", "webhook body", "sign-in body"):
        of_kind = [c for c in connections if c.kind == kind]
        kinds[kind] = {
            "connections": len(of_kind),
            "answers": dict(Counter(str(c.status) for c in of_kind if c.status is not None)),
            "answered_at_s": _spread([c.answered_at for c in of_kind if c.answered_at is not None]),
            "closed": sum(c.closed_at is not None for c in of_kind),
            "closed_at_s": _spread([c.closed_at for c in of_kind if c.closed_at is not None]),
            "still_open_at_end": sum(c.closed_at is None for c in of_kind),
        }
    report["kinds"] = kinds
    for connection in connections:
        connection.close()
    await asyncio.sleep(settle)
    report["rss_after_mib"] = rss.now()
    return report


async def _warm_up(session: aiohttp.ClientSession, base: str, app_secret: str) -> None:
    """A few real webhooks and sign-ins, so the idle figure includes every path the phases take."""
    body = b'{"object": "whatsapp_business_account", "entry": []}'
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(app_secret.encode(), body)}
    login = {"email": "nobody@example.com", "password": "not the password"}
    for _ in range(5):
        async with session.post(f"{base}/webhooks/whatsapp", data=body, headers=headers) as response:
            await response.read()
        async with session.post(f"{base}/api/auth/login", json=login) as response:
            await response.read()


async def run(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_secret = secrets.token_urlsafe(32)
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_APP_URL", "REDIS_URL")}
    if args.share is not None:
        environment["UNAUTHENTICATED_SHARE_PER_ADDRESS"] = str(args.share)
    settings = load_settings(**({"unauthenticated_share_per_address": args.share} if args.share else {}))
    # Read with fallbacks, so that the same script can measure a server from before these settings existed
    # (PYTHONPATH at an older checkout): its clients are then watched for the defaults' window.
    configured = {name: getattr(settings, name, None) for name in _SETTINGS}
    deadlines = {name: configured[name] or default for name, default in _DEFAULT_DEADLINES.items()}
    async with scratch_database(server, "fiv_bench_slow") as scratch:
        environment.update(
            {
                "SECRET_KEY": secrets.token_urlsafe(32),
                "WHATSAPP_APP_SECRET": app_secret,
                "DATABASE_URL": scratch.owner_url,
                "LOG_LEVEL": "WARNING",
            }
        )
        with tempfile.TemporaryFile() as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fiv_console",
                "serve",
                "--port",
                str(port),
                env=environment,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
            try:
                async with aiohttp.ClientSession() as session:
                    try:
                        await wait_healthy(session, f"{base}/health", process)
                    except BenchError as exc:
                        stderr.seek(0)
                        raise BenchError(f"{exc}\n{stderr.read()[-2000:].decode(errors='replace')}") from None
                    await _warm_up(session, base, app_secret)
                rss = RssSampler(psutil.Process(process.pid))
                rss.task = asyncio.create_task(rss.run())
                await asyncio.sleep(args.settle)
                idle = rss.now()
                # Twice: whatever the first flood leaves behind should be reused by the second, not added to.
                webhooks = [
                    await _stalled_phase(
                        port,
                        rss,
                        [
                            lambda started: _stalled(port, started, "webhook 4 MiB", _webhook_head(4 * MiB), 4 * MiB)
                            for _ in range(args.stalled_webhooks)
                        ],
                        hold=args.hold,
                        settle=args.settle,
                    )
                    for _ in range(2)
                ]
                logins = await _stalled_phase(
                    port,
                    rss,
                    [
                        *(
                            lambda started: _stalled(port, started, "sign-in 4 MiB", _login_head(4 * MiB), 4 * MiB)
                            for _ in range(30)
                        ),
                        *(
                            lambda started: _stalled(port, started, "sign-in 8 KiB", _login_head(8192), 8192)
                            for _ in range(args.stalled_logins)
                        ),
                    ],
                    hold=args.hold,
                    settle=args.settle,
                )
                tricklers = await _trickle_phase(
                    port,
                    rss,
                    args.tricklers,
                    header_timeout=deadlines["header_timeout_seconds"],
                    body_timeout=deadlines["body_timeout_seconds"],
                    settle=args.settle,
                )
                rss.task.cancel()
            finally:
                await stop(process, signal.SIGTERM)
        version = scratch.postgres_version
    return {
        **report_header("slow_clients", server, version, load_before),
        "settings": configured,
        "hold_seconds": args.hold,
        "settle_seconds": args.settle,
        "target_stalled_mib": TARGET_STALLED_MIB,
        "idle_rss_mib": idle,
        "stalled_webhooks": webhooks,
        "stalled_logins": logins,
        "tricklers": tricklers,
    }


def _print_stalled(title: str, phase: dict[str, Any]) -> None:
    print(
        f"{title}: RSS {phase['rss_before_mib']:.1f} -> peak {phase['rss_peak_during_mib']:.1f} "
        f"(+{phase['added_peak_mib']:.1f}) -> after {phase['rss_after_mib']:.1f} MiB "
        f"(+{phase['added_after_mib']:.1f}); all sent in {phase['seconds_to_send']:.1f} s"
    )
    for kind, answers in phase["answers"].items():
        slowest = answers["slowest_answer_s"]
        print(
            f"  {kind:<15} {answers['connections']:>4} connections; answered within 2 s: "
            f"{answers['answered_within_2s'] or '-'}"
            + (f" (slowest {slowest:.2f} s)" if slowest is not None else "")
            + f"; later: {answers['answered_later'] or '-'}; held without an answer: {answers['held_without_answer']}"
        )


def _spread_text(spread: dict[str, float] | None) -> str:
    return "-" if spread is None else f"{spread['min']:.1f} / {spread['median']:.1f} / {spread['max']:.1f} s"


def print_table(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print(
        f"slow clients against fiv-console serve on {report['server']} PostgreSQL {report['postgres']}; "
        f"header deadline {settings['header_timeout_seconds']} s, body deadline {settings['body_timeout_seconds']} s, "
        f"budget {settings['unauthenticated_bodies_at_once']} bodies / {settings['unauthenticated_body_bytes']} "
        f"bytes per route, share per address {settings['unauthenticated_share_per_address']}, "
        f"grace {settings['unauthenticated_body_grace_seconds']} s, "
        f"pace {settings['unauthenticated_body_min_bytes_per_second']} bytes/s"
    )
    print(f"idle RSS {report['idle_rss_mib']:.1f} MiB; target: 100 stalled 4 MiB bodies add < 50 MiB")
    for number, phase in enumerate(report["stalled_webhooks"], start=1):
        _print_stalled(f"stalled webhooks, round {number}", phase)
    _print_stalled("stalled sign-ins", report["stalled_logins"])
    trick = report["tricklers"]
    print(
        f"tricklers: RSS {trick['rss_before_mib']:.1f} -> peak {trick['rss_peak_during_mib']:.1f} -> after "
        f"{trick['rss_after_mib']:.1f} MiB; watched for at most {trick['window_s']:g} s"
    )
    print(f"  {'kind':<13} {'conns':>5} {'answers':<20} {'answered min/med/max':<24} {'closed min/med/max':<22} open")
    for kind, k in trick["kinds"].items():
        print(
            f"  {kind:<13} {k['connections']:>5} {k['answers'] or '-'!s:<20} {_spread_text(k['answered_at_s']):<24} "
            f"{_spread_text(k['closed_at_s']):<24} {k['still_open_at_end']}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description="What stalled and trickling clients make the server hold.")
    parser.add_argument("--stalled-webhooks", type=int, default=100, help="stalled 4 MiB webhook bodies (100)")
    parser.add_argument("--stalled-logins", type=int, default=100, help="stalled 8 KiB sign-in bodies (100)")
    parser.add_argument("--tricklers", type=int, default=600, help="header and body trickling connections (600)")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds stalled clients are held (5)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS after a phase (3)")
    parser.add_argument("--share", type=float, help="UNAUTHENTICATED_SHARE_PER_ADDRESS for the server")
    args = parser.parse_args()
    if not 1 <= args.stalled_webhooks <= 1000 or not 1 <= args.stalled_logins <= 1000:
        return fail("--stalled-webhooks and --stalled-logins must be between 1 and 1000")
    if not 2 <= args.tricklers <= 2000:
        return fail("--tricklers must be between 2 and 2000")
    if not 0 <= args.hold <= 60 or not 0 <= args.settle <= 60:
        return fail("--hold and --settle must be between 0 and 60")
    if args.share is not None and not 0 < args.share <= 1:
        return fail("--share must be above 0 and at most 1")
    return measure_and_report(lambda server: run(server, args), print_table)


if __name__ == "__main__":
    sys.exit(main())
