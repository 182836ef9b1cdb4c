"""How late this process's event loop runs what is due: the drift of a timer, sampled twice a second.

A loop that is late delays every request, socket frame and webhook of the instance at once, whatever the
cause (a CPU-bound call, a blocking one, an overloaded machine); `/health` reports it.
"""

from __future__ import annotations

import asyncio
from collections import deque

SAMPLE_SECONDS = 0.5
# A minute of samples: the worst of them says whether the loop stalled lately, not only just now.
_WINDOW = int(60 / SAMPLE_SECONDS)


class LoopLag:
    """The event loop's lag, kept by `run` (a task of its own for the life of the app)."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=_WINDOW)

    @property
    def last_seconds(self) -> float:
        return self._recent[-1] if self._recent else 0.0

    @property
    def worst_seconds(self) -> float:
        """The worst lag over the last minute."""
        return max(self._recent, default=0.0)

    def record(self, seconds: float) -> None:
        self._recent.append(max(0.0, seconds))

    async def run(self) -> None:
        clock = asyncio.get_running_loop().time
        while True:
            due = clock() + SAMPLE_SECONDS
            await asyncio.sleep(SAMPLE_SECONDS)
            self.record(clock() - due)
