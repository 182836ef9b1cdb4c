"""Per-request context (request id, tenant, user) that every log line carries.

Context variables follow the asyncio task that handles a request, so concurrent requests never see each
other's ids.
"""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
tenant_id_var: ContextVar[str | None] = ContextVar("tenant_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
