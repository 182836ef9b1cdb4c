"""Rate-limit counters: counted per window, shared across instances through a real Redis, alive without it."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from fiv_console.accounts.rate_limit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from fiv_console.serving import free_port


async def _counts_and_takes_back(limiter: RateLimiter, key: str) -> None:
    counts = [(await limiter.add([key], window_seconds=60))[0] for _ in range(3)]
    assert [c.value for c in counts] == [1, 2, 3]
    assert all(0 < c.resets_in <= 60 for c in counts)
    await limiter.take_back([key])
    assert (await limiter.add([key, f"{key}:other"], window_seconds=60))[0].value == 3
    await limiter.clear([key])
    assert [c.value for c in await limiter.add([key, f"{key}:other"], window_seconds=60)] == [1, 2]


async def test_the_local_limiter_counts_takes_back_and_clears() -> None:
    await _counts_and_takes_back(LocalRateLimiter(), "k")


async def test_the_local_limiter_keeps_a_bounded_number_of_windows() -> None:
    limiter = LocalRateLimiter(max_keys=3)
    for key in ("a", "b", "c", "d"):
        await limiter.add([key], window_seconds=60)
    # "a" was evicted as the oldest window, so it starts afresh; "d" is still counted.
    assert (await limiter.add(["a"], window_seconds=60))[0].value == 1
    assert (await limiter.add(["d"], window_seconds=60))[0].value == 2


async def test_the_local_limiter_forgets_expired_windows() -> None:
    limiter = LocalRateLimiter()
    assert (await limiter.add(["k"], window_seconds=0))[0].value == 1
    await limiter.take_back(["k"])
    assert (await limiter.add(["k"], window_seconds=0))[0].value == 1


async def test_two_instances_share_one_count_through_redis(redis_url: str) -> None:
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        a, b = RedisRateLimiter(first), RedisRateLimiter(second)
        key = f"test:{uuid.uuid4().hex}"
        await _counts_and_takes_back(a, key)
        assert [c.value for c in await b.add([key], window_seconds=30)] == [2]
        assert 0 < await first.ttl(f"fiv:rate:{key}") <= 60
    finally:
        await first.aclose()
        await second.aclose()


async def test_taking_back_after_the_window_ended_leaves_no_key_behind(redis_url: str) -> None:
    """A DECR on an expired key would create a counter with no expiry, one that never resets."""
    client = Redis.from_url(redis_url)
    try:
        limiter = RedisRateLimiter(client)
        key = f"test:{uuid.uuid4().hex}"
        await limiter.add([key], window_seconds=1)
        await asyncio.sleep(1.5)
        await limiter.take_back([key])
        assert await client.exists(f"fiv:rate:{key}") == 0
        assert (await limiter.add([key], window_seconds=30))[0].value == 1
        assert 0 < await client.ttl(f"fiv:rate:{key}") <= 30
    finally:
        await client.aclose()


async def test_without_redis_the_limiter_still_counts_locally() -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        await _counts_and_takes_back(RedisRateLimiter(unreachable), "k")
    finally:
        await unreachable.aclose()
