"""bench/run.py: it knows every benchmark script, and its section lands above the older ones.

The scripts themselves run in `.ci/run` (the runner's short mode); here only what the runner decides.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_script_has_short_and_full_options() -> None:
    runner = _runner()
    scripts = runner.scripts_in_bench()
    assert "soak" in scripts
    assert "run" not in scripts
    assert "_scratch" not in scripts
    assert set(scripts) == set(runner.SHORT) == set(runner.FULL)


def test_a_section_goes_above_the_older_ones(tmp_path: Path) -> None:
    runner = _runner()
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nHow they are run.\n\n## 2026-01-01: older\n\nold text\n")
    runner.record("## 2026-12-03: newer\n\nnew text\n", page)
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nHow they are run.\n\n## 2026-12-03: newer\n\nnew text\n")
    assert text.index("newer") < text.index("older")
    assert text.endswith("## 2026-01-01: older\n\nold text\n")


def test_a_failed_script_is_shown_with_its_output(tmp_path: Path) -> None:
    runner = _runner()
    broken = runner.Outcome("broken", ["python", "bench/broken.py"], 1.0, 1, "half a table", None, "Traceback: boom")
    fine = runner.Outcome("fine", ["python", "bench/fine.py"], 2.0, 0, "the table", {"postgres": "16.4"}, "")
    text = runner.section("short", [fine, broken], 0.5)
    assert "| `broken` | 1 | 1 |" in text
    assert "| `fine` | 0 | 2 |" in text
    assert "Traceback: boom" in text
    assert "PostgreSQL 16.4" in text
