"""Each channel's message templates, fetched from the Graph API and kept in this process for a while.

Templates change rarely (Meta reviews each one), and the picker and every template send need them, so a
channel's list is fetched once and kept `ttl` seconds (10 minutes). Asking with `refresh` fetches again at
once. Concurrent misses for one channel share one fetch, which runs in a task of its own: a caller that
gives up (its request cancelled) does not cancel it for the others. When a fetch fails and a copy was kept,
however old, the copy is answered, marked `stale` with when it was fetched and why it was not refreshed;
without one the `GraphError` goes to the caller.

Entries are keyed by channel and business account, so a channel given another account never answers the
old one's templates. `close` cancels the fetches still running (the app's shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from uuid import UUID

from fiv_console.whatsapp.client import GraphClient, GraphError
from fiv_console.whatsapp.templates import TemplateView, describe, parse_templates

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Catalog:
    """A business account's templates as last fetched."""

    templates: tuple[TemplateView, ...]
    fetched_at: datetime
    fetched_monotonic: float
    # Set when this copy is answered because a newer one could not be fetched: why not.
    stale_reason: str | None = None

    @property
    def stale(self) -> bool:
        return self.stale_reason is not None


_Key = tuple[UUID, str]


class TemplateCache:
    def __init__(
        self, client: GraphClient, *, ttl: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._kept: dict[_Key, Catalog] = {}
        self._fetching: dict[_Key, asyncio.Task[Catalog]] = {}

    def age(self, catalog: Catalog) -> float:
        """Seconds since the catalog was fetched."""
        return max(0.0, self._clock() - catalog.fetched_monotonic)

    async def get(self, channel_id: UUID, waba_id: str, access_token: str, *, refresh: bool = False) -> Catalog:
        """The account's templates: kept, or fetched (all pages); a kept copy, stale, if the fetch fails."""
        key = (channel_id, waba_id)
        kept = self._kept.get(key)
        if kept is not None and not refresh and self.age(kept) < self._ttl:
            return kept
        task = self._fetching.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, access_token), name="template-fetch")
            self._fetching[key] = task
            task.add_done_callback(lambda done: self._fetched(key, done))
        try:
            return await asyncio.shield(task)
        except GraphError as exc:
            kept = self._kept.get(key)
            if kept is None:
                raise
            log.warning(
                "templates could not be fetched; answering the kept copy",
                extra={"channel_id": str(channel_id), "code": exc.code, "age_seconds": round(self.age(kept))},
            )
            return replace(kept, stale_reason=exc.reason)

    def forget(self, channel_id: UUID) -> None:
        """Drops what is kept for the channel (its account or token changed)."""
        for key in [key for key in self._kept if key[0] == channel_id]:
            del self._kept[key]

    async def close(self) -> None:
        tasks = list(self._fetching.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _fetch(self, key: _Key, access_token: str) -> Catalog:
        items = await self._client.message_templates(key[1], access_token)
        templates = tuple(describe(template) for template in parse_templates(items))
        return Catalog(templates, datetime.now(UTC), self._clock())

    def _fetched(self, key: _Key, task: asyncio.Task[Catalog]) -> None:
        if self._fetching.get(key) is task:
            del self._fetching[key]
        if not task.cancelled() and task.exception() is None:
            self._kept[key] = task.result()
