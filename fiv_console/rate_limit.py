"""Fixed-window rate limits (login throttling): in-process, or shared by all instances through Redis.

A Redis that is down must not lock everyone out: the Redis limiter falls back to its in-process twin.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from fiv_console.constants import RATE_LIMIT_KEY_PREFIX

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window_seconds: int) -> float | None:
        """Count one attempt; None if allowed, else the seconds until the window resets."""


class LocalRateLimiter:
    """Per-process counters; plenty for one instance (and the fallback when Redis is down).

    Windows are kept in the order they opened, so expired ones are dropped from the front as new attempts
    arrive (constant work per attempt), and at most `max_keys` are kept: a flood of distinct keys evicts
    the oldest windows rather than growing memory without bound.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: OrderedDict[str, tuple[float, float, int]] = OrderedDict()  # key -> (start, end, count)
        self._max_keys = max_keys

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> float | None:
        now = time.monotonic()
        while self._windows:
            _, (_, end, _) = next(iter(self._windows.items()))
            if end > now:
                break
            self._windows.popitem(last=False)
        started, end, count = self._windows.get(key, (now, now + window_seconds, 0))
        if end <= now:
            started, end, count = now, now + window_seconds, 0
        if count == 0:
            self._windows.pop(key, None)
        self._windows[key] = (started, end, count + 1)
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        if count + 1 > limit:
            return max(1.0, math.ceil(end - now))
        return None


class RedisRateLimiter:
    """Counters shared by every instance: INCR, with the expiry set when a window opens."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._fallback = LocalRateLimiter()

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> float | None:
        redis_key = f"{RATE_LIMIT_KEY_PREFIX}{key}"
        try:
            # SET NX EX opens the window with its expiry (EXPIRE NX would need Redis 7), INCR counts in it.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(redis_key, 0, ex=window_seconds, nx=True)
                pipe.incr(redis_key)
                pipe.ttl(redis_key)
                _, count, ttl = await pipe.execute()
        except (RedisError, OSError):
            log.warning("rate limiter: Redis unreachable, counting in this process")
            return await self._fallback.hit(key, limit=limit, window_seconds=window_seconds)
        if int(count) > limit:
            return float(max(1, int(ttl)))
        return None
