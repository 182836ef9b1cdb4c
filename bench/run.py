"""Every benchmark in one go: each script of `bench/` run in turn, short or full, and their tables recorded.

    python bench/run.py [--mode short|full] [--only NAME] [--no-record] [--out FILE] [--timeout S]

Each script runs as its own process (`python bench/<script>.py` with the mode's options), on the same
`DATABASE_URL` or embedded PostgreSQL it would use alone, and measures its own ceiling in the same run, as
it always does; this runner adds nothing to the figures. Its human table and its JSON line are kept.

`short` is a smoke of every script (about three minutes on two cores): small sizes and a few seconds
each, so that CI (`.ci/run`) proves the scripts still run against today's code; its figures say little.
`full` runs each script with its own defaults, the sizes the targets are stated for (one to two hours).

At the end a dated section is written into `docs/benchmarks.md` (or `--out`), above the older ones: the
machine, the commit, and per script its command, how long it took, and its table. `--no-record` only
prints. The exit code is 1 when a script failed (its output tail is printed), else 0: timing never fails
a run, a script that no longer runs does.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOC = ROOT / "docs" / "benchmarks.md"

# Options per script and mode; `full` is each script's defaults. The order puts the cheap ones first, so a
# broken environment shows in seconds.
SHORT: dict[str, list[str]] = {
    "tenant_tx": ["--seconds", "0.5", "--rounds", "1", "--tenants", "10"],
    "idle_memory": ["--settle", "1", "--requests", "200"],
    "intake": ["--seconds", "1", "--rounds", "1", "--rate", "200", "--customers", "200", "--tenants", "2"],
    "tenants_idle": ["--tenants", "200", "--instances", "2", "--seconds", "1", "--settle", "1"],
    "assignment": [
        "--agents", "20", "--capacity", "2", "--conversations", "60", "--rate", "10",
        "--seconds", "2", "--warmup", "1", "--instances", "1",
    ],
    "realtime": [
        "--agents", "20", "--rate", "50", "--seconds", "1", "--warmup", "0.5", "--sockets", "50", "--workers", "1",
    ],
    "console_api": ["--conversations", "1000", "--messages-each", "2", "--seconds", "0.1"],
    "wallboard": ["--conversations", "1000", "--messages-each", "2", "--reads", "20", "--seconds", "1"],
    "reports": ["--conversations", "1000", "--messages-each", "2", "--export-rows", "2000", "--runs", "1"],
    "slow_clients": [
        "--stalled-webhooks", "3", "--stalled-logins", "3", "--tricklers", "6", "--hold", "0.5", "--settle", "0.2",
    ],
    "soak": ["--seconds", "8", "--warmup", "2", "--rate", "40", "--agents", "20", "--sample", "2"],
}  # fmt: skip
FULL: dict[str, list[str]] = {name: [] for name in SHORT}


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    command: list[str]
    seconds: float
    code: int | None  # None: stopped at the timeout
    table: str
    report: dict[str, object] | None
    errors: str


def scripts_in_bench() -> list[str]:
    """The scripts of bench/ (not this runner, not the helpers whose names start with `_`)."""
    return sorted(p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_") and p.stem != "run")


def run_one(name: str, options: list[str], timeout: float) -> Outcome:
    command = [sys.executable, str(BENCH / f"{name}.py"), *options]
    started = time.monotonic()
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        code: int | None = done.returncode
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        stdout = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    lines = stdout.rstrip("\n").split("\n")
    report = None
    if code == 0 and lines and lines[-1].startswith("{"):
        report = orjson.loads(lines[-1])
        lines = lines[:-1]
    shown = [sys.executable.rsplit("/", 1)[-1], f"bench/{name}.py", *options]
    return Outcome(name, shown, time.monotonic() - started, code, "\n".join(lines).strip(), report, stderr)


def _commit() -> str:
    try:
        found = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "unknown"
    return found.stdout.strip() or "unknown"


def _postgres_version(outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        if outcome.report and isinstance(outcome.report.get("postgres"), str):
            return str(outcome.report["postgres"])
    return "unknown"


def section(mode: str, outcomes: list[Outcome], load_before: float) -> str:
    """The dated Markdown section for docs/benchmarks.md."""
    now = datetime.now(UTC)
    memory_gib = psutil.virtual_memory().total / 2**30
    database = "DATABASE_URL's server" if os.environ.get("DATABASE_URL") else "the embedded PostgreSQL"
    lines = [
        f"## {now:%Y-%m-%d}: every benchmark, {mode} mode (`bench/run.py`)",
        "",
        f"**Machine**: `nproc` {os.cpu_count()}, {memory_gib:.1f} GiB, {platform.python_implementation()} "
        f"{platform.python_version()}, PostgreSQL {_postgres_version(outcomes)} ({database}); load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after. **Code**: `{_commit()}`. Finished "
        f"{now:%H:%M} UTC.",
        "",
    ]
    if mode == "short":
        lines += [
            "Short mode is a smoke: small sizes and a few seconds per script, so the figures say little beyond "
            "that every script runs; each table still holds its own ceiling.",
            "",
        ]
    lines += ["| script | exit | seconds |", "|---|---|---|"]
    for outcome in outcomes:
        exit_text = "timed out" if outcome.code is None else str(outcome.code)
        lines.append(f"| `{outcome.name}` | {exit_text} | {outcome.seconds:.0f} |")
    for outcome in outcomes:
        lines += ["", f"### `{outcome.name}`", "", "```sh", " ".join(outcome.command), "```", ""]
        body = outcome.table if outcome.code == 0 else _tail(outcome)
        lines += ["```text", body or "(no output)", "```"]
    return "\n".join(lines) + "\n"


def _tail(outcome: Outcome) -> str:
    return "\n".join((outcome.table + "\n" + outcome.errors).strip().split("\n")[-30:])


def record(text: str, path: Path) -> None:
    """Write `text` above the first dated section of `path` (the newest first, as the page keeps them)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    head, marker, rest = old.partition("\n## ")
    joined = f"{head.rstrip()}\n\n{text}\n## {rest}" if marker else f"{old.rstrip()}\n\n{text}"
    path.write_text(joined)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("short", "full"), default="short", help="sizes: a smoke, or the targets'")
    parser.add_argument("--only", action="append", help="only this script (repeatable), e.g. --only soak")
    parser.add_argument("--no-record", action="store_true", help="print only; write no section")
    parser.add_argument("--out", type=Path, default=DOC, help="the page the section goes into (docs/benchmarks.md)")
    parser.add_argument("--timeout", type=float, help="most seconds per script (short 300, full 7200)")
    args = parser.parse_args()
    options = SHORT if args.mode == "short" else FULL
    present = scripts_in_bench()
    unknown = sorted(set(present) - set(options))
    if unknown:
        print(f"run.py: no {args.mode} options for {', '.join(unknown)}: add them to SHORT", file=sys.stderr)
        return 2
    names = [name for name in options if name in present]
    if args.only:
        missing = sorted(set(args.only) - set(names))
        if missing:
            print(f"run.py: no such script: {', '.join(missing)} (have {', '.join(names)})", file=sys.stderr)
            return 2
        names = [name for name in names if name in args.only]
    timeout = args.timeout or (300.0 if args.mode == "short" else 7200.0)
    load_before = os.getloadavg()[0]
    outcomes = []
    for name in names:
        print(f"run.py: {name} ...", file=sys.stderr, flush=True)
        outcome = run_one(name, options[name], timeout)
        outcomes.append(outcome)
        state = "timed out" if outcome.code is None else f"exit {outcome.code}"
        print(f"run.py: {name}: {state} in {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
        if outcome.code != 0:
            print(_tail(outcome), file=sys.stderr)
    text = section(args.mode, outcomes, load_before)
    print(text)
    if not args.no_record:
        record(text, args.out)
        print(f"run.py: recorded in {args.out}", file=sys.stderr)
    return 0 if all(outcome.code == 0 for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
