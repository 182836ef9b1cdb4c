"""Bodies from callers that have proven nothing yet: WhatsApp's webhooks before their signature is checked,
sign-in before the password is.

Such a body is read whole before anything can tell a real caller from an attacker, so each of these routes
has a guard, applied by `middleware` before its handler runs:
- cheap refusals first, before a byte of the body is read: a missing header the route cannot do without
  (401), a declared length over the route's own limit (413);
- a budget per route of how many such bodies are held at once and of their bytes (a body counts at its
  declared length, or at the route's limit when chunked), of which one client address may take only a
  share. Past it the request is refused at once (503 with Retry-After; 429 when it is the address's share
  that is spent, except for webhooks, which always get 503 so that Meta delivers them again later) rather
  than queued. A body holds its part until its handler has finished with it.

So a flood of stalled bodies holds at most the budget, and the body deadline (`fiv_console.web.bodies`)
frees each part within `BODY_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from fiv_console.errors import DomainError, RateLimited, Unauthenticated, Unavailable
from fiv_console.settings import Settings
from fiv_console.web import envelope
from fiv_console.web.bodies import LARGE_BODY, BodyTooLarge, forget, give_back_memory_soon, over_limit, read_body

RETRY_AFTER_SECONDS = 5


@dataclass
class Budget:
    """How many bodies, and bytes, one route holds at once, overall and per client address."""

    at_once: int
    total_bytes: int
    per_address: int
    bytes_per_address: int
    held: int = 0
    held_bytes: int = 0
    by_address: dict[str, tuple[int, int]] = field(default_factory=dict)

    def reserve(self, address: str, size: int) -> None:
        """Room for one body of `size` bytes; Unavailable or RateLimited if there is none. `release` gives it back."""
        count, held_bytes = self.by_address.get(address, (0, 0))
        if self.held >= self.at_once or self.held_bytes + size > self.total_bytes:
            raise Unavailable("too many requests are being received: try again shortly")
        if count >= self.per_address or held_bytes + size > self.bytes_per_address:
            raise RateLimited("too many requests from this address at once", retry_after=RETRY_AFTER_SECONDS)
        self.held, self.held_bytes = self.held + 1, self.held_bytes + size
        self.by_address[address] = (count + 1, held_bytes + size)

    def release(self, address: str, size: int) -> None:
        self.held, self.held_bytes = self.held - 1, self.held_bytes - size
        count, held_bytes = self.by_address.pop(address)
        if count > 1:
            self.by_address[address] = (count - 1, held_bytes - size)


@dataclass(frozen=True)
class Guard:
    """One route's rules: its body limit, a header it cannot do without, its budget, and how it answers."""

    limit: int
    budget: Budget
    required_header: str | None = None
    # Webhooks answer 503 for any refusal of room, so that Meta delivers them again later.
    always_unavailable: bool = False


def guard(
    settings: Settings, *, limit: int, required_header: str | None = None, always_unavailable: bool = False
) -> Guard:
    """A route's guard with a budget of its own sized by the settings."""
    share = settings.unauthenticated_share_per_address
    budget = Budget(
        at_once=settings.unauthenticated_bodies_at_once,
        total_bytes=settings.unauthenticated_body_bytes,
        per_address=max(1, math.floor(settings.unauthenticated_bodies_at_once * share)),
        # One body of the route's largest size always fits one address's share.
        bytes_per_address=max(limit, math.floor(settings.unauthenticated_body_bytes * share)),
    )
    return Guard(limit, budget, required_header, always_unavailable)


def _refusal(request: web.Request, guard: Guard, exc: DomainError) -> web.Response:
    """The answer to a request its guard turned away: an envelope under `/api`, else the message as text."""
    if guard.always_unavailable and isinstance(exc, (Unavailable, RateLimited)):
        exc = Unavailable(exc.message)
    status = envelope.status_for(exc.code)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status in (429, 503) else None
    if request.path.startswith("/api/"):
        return envelope.error(exc.code, exc.message, status=status, headers=headers)
    return web.Response(status=status, text=exc.message, headers=headers)


def _admit(request: web.Request, guard: Guard) -> None:
    """The cheap checks, before anything is read."""
    if guard.required_header is not None and guard.required_header not in request.headers:
        raise Unauthenticated(f"the {guard.required_header} header is missing")
    if over_limit(request, guard.limit):
        raise BodyTooLarge(guard.limit)


async def _guarded(request: web.Request, handler: Handler, guard: Guard, address: str, size: int) -> web.StreamResponse:
    try:
        _admit(request, guard)
        guard.budget.reserve(address, size)
    except DomainError as exc:
        return _refusal(request, guard, exc)
    try:
        try:
            await read_body(request, limit=guard.limit)
        except DomainError as exc:
            return _refusal(request, guard, exc)
        return await handler(request)
    finally:
        guard.budget.release(address, size)


def middleware(guards: Mapping[tuple[str, str], Guard]) -> Middleware:
    """Applies each route's guard, found by method and path, before its handler; other requests pass by."""

    @web.middleware
    async def guard_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
        guard = guards.get((request.method, request.path))
        if guard is None:
            return await handler(request)
        address = request.remote or "unknown"
        size = request.content_length if request.content_length is not None else guard.limit
        try:
            return await _guarded(request, handler, guard, address, size)
        finally:
            forget(request)
            # Refused large bodies are still read and dropped by aiohttp (so the client can read the answer).
            if size >= LARGE_BODY:
                give_back_memory_soon()

    return guard_bodies
