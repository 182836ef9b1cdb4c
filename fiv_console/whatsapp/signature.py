"""`X-Hub-Signature-256`: Meta's HMAC-SHA256 of the raw webhook body, keyed with the app secret.

Checked over the bytes as received (Meta escapes non-ASCII as `\\u00e9`; re-serialized JSON would differ),
and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "X-Hub-Signature-256"
_HEADER = re.compile(r"^sha256=([0-9a-f]{64})$")


def sign(app_secret: bytes, body: bytes) -> str:
    """The header value Meta sends for `body`: `sha256=` and the HMAC-SHA256 hex digest."""
    return "sha256=" + _digest(app_secret, body)


def _digest(app_secret: bytes, body: bytes) -> str:
    return hmac.new(app_secret, body, hashlib.sha256).hexdigest()


def signature_matches(app_secret: bytes, body: bytes, header: str | None) -> bool:
    """True only for a well-formed `sha256=<hex>` header that signs exactly `body`."""
    if not app_secret or header is None:
        return False
    match = _HEADER.match(header.strip().lower())
    if match is None:
        return False
    return hmac.compare_digest(_digest(app_secret, body), match.group(1))
