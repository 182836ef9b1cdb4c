"""Bodies from callers that have proven nothing yet: WhatsApp's webhooks before their signature is checked,
sign-in before the password is.

Such a body is read whole before anything can tell a real caller from an attacker, so each of these routes
has a guard, applied by `middleware` before its handler runs:
- cheap refusals first, before a byte of the body is read: a missing header the route cannot do without
  (401), a declared length over the route's own limit (413);
- a budget per route of how many such bodies are being received at once and of their bytes, of which one
  client address (`login_throttle.address_key`: IPv4 as is, IPv6 by its /64) may take only a share. A body
  takes one of the count when its headers arrive, and is charged for its bytes as they arrive, never for
  what it declares: a connection that sends headers and then nothing costs one of the count and no bytes.
  Without room, the request is refused at once (503 with Retry-After; 429 when it is the address's share
  that is spent, except for webhooks, which always get 503 so that Meta delivers them again later) rather
  than queued, whether that is before its first byte or part way through;
- a pace (`bodies.Pace`): the body must start within UNAUTHENTICATED_BODY_GRACE_SECONDS and keep up
  UNAUTHENTICATED_BODY_MIN_BYTES_PER_SECOND on average, so a connection that trickles holds its place for
  seconds rather than for the whole BODY_TIMEOUT_SECONDS (408).
A body holds its part until its sender has proven itself (`proven`: a webhook whose signature verifies)
or its handler has finished with it, whichever comes first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from fiv_console.accounts.login_throttle import address_key
from fiv_console.errors import DomainError, RateLimited, Unauthenticated, Unavailable
from fiv_console.settings import Settings
from fiv_console.web import envelope
from fiv_console.web.bodies import (
    LARGE_BODY,
    BodyTooLarge,
    Pace,
    forget,
    give_back_memory_soon,
    over_limit,
    read_body,
)

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

    def admit(self, address: str) -> None:
        """One more body from `address`, with no bytes yet; Unavailable or RateLimited if there is no room."""
        count, held_bytes = self.by_address.get(address, (0, 0))
        if self.held >= self.at_once:
            raise Unavailable("too many requests are being received: try again shortly")
        if count >= self.per_address:
            raise RateLimited("too many requests from this address at once", retry_after=RETRY_AFTER_SECONDS)
        self.held += 1
        self.by_address[address] = (count + 1, held_bytes)

    def grow(self, address: str, size: int) -> None:
        """`size` more bytes for a body `address` was admitted for; Unavailable or RateLimited if they do not fit."""
        count, held_bytes = self.by_address[address]
        if self.held_bytes + size > self.total_bytes:
            raise Unavailable("too many requests are being received: try again shortly")
        if held_bytes + size > self.bytes_per_address:
            raise RateLimited("too many requests from this address at once", retry_after=RETRY_AFTER_SECONDS)
        self.held_bytes += size
        self.by_address[address] = (count, held_bytes + size)

    def release(self, address: str, size: int) -> None:
        """Gives back one body of `address` and the `size` bytes it was charged."""
        self.held, self.held_bytes = self.held - 1, self.held_bytes - size
        count, held_bytes = self.by_address.pop(address)
        if count > 1:
            self.by_address[address] = (count - 1, held_bytes - size)


@dataclass
class Reservation:
    """One body's part of its route's budget: one of the count, and the bytes received so far."""

    budget: Budget
    address: str
    size: int = 0
    released: bool = False

    @classmethod
    def take(cls, budget: Budget, address: str) -> Reservation:
        budget.admit(address)
        return cls(budget, address)

    def grow(self, size: int) -> None:
        self.budget.grow(self.address, size)
        self.size += size

    def release(self) -> None:
        """Gives the part back; only the first call does anything."""
        if not self.released:
            self.released = True
            self.budget.release(self.address, self.size)


_RESERVATION_KEY = web.RequestKey("anonymous_body_reservation", Reservation)


def proven(request: web.Request) -> None:
    """The sender of this request's body has proven itself (a webhook's signature verifies): its body no longer
    counts against the budget for callers that have proven nothing, even while its handler goes on."""
    reservation = request.get(_RESERVATION_KEY)
    if reservation is not None:
        reservation.release()


@dataclass(frozen=True)
class Guard:
    """One route's rules: its body limit, a header it cannot do without, its budget and pace, and how it answers."""

    limit: int
    budget: Budget
    pace: Pace
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
    pace = Pace(settings.unauthenticated_body_grace_seconds, settings.unauthenticated_body_min_bytes_per_second)
    return Guard(limit, budget, pace, required_header, always_unavailable)


def _refusal(request: web.Request, guard: Guard, exc: DomainError) -> web.Response:
    """The answer to a request its guard turned away: an envelope under `/api`, else the message as text."""
    if guard.always_unavailable and isinstance(exc, (Unavailable, RateLimited)):
        exc = Unavailable(exc.message)
    status = envelope.status_for(exc.code)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status in (429, 503) else None
    if request.path.startswith("/api/"):
        return envelope.error(exc.code, exc.message, status=status, headers=headers)
    return web.Response(status=status, text=exc.message, headers=headers)


def _admit(request: web.Request, guard: Guard) -> Reservation:
    """The cheap checks, before anything is read, then one place in the budget."""
    if guard.required_header is not None and guard.required_header not in request.headers:
        raise Unauthenticated(f"the {guard.required_header} header is missing")
    if over_limit(request, guard.limit):
        raise BodyTooLarge(guard.limit)
    return Reservation.take(guard.budget, address_key(request.remote))


async def _guarded(request: web.Request, handler: Handler, guard: Guard) -> web.StreamResponse:
    try:
        reservation = _admit(request, guard)
    except DomainError as exc:
        return _refusal(request, guard, exc)
    request[_RESERVATION_KEY] = reservation
    try:
        try:
            await read_body(request, limit=guard.limit, pace=guard.pace, on_chunk=reservation.grow)
        except DomainError as exc:
            return _refusal(request, guard, exc)
        return await handler(request)
    finally:
        reservation.release()


def middleware(guards: Mapping[tuple[str, str], Guard]) -> Middleware:
    """Applies each route's guard, found by method and path, before its handler; other requests pass by."""

    @web.middleware
    async def guard_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
        guard = guards.get((request.method, request.path))
        if guard is None:
            return await handler(request)
        try:
            return await _guarded(request, handler, guard)
        finally:
            forget(request)
            # Refused large bodies are still read and dropped by aiohttp (so the client can read the answer).
            declared = request.content_length
            if (guard.limit if declared is None else declared) >= LARGE_BODY:
                give_back_memory_soon()

    return guard_bodies
