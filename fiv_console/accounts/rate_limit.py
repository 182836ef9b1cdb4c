"""Fixed-window counters (sign-in throttling): in-process, or shared by all instances through Redis.

A count is taken before the work it guards and taken back when the work turns out not to count (a sign-in
that succeeded), so attempts running at the same time cannot all slip under a limit.

A Redis that is down must not lock everyone out: the Redis counters fall back to their in-process twin.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from fiv_console.constants import RATE_LIMIT_KEY_PREFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Count:
    """A key's count in its current window, and the seconds until that window ends."""

    value: int
    resets_in: float


class RateLimiter(Protocol):
    async def add(self, keys: Sequence[str], *, window_seconds: int) -> list[Count]:
        """Count one more for each key (a window opens with its first count); the counts, in key order."""

    async def take_back(self, keys: Sequence[str]) -> None:
        """Undo one count of each key whose window is still open."""

    async def clear(self, keys: Sequence[str]) -> None:
        """Forget the keys' windows."""


class LocalRateLimiter:
    """Per-process counters; plenty for one instance (and the fallback when Redis is down).

    Windows are kept in the order they opened, so expired ones are dropped from the front as new counts
    arrive (constant work per count), and at most `max_keys` are kept: a flood of distinct keys evicts
    the oldest windows rather than growing memory without bound.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (end, count)
        self._max_keys = max_keys

    def _open(self, key: str, now: float) -> tuple[float, int] | None:
        window = self._windows.get(key)
        return window if window is not None and window[0] > now else None

    async def add(self, keys: Sequence[str], *, window_seconds: int) -> list[Count]:
        now = time.monotonic()
        while self._windows:
            _, (end, _) = next(iter(self._windows.items()))
            if end > now:
                break
            self._windows.popitem(last=False)
        counts = []
        for key in keys:
            end, count = self._open(key, now) or (now + window_seconds, 0)
            if count == 0:
                self._windows.pop(key, None)
            self._windows[key] = (end, count + 1)
            counts.append(Count(count + 1, max(1.0, math.ceil(end - now))))
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        return counts

    async def take_back(self, keys: Sequence[str]) -> None:
        now = time.monotonic()
        for key in keys:
            window = self._open(key, now)
            if window is not None and window[1] > 0:
                self._windows[key] = (window[0], window[1] - 1)

    async def clear(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._windows.pop(key, None)


# DECR on a key that has just expired would create it again with no expiry: a counter that never resets.
_TAKE_BACK_SCRIPT = """
for _, key in ipairs(KEYS) do
    if redis.call('exists', key) == 1 and tonumber(redis.call('get', key)) > 0 then
        redis.call('decr', key)
    end
end
return 0
"""


class RedisRateLimiter:
    """Counters shared by every instance: INCR, with the expiry set when a window opens."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._take_back = redis.register_script(_TAKE_BACK_SCRIPT)
        self._fallback = LocalRateLimiter()

    async def add(self, keys: Sequence[str], *, window_seconds: int) -> list[Count]:
        try:
            # SET NX EX opens a window with its expiry (EXPIRE NX would need Redis 7), INCR counts in it.
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    redis_key = f"{RATE_LIMIT_KEY_PREFIX}{key}"
                    pipe.set(redis_key, 0, ex=window_seconds, nx=True)
                    pipe.incr(redis_key)
                    pipe.ttl(redis_key)
                replies = await pipe.execute()
        except (RedisError, OSError):
            log.warning("rate limiter: Redis unreachable, counting in this process")
            return await self._fallback.add(keys, window_seconds=window_seconds)
        return [Count(int(replies[i + 1]), float(max(1, int(replies[i + 2])))) for i in range(0, len(replies), 3)]

    async def take_back(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await self._take_back(keys=[f"{RATE_LIMIT_KEY_PREFIX}{key}" for key in keys])
        except (RedisError, OSError):
            log.warning("rate limiter: Redis unreachable, counting in this process")
            await self._fallback.take_back(keys)

    async def clear(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await self._redis.delete(*(f"{RATE_LIMIT_KEY_PREFIX}{key}" for key in keys))
        except (RedisError, OSError):
            log.warning("rate limiter: Redis unreachable, counting in this process")
            await self._fallback.clear(keys)
