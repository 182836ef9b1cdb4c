"""Text search helpers for SQL: user text goes into LIKE patterns escaped, never as wildcards."""

from __future__ import annotations


def contains_pattern(text: str | None) -> str | None:
    """An ILIKE pattern matching `text` anywhere; `%`, `_` and `\\` in it match themselves."""
    if text is None:
        return None
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
