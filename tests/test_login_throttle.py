"""Sign-in throttling cannot be turned against the people it protects (issue #12, point 5).

Guesses are refused per account and address, and per address across accounts; an account under attack from
elsewhere only slows down, by a few seconds at most; successes never count. Each test runs with counters
in the process and shared through a real Redis, and clients sign in from addresses of their own (any of
127.0.0.0/8 reaches the test server), as people behind different connections would.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator

import pytest

from fiv_console.accounts.login_throttle import Limits, account_delay, address_key
from fiv_console.serving import free_port
from fiv_console.settings import Settings
from tests.api import Browsers, TenantPeople
from tests.conftest import TestDatabase, people_of, serving

# Small, so the tests need few Argon2 verifications and short waits; the rules are those of the defaults.
DELAY_CAP = 0.5
PAIR_LIMIT = 4
ADDRESS_LIMIT = 8
DELAY_AFTER = 2


def new_address() -> str:
    """A loopback address no other test uses: counters shared through Redis outlive a test's server."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def throttle_settings(database: TestDatabase, redis_url: str | None, **overrides: object) -> Settings:
    return database.settings(
        redis_url=redis_url,
        login_failures_per_account_and_address=PAIR_LIMIT,
        login_failures_per_address=ADDRESS_LIMIT,
        login_account_delay_after=DELAY_AFTER,
        login_account_delay_max_seconds=DELAY_CAP,
        **overrides,
    )


@pytest.fixture(params=["in-process", "redis"])
async def throttled(request: pytest.FixtureRequest, database: TestDatabase) -> AsyncIterator[Browsers]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    async with serving(throttle_settings(database, redis_url)) as server, people_of(server) as browsers:
        yield browsers


async def test_an_attacker_cannot_keep_the_owner_out(throttled: Browsers, tenant: TenantPeople) -> None:
    attacker = await throttled.new(address=new_address())
    statuses = [(await attacker.login(tenant.agent, f"guess {i}")).status for i in range(PAIR_LIMIT + 5)]
    assert statuses == [401] * PAIR_LIMIT + [429] * 5

    # The attacker's address is refused for this account, even with the right password...
    refused = await attacker.login(tenant.agent)
    assert (refused.status, refused.code) == (429, "RATE_LIMITED")
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    # ...but not for the other accounts it has not been guessing.
    assert (await attacker.login(tenant.other_agent)).status == 200

    # The owner, from their own address, gets in: slowed by a bounded delay, never refused.
    owner = await throttled.new(address=new_address())
    started = time.perf_counter()
    assert (await owner.login(tenant.agent)).status == 200
    assert 0.9 * DELAY_CAP <= time.perf_counter() - started < DELAY_CAP + 2.0
    assert (await owner.get("/api/me")).data["user"]["id"] == str(tenant.agent.id)


async def test_many_good_sign_ins_in_a_row_are_never_refused(throttled: Browsers, tenant: TenantPeople) -> None:
    address = new_address()
    for _ in range(2 * PAIR_LIMIT):
        assert (await (await throttled.new(address=address)).login(tenant.agent)).status == 200
    # Typos up to just under the limit, then the right password, again: the owner's own typos are forgotten
    # once they get in.
    for round_ in range(2):
        person = await throttled.new(address=address)
        for typo in range(PAIR_LIMIT - 1):
            assert (await person.login(tenant.supervisor, f"typo {round_}.{typo}")).status == 401
        assert (await person.login(tenant.supervisor)).status == 200


async def test_one_address_cannot_try_a_password_on_many_accounts(
    throttled: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    office = new_address()
    # Colleagues behind one address sign in as often as they like: successes never count...
    for _ in range(ADDRESS_LIMIT + 5):
        assert (await (await throttled.new(address=office)).login(tenant.admin)).status == 200

    # ...but one password tried on many accounts locks the address out, real accounts and unknown alike.
    stuffer = await throttled.new(address=office)
    for n in range(ADDRESS_LIMIT):
        email = f"victim-{n}-{random.getrandbits(32):x}@b.example"
        assert (await stuffer.sign_in(email, "Summer2024!", workspace=other_tenant.workspace)).status == 401
    refused = await stuffer.login(other_tenant.admin)
    assert (refused.status, refused.code) == (429, "RATE_LIMITED")
    # Elsewhere the same account is fine.
    assert (await (await throttled.new(address=new_address())).login(other_tenant.admin)).status == 200


async def test_instances_share_the_counts_through_redis(
    database: TestDatabase, redis_url: str, tenant: TenantPeople
) -> None:
    settings = throttle_settings(database, redis_url)
    attacker_address = new_address()
    async with (
        serving(settings) as first,
        serving(settings) as second,
        people_of(first) as on_first,
        people_of(second) as on_second,
    ):
        attacker = await on_first.new(address=attacker_address)
        for i in range(PAIR_LIMIT):
            assert (await attacker.login(tenant.agent, f"guess {i}")).status == 401
        elsewhere = await on_second.new(address=attacker_address)
        assert (await elsewhere.login(tenant.agent)).status == 429
        assert (await (await on_second.new(address=new_address())).login(tenant.agent)).status == 200


async def test_with_redis_down_people_still_sign_in_and_guesses_are_still_counted(
    database: TestDatabase, tenant: TenantPeople
) -> None:
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    async with serving(throttle_settings(database, nothing_listens)) as server, people_of(server) as browsers:
        assert (await (await browsers.new(address=new_address())).login(tenant.agent)).status == 200
        attacker = await browsers.new(address=new_address())
        statuses = [(await attacker.login(tenant.agent, f"guess {i}")).status for i in range(PAIR_LIMIT + 1)]
        assert statuses == [401] * PAIR_LIMIT + [429]
        assert (await (await browsers.new(address=new_address())).login(tenant.agent)).status == 200


def test_an_ipv6_subscriber_counts_as_one_address() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7") == "192.0.2.7"
    assert address_key(None) == "unknown"


def test_the_account_delay_doubles_up_to_its_cap() -> None:
    limits = Limits(
        failures_per_account_and_address=10, failures_per_address=50, account_delay_after=5, account_delay_max_seconds=3
    )
    assert [account_delay(failures, limits) for failures in range(4, 11)] == [0, 0.25, 0.5, 1, 2, 3, 3]
    assert account_delay(10**9, limits) == 3
