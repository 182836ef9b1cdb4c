"""The in-process bus, for one instance (no REDIS_URL): subscribers hear each message on the next loop turn.

Messages are handed over as they are: nothing is encoded, since nothing leaves the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Generic

from fiv_console.bus.base import GapListener, Handler, M

log = logging.getLogger(__name__)


class LocalBus(Generic[M]):
    def __init__(self) -> None:
        self._handlers: defaultdict[str, list[Handler[M]]] = defaultdict(list)

    def publish(self, channel: str, message: M) -> None:
        handlers = self._handlers.get(channel)
        if handlers:
            # Later, not now: the publisher is in the middle of its own work (a request, a commit).
            asyncio.get_running_loop().call_soon(deliver, tuple(handlers), message)

    async def subscribe(self, channel: str, handler: Handler[M]) -> None:
        self._handlers[channel].append(handler)

    async def unsubscribe(self, channel: str, handler: Handler[M]) -> None:
        handlers = self._handlers.get(channel, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            self._handlers.pop(channel, None)

    def on_gap(self, listener: GapListener) -> None:
        """Nothing is ever lost in-process."""

    @property
    def connected(self) -> bool:
        return True

    async def close(self) -> None:
        self._handlers.clear()


def deliver(handlers: tuple[Handler[M], ...], message: M) -> None:
    """Each handler in turn; one that fails is logged and does not keep the message from the others."""
    for handler in handlers:
        try:
            handler(message)
        except Exception:
            log.exception("a bus subscriber failed on a message")
