"""The bus's interface: publish without waiting, subscribe per channel, hear when messages may have been lost.

A bus carries messages of one type (`M`): subscribers on this instance receive the very object published,
and only a bus between instances turns it into bytes and back, with the `Codec` it is given. Delivery is
at most once and may be lost (Redis down, an instance restarting): whoever subscribes must be able to
catch up from PostgreSQL, and `on_gap` callbacks tell them when to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

M = TypeVar("M")
Handler = Callable[[M], None]
GapListener = Callable[[], None]


class Codec(Protocol[M]):
    """How a message crosses to other instances."""

    def encode(self, message: M) -> bytes: ...

    def decode(self, channel: str, data: bytes) -> M:
        """The message; raises (ValueError, KeyError, AttributeError...) on bytes not of this form."""
        ...


class Bus(Protocol[M]):
    def publish(self, channel: str, message: M) -> None:
        """Sends to every subscriber of `channel`, this instance's included; never blocks, never raises."""

    async def subscribe(self, channel: str, handler: Handler[M]) -> None:
        """Calls `handler` with each message of `channel` from now on. Returns once the subscription is
        live, or, when the bus is down, once it is recorded (it is made live when the bus returns)."""

    async def unsubscribe(self, channel: str, handler: Handler[M]) -> None: ...

    def on_gap(self, listener: GapListener) -> None:
        """`listener` runs after messages may have been lost (the connection to the bus came back)."""

    @property
    def connected(self) -> bool: ...

    async def close(self) -> None: ...
