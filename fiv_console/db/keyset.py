"""Keyset cursors' text: a position in an order (a time and an id, maybe the order's name) packed into an
opaque URL-safe string, and read back, refusing anything a page did not hand out."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime


def pack(*parts: str) -> str:
    text = "|".join(parts)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def unpack(text: str) -> list[str]:
    """The parts `pack` joined; ValueError when `text` is not such a string."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().split("|")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a packed cursor") from exc


def instant(text: str) -> datetime:
    """An ISO time with its offset, in UTC; ValueError for a naive or unreadable one (or OverflowError)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("naive time")
    # In UTC here, as the database compares it: an extreme offset would overflow there, as a 500.
    return value.astimezone(UTC)
