"""The Redis bus: pub/sub between instances, that survives Redis going away and coming back.

Publishing never waits on Redis: messages go to this instance's own subscribers at once, as they are, and,
encoded by the bus's `Codec`, into a bounded outbox that one task sends in pipelines. While Redis is away
the outbox is dropped (counted and logged once), so requests, intake and assignment never wait on it; what
subscribers miss they read from PostgreSQL once told of the gap.

Subscribing uses a connection of its own, read by one task. redis-py's asyncio pub/sub does not
re-subscribe by itself after a lost connection, so this task does: on any error it reconnects with
backoff, subscribes to every channel again, and then tells the `on_gap` listeners. A PING after a quiet
interval detects a connection that died without a word (a half-open TCP connection).

Each message starts with the publishing instance's id: an instance ignores its own, already delivered. A
message that cannot be decoded is logged and left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict, deque
from typing import Any, Generic

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from fiv_console.bus.base import Codec, GapListener, Handler, M
from fiv_console.bus.local import deliver
from fiv_console.observability.metrics import BUS_RECONNECTS

log = logging.getLogger(__name__)

_ORIGIN_BYTES = 16
_OUTBOX_LIMIT = 50_000
_PIPELINE_LIMIT = 500
_SUBSCRIBE_WAIT = 2.0
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 2.0


class RedisBus(Generic[M]):
    def __init__(self, client: Redis, url: str, codec: Codec[M], *, ping_interval: float = 5.0) -> None:
        self._client = client
        self._url = url
        self._codec = codec
        self._ping_interval = ping_interval
        self._origin = uuid.uuid4().bytes
        self._handlers: defaultdict[str, list[Handler[M]]] = defaultdict(list)
        self._gap_listeners: list[GapListener] = []
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._outbox_ready = asyncio.Event()
        self._dropped = 0
        self._connection: AbstractConnection | None = None
        self._confirmations: defaultdict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._connected = False
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name="bus-publisher"),
            asyncio.create_task(self._subscribe_loop(), name="bus-subscriber"),
        ]

    @property
    def connected(self) -> bool:
        return self._connected

    def publish(self, channel: str, message: M) -> None:
        handlers = self._handlers.get(channel)
        if handlers:
            asyncio.get_running_loop().call_soon(deliver, tuple(handlers), message)
        if len(self._outbox) >= _OUTBOX_LIMIT:
            self._outbox.popleft()
            self._dropped += 1
        self._outbox.append((channel, self._origin + self._codec.encode(message)))
        self._outbox_ready.set()

    async def subscribe(self, channel: str, handler: Handler[M]) -> None:
        first = channel not in self._handlers
        self._handlers[channel].append(handler)
        if first and self._connection is not None:
            confirmed = asyncio.get_running_loop().create_future()
            self._confirmations[channel].append(confirmed)
            try:
                await self._connection.send_command("SUBSCRIBE", channel)
                async with asyncio.timeout(_SUBSCRIBE_WAIT):
                    await confirmed
            except (RedisError, OSError, TimeoutError):
                # Redis is away: the subscriber loop subscribes to it when Redis is back, and reports the gap.
                log.warning("bus subscription not confirmed; it will be made when Redis answers")
            finally:
                with contextlib.suppress(ValueError):
                    self._confirmations[channel].remove(confirmed)

    async def unsubscribe(self, channel: str, handler: Handler[M]) -> None:
        handlers = self._handlers.get(channel, [])
        if handler in handlers:
            handlers.remove(handler)
        if handlers or channel not in self._handlers:
            return
        del self._handlers[channel]
        if self._connection is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._connection.send_command("UNSUBSCRIBE", channel)

    def on_gap(self, listener: GapListener) -> None:
        self._gap_listeners.append(listener)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._connection is not None:
            await self._connection.disconnect()
            self._connection = None

    async def _publish_loop(self) -> None:
        backoff = _BACKOFF_FIRST
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), _PIPELINE_LIMIT))]
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for channel, message in batch:
                            pipe.publish(channel, message)
                        await pipe.execute()
                    if self._dropped:
                        log.warning("bus publishing resumed", extra={"dropped": self._dropped})
                        self._dropped = 0
                    backoff = _BACKOFF_FIRST
                except (RedisError, OSError):
                    if not self._dropped:
                        log.warning("bus publishing failed: Redis is unreachable; subscribers will catch up")
                    self._dropped += len(batch) + len(self._outbox)
                    self._outbox.clear()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _subscribe_loop(self) -> None:
        backoff = _BACKOFF_FIRST
        first = True
        # RESP2 on purpose: under RESP3 (redis-py's default since 8) pub/sub replies are push frames, which
        # `read_response` hands to a push handler instead of returning them.
        pool = ConnectionPool.from_url(self._url, protocol=2, socket_connect_timeout=2, socket_timeout=None)
        try:
            while True:
                connection: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
                try:
                    await connection.connect()  # type: ignore[no-untyped-call]
                    # No await between these two: a channel subscribed meanwhile is either in the list or
                    # sent on this connection by `subscribe` itself (twice is harmless).
                    channels = list(self._handlers)
                    self._connection = connection
                    if channels:
                        await connection.send_command("SUBSCRIBE", *channels)
                    self._connected = True
                    backoff = _BACKOFF_FIRST
                    await self._read(connection, unconfirmed=set(channels), after_outage=not first)
                except Exception as exc:
                    if not isinstance(exc, (RedisError, OSError, TimeoutError)):
                        # Not a connection problem: a bug, but the bus must live on, so it starts afresh.
                        log.exception("bus subscriber failed; reconnecting")
                    elif self._connected:
                        log.warning("bus connection lost; reconnecting")
                        BUS_RECONNECTS.inc()
                    self._connected = False
                    self._connection = None
                    await connection.disconnect(nowait=True)
                    first = False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
        finally:
            self._connected = False
            await pool.disconnect()

    async def _read(self, connection: AbstractConnection, *, unconfirmed: set[str], after_outage: bool) -> None:
        """Reads until the connection fails. After an outage, the gap is reported once every channel is
        subscribed again: a subscriber that then reads the database misses nothing published after."""
        quiet = 0
        if after_outage and not unconfirmed:
            self._report_gap()
        while True:
            reply = await connection.read_response(timeout=self._ping_interval)
            if reply is None:
                quiet += 1
                if quiet > 1:
                    raise TimeoutError("Redis did not answer a PING")
                await connection.send_command("PING")
                continue
            quiet = 0
            confirmed = self._handle(reply)
            if confirmed is not None and confirmed in unconfirmed:
                unconfirmed.discard(confirmed)
                if after_outage and not unconfirmed:
                    log.info("bus reconnected; subscribers catch up from the database")
                    self._report_gap()

    def _handle(self, reply: Any) -> str | None:
        """Delivers a message; returns the channel a subscription was confirmed for, if that is what it was."""
        if not isinstance(reply, list) or not reply:
            return None
        kind = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if kind == "message" and len(reply) == 3:
            channel, data = reply[1].decode(), reply[2]
            if data[:_ORIGIN_BYTES] == self._origin:
                return None
            handlers = self._handlers.get(channel)
            if handlers:
                try:
                    message = self._codec.decode(channel, data[_ORIGIN_BYTES:])
                except Exception:
                    # Whatever is wrong with one message (a value of the wrong type fails in its own way) must
                    # not cost the connection and what is buffered on it.
                    log.warning("unreadable bus message ignored", extra={"channel": channel})
                    return None
                deliver(tuple(handlers), message)
        elif kind == "subscribe":
            confirmed: str = reply[1].decode()
            for waiting in self._confirmations.get(confirmed, []):
                if not waiting.done():
                    waiting.set_result(None)
            return confirmed
        return None

    def _report_gap(self) -> None:
        for listener in self._gap_listeners:
            try:
                listener()
            except Exception:
                log.exception("a bus gap listener failed")
