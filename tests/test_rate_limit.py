"""Rate limits: counted per window, shared across instances through a real Redis, alive without it."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from fiv_console.rate_limit import LocalRateLimiter, RedisRateLimiter
from fiv_console.serving import free_port


async def test_the_local_limiter_counts_within_a_window() -> None:
    limiter = LocalRateLimiter()
    answers = [await limiter.hit("k", limit=3, window_seconds=60) for _ in range(5)]
    assert answers[:3] == [None, None, None]
    assert all(a is not None and 0 < a <= 60 for a in answers[3:])
    assert await limiter.hit("other", limit=3, window_seconds=60) is None


async def test_the_local_limiter_keeps_a_bounded_number_of_windows() -> None:
    limiter = LocalRateLimiter(max_keys=3)
    for key in ("a", "b", "c", "d"):
        await limiter.hit(key, limit=1, window_seconds=60)
    # "a" was evicted as the oldest window, so it starts afresh; "d" is still counted.
    assert await limiter.hit("a", limit=1, window_seconds=60) is None
    assert await limiter.hit("d", limit=1, window_seconds=60) is not None


async def test_the_local_limiter_forgets_expired_windows() -> None:
    limiter = LocalRateLimiter()
    assert await limiter.hit("k", limit=1, window_seconds=0) is None
    assert await limiter.hit("k", limit=1, window_seconds=0) is None


async def test_two_instances_share_one_count_through_redis(redis_url: str) -> None:
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        a, b = RedisRateLimiter(first), RedisRateLimiter(second)
        key = f"test:{uuid.uuid4().hex}"
        answers = [await (a if i % 2 else b).hit(key, limit=4, window_seconds=30) for i in range(6)]
        assert answers[:4] == [None] * 4
        assert all(answer is not None and 0 < answer <= 30 for answer in answers[4:])
        assert 0 < await first.ttl(f"fiv:rate:{key}") <= 30
    finally:
        await first.aclose()
        await second.aclose()


async def test_without_redis_the_limiter_still_counts_locally() -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        limiter = RedisRateLimiter(unreachable)
        answers = [await limiter.hit("k", limit=2, window_seconds=60) for _ in range(3)]
        assert answers[:2] == [None, None]
        assert answers[2] is not None
    finally:
        await unreachable.aclose()
