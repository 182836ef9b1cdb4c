"""docs/architecture.md's module map names exactly the modules there are, and every package says what it owns.

The map is how a newcomer finds a behaviour in one hop; a map that lists a module that moved, or misses one
that was added, sends them to the wrong place. So the map is read as the tree it draws (two spaces of
indent per folder) and compared with the package on disk.
"""

from __future__ import annotations

import ast
import re

from tests.conftest import project_root

PACKAGE = project_root() / "fiv_console"
# Past this, a module must be one concern that reads best whole, and say so in the map.
LONG_MODULE_LINES = 500
_ENTRY = re.compile(r"^(?P<indent> *)(?P<name>[\w.]+/|[\w]+\.py)(?: +(?P<description>.+))?$")


def _map_lines() -> list[str]:
    text = (project_root() / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1]
    block = section.split("```", 2)[1]
    return [line for line in block.splitlines() if line.strip()]


def _mapped() -> dict[str, str]:
    """Each path the map draws (relative to the repository, folders with a trailing slash): its description."""
    entries: dict[str, str] = {}
    parents: list[str] = []
    for line in _map_lines():
        match = _ENTRY.match(line)
        assert match, f"a module map line that is not `name  description`: {line!r}"
        depth = len(match["indent"]) // 2
        assert len(match["indent"]) % 2 == 0, f"misindented: {line!r}"
        assert depth <= len(parents), f"misindented: {line!r}"
        del parents[depth:]
        path = "".join(parents) + match["name"]
        assert path not in entries, f"named twice in the module map: {path}"
        entries[path] = match["description"] or ""
        if match["name"].endswith("/"):
            parents.append(match["name"])
    return entries


def _on_disk() -> set[str]:
    root = project_root()
    paths = {str(path.relative_to(root)) for path in PACKAGE.rglob("*.py")}
    folders = {str(path.parent.relative_to(root)) + "/" for path in PACKAGE.rglob("__init__.py")}
    # A package is drawn as its folder; its __init__ carries the docstring checked below.
    return {p for p in paths if not (p.endswith("/__init__.py") and p != "fiv_console/__init__.py")} | folders


def test_the_module_map_draws_the_tree_as_it_is() -> None:
    mapped, there = set(_mapped()), _on_disk()
    assert not there - mapped, f"modules the map does not name: {sorted(there - mapped)}"
    assert not mapped - there, f"modules the map names that do not exist: {sorted(mapped - there)}"


def test_every_module_and_package_says_what_it_owns() -> None:
    for path in PACKAGE.rglob("*.py"):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert docstring, f"{path.relative_to(project_root())} has no docstring"


def test_a_long_module_is_marked_as_one_concern_read_whole() -> None:
    descriptions = _mapped()
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        name = str(path.relative_to(project_root()))
        if lines > LONG_MODULE_LINES:
            assert "read whole" in descriptions.get(name, ""), f"{name} has {lines} lines: split it, or say why not"


def test_the_top_of_the_package_holds_only_assembly_settings_and_kernels() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 15
