"""Fixed-window rate limits (login throttling): in-process, or shared by all instances through Redis.

A Redis that is down must not lock everyone out: the Redis limiter falls back to its in-process twin.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from fiv_console.constants import RATE_LIMIT_KEY_PREFIX

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window_seconds: int) -> float | None:
        """Count one attempt; None if allowed, else the seconds until the window resets."""


class LocalRateLimiter:
    """Per-process counters; plenty for one instance (and the fallback when Redis is down)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> float | None:
        now = time.monotonic()
        started, count = self._windows.get(key, (now, 0))
        if now - started >= window_seconds:
            started, count = now, 0
        count += 1
        self._windows[key] = (started, count)
        if len(self._windows) > 100_000:
            self._forget_expired(now, window_seconds)
        if count > limit:
            return max(1.0, math.ceil(started + window_seconds - now))
        return None

    def _forget_expired(self, now: float, window_seconds: int) -> None:
        for key, (started, _) in list(self._windows.items()):
            if now - started >= window_seconds:
                del self._windows[key]


class RedisRateLimiter:
    """Counters shared by every instance: INCR, with the expiry set when a window opens."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._fallback = LocalRateLimiter()

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> float | None:
        redis_key = f"{RATE_LIMIT_KEY_PREFIX}{key}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(redis_key)
                pipe.expire(redis_key, window_seconds, nx=True)
                pipe.ttl(redis_key)
                count, _, ttl = await pipe.execute()
        except (RedisError, OSError):
            log.warning("rate limiter: Redis unreachable, counting in this process")
            return await self._fallback.hit(key, limit=limit, window_seconds=window_seconds)
        if int(count) > limit:
            return float(max(1, int(ttl)))
        return None
