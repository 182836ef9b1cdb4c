"""Throttling password guesses without letting anyone lock a person out.

Only failures count (a success takes its count back), in windows of 15 minutes:
- per account and client address, strictly: past the limit that address is refused for that account until
  the window ends, which stops one address guessing one password;
- per client address across accounts, strictly: stops one address trying a password on many accounts
  (credential stuffing);
- per account from anywhere, softly: each further attempt waits a little longer, up to a few seconds, and
  is then let through. An attacker who knows an email can slow its owner down, never keep them out.

The account is named by what was typed (workspace and email), never by whether it exists, so an unknown
account is throttled exactly like a real one and the answers say nothing about which is which.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
from dataclasses import dataclass
from uuid import UUID

from fiv_console.accounts.rate_limit import RateLimiter
from fiv_console.errors import RateLimited

log = logging.getLogger(__name__)

WINDOW_SECONDS = 15 * 60
# The first slowed attempt waits this long; each further failure doubles it, up to the configured cap.
FIRST_DELAY_SECONDS = 0.25
# Every address of an IPv6 /64 belongs to one subscriber, who can use any of them.
_IPV6_PREFIX = 64


@dataclass(frozen=True, slots=True)
class Limits:
    failures_per_account_and_address: int
    failures_per_address: int
    account_delay_after: int
    account_delay_max_seconds: float


def address_key(remote: str | None) -> str:
    """The client address as throttling sees it: IPv4 as is, IPv6 by its /64."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, _IPV6_PREFIX), strict=False))
    return str(address)


def _account_key(workspace: str, email: str) -> str:
    """A digest, so the counters (in Redis, shared) hold no email addresses."""
    return hashlib.sha256(f"{workspace}\n{email}".encode()).hexdigest()[:32]


def account_delay(failures: int, limits: Limits) -> float:
    """Seconds an attempt on an account waits after `failures` recent failures on it, from anywhere."""
    beyond = failures - limits.account_delay_after
    if beyond < 0:
        return 0.0
    return min(limits.account_delay_max_seconds, FIRST_DELAY_SECONDS * 2.0 ** min(beyond, 32))


@dataclass(frozen=True, slots=True)
class Attempt:
    """A password check that counts as a failure unless it reports that it succeeded (or had no verdict)."""

    limiter: RateLimiter
    forgiven: tuple[str, ...]
    returned: tuple[str, ...]

    async def succeeded(self) -> None:
        """Successes never count: the `returned` counters get this attempt back, and the `forgiven` ones
        (the owner's own earlier typos from this address) start afresh."""
        await self.limiter.take_back(self.returned)
        await self.limiter.clear(self.forgiven)

    async def abandoned(self) -> None:
        """No verdict (the database failed): the attempt is held against nobody."""
        await self.limiter.take_back(self.forgiven + self.returned)


async def begin_sign_in(
    limiter: RateLimiter, limits: Limits, *, workspace: str, email: str, remote: str | None
) -> Attempt:
    """Count an attempt on the account `workspace` and `email` name from the client address `remote`:
    RateLimited if that pair or that address is over its limit, else wait the account's delay and return
    the attempt, which then reports how it went."""
    account, address = _account_key(workspace, email), address_key(remote)
    keys = (f"login:pair:{account}:{address}", f"login:address:{address}", f"login:account:{account}")
    pair, by_address, by_account = await limiter.add(keys, window_seconds=WINDOW_SECONDS)
    refused = [
        (name, count)
        for name, count, limit in (
            ("account and address", pair, limits.failures_per_account_and_address),
            ("address", by_address, limits.failures_per_address),
        )
        if count.value > limit
    ]
    if refused:
        # A refused attempt tried no password: it counts against nobody.
        await limiter.take_back(keys)
        log.warning("sign-in refused", extra={"limit": ", ".join(name for name, _ in refused)})
        raise RateLimited(
            "too many sign-in attempts: wait and try again",
            retry_after=max(count.resets_in for _, count in refused),
        )
    delay = account_delay(by_account.value - 1, limits)
    if delay > 0:
        log.info("sign-in slowed", extra={"delay_seconds": delay})
        await asyncio.sleep(delay)
    return Attempt(limiter, forgiven=keys[:1], returned=keys[1:])


async def begin_password_check(limiter: RateLimiter, *, user_id: UUID, limit: int) -> Attempt:
    """A password typed by someone already signed in (to change it): strictly per user, failures only."""
    keys = (f"password:user:{user_id}",)
    (count,) = await limiter.add(keys, window_seconds=WINDOW_SECONDS)
    if count.value > limit:
        await limiter.take_back(keys)
        raise RateLimited("too many attempts: wait and try again", retry_after=count.resets_in)
    return Attempt(limiter, forgiven=keys, returned=())
