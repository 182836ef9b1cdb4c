"""Password hashing with Argon2id (argon2-cffi's defaults: RFC 9106's second recommended profile).

Each hash costs tens of milliseconds of CPU and 64 MiB of memory, so they run on a small pool of their
own: never on the event loop, and never so many at once that a burst of logins exhausts memory.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


def hash_password(password: str) -> str:
    """Blocking; from async code use `hash_password_async`."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def dummy_hash() -> str:
    """A hash to verify against when there is no user, so that path costs the same as a wrong password."""
    return hash_password("fiv-console: no such user; this hash only spends the same time")


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_executor, hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """False for a missing hash too, after spending the time of a real verification."""
    loop = asyncio.get_running_loop()
    if password_hash is None:
        await loop.run_in_executor(_executor, lambda: verify_password(dummy_hash(), password))
        return False
    return await loop.run_in_executor(_executor, verify_password, password_hash, password)
