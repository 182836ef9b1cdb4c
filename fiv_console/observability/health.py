"""Health checks: is each dependency answering, how fast, and what the overall status is."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from pydantic import BaseModel
from redis.asyncio import Redis

from fiv_console.db.pool import Database
from fiv_console.errors import Unavailable

CHECK_TIMEOUT_SECONDS = 2.0

CheckStatus = Literal["ok", "down", "disabled"]


class Check(BaseModel):
    status: CheckStatus
    latency_ms: float | None = None
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: dict[str, Check]
    failed: list[str]


async def check_database(db: Database) -> Check:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), db.connection() as conn:
            await conn.fetchval("select 1")
    except (Unavailable, TimeoutError):
        return Check(status="down", error="not reachable within the deadline")
    except Exception as exc:  # any driver error means the same to an operator: the database is failing
        return Check(status="down", error=type(exc).__name__)
    return Check(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 2))


async def check_redis(redis: Redis | None) -> Check:
    if redis is None:
        return Check(status="disabled")
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await redis.ping()
    except TimeoutError:
        return Check(status="down", error="not reachable within the deadline")
    except Exception as exc:  # connection refused, reset, auth: all "down" for an operator
        return Check(status="down", error=type(exc).__name__)
    return Check(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 2))


async def health(db: Database, redis: Redis | None) -> Health:
    """The database is essential (down → "down"); Redis only carries cross-instance pushes ("degraded")."""
    database, redis_check = await asyncio.gather(check_database(db), check_redis(redis))
    checks = {"database": database, "redis": redis_check}
    failed = [name for name, check in checks.items() if check.status == "down"]
    if database.status == "down":
        status: Literal["ok", "degraded", "down"] = "down"
    elif failed:
        status = "degraded"
    else:
        status = "ok"
    return Health(status=status, checks=checks, failed=failed)
