"""Health checks: is each dependency answering, how fast, is the assignment loop sweeping and the event loop
on time, and what the overall status is."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel
from redis.asyncio import Redis

from fiv_console.assignment.loop import SWEEP_INTERVAL, AssignmentLoop
from fiv_console.db.pool import Database
from fiv_console.errors import Unavailable
from fiv_console.observability.loop_lag import LoopLag

CHECK_TIMEOUT_SECONDS = 2.0

CheckStatus = Literal["ok", "down", "disabled"]


class Check(BaseModel):
    status: CheckStatus
    latency_ms: float | None = None
    error: str | None = None


class AssignmentFigures(BaseModel):
    last_round_at: datetime | None
    last_sweep_at: datetime | None


class LoopFigures(BaseModel):
    lag_ms: float
    worst_lag_ms_last_minute: float


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: dict[str, Check]
    failed: list[str]
    assignment: AssignmentFigures | None = None
    event_loop: LoopFigures | None = None


# Sweeps come every few seconds; this many intervals with none means the loop is stuck or failing.
SWEEP_OVERDUE_INTERVALS = 6
# Late by more than this, the instance is answering everything late.
LOOP_LAG_LIMIT_SECONDS = 1.0


def check_assignment(loop: AssignmentLoop, now: datetime) -> Check:
    """Down when no sweep of every tenant has finished for several intervals (since start, before the first)."""
    since = loop.last_sweep_at or loop.started_at
    overdue = (now - since).total_seconds() - SWEEP_OVERDUE_INTERVALS * SWEEP_INTERVAL
    if overdue > 0:
        return Check(status="down", error=f"no sweep finished for {round((now - since).total_seconds())} s")
    return Check(status="ok")


def check_event_loop(lag: LoopLag) -> Check:
    if lag.last_seconds > LOOP_LAG_LIMIT_SECONDS:
        return Check(status="down", error=f"running {round(lag.last_seconds * 1000)} ms late")
    return Check(status="ok", latency_ms=round(lag.last_seconds * 1000, 2))


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


async def health(
    db: Database, redis: Redis | None, *, assignment: AssignmentLoop | None = None, lag: LoopLag | None = None
) -> Health:
    """The database is essential (down → "down"); Redis only carries cross-instance pushes, and a stuck
    assignment loop or a late event loop hurt without stopping everything ("degraded")."""
    database, redis_check = await asyncio.gather(check_database(db), check_redis(redis))
    checks = {"database": database, "redis": redis_check}
    figures: dict[str, Any] = {}
    if assignment is not None:
        checks["assignment"] = check_assignment(assignment, datetime.now(UTC))
        figures["assignment"] = AssignmentFigures(
            last_round_at=assignment.last_round_at, last_sweep_at=assignment.last_sweep_at
        )
    if lag is not None:
        checks["event_loop"] = check_event_loop(lag)
        figures["event_loop"] = LoopFigures(
            lag_ms=round(lag.last_seconds * 1000, 2), worst_lag_ms_last_minute=round(lag.worst_seconds * 1000, 2)
        )
    failed = [name for name, check in checks.items() if check.status == "down"]
    if database.status == "down":
        status: Literal["ok", "degraded", "down"] = "down"
    elif failed:
        status = "degraded"
    else:
        status = "ok"
    return Health(status=status, checks=checks, failed=failed, **figures)
