"""The bus hands this instance's subscribers the very event published; only Redis carries bytes.

Encoding an event for the bus and decoding it again on its own instance cost time on every event, and
gave its subscribers a second shape of it (UUIDs turned into strings): the assignment loop, hearing
events as announced, and the feeds, hearing them from the bus, saw different payloads.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from redis.asyncio import Redis

from fiv_console.access import Audience
from fiv_console.bus.channels import tenant_channel
from fiv_console.bus.local import LocalBus
from fiv_console.bus.redis import RedisBus
from fiv_console.events import Event
from fiv_console.realtime import wire


def _events(tenant_id: uuid.UUID) -> list[Event]:
    conversation_id = uuid.uuid4()
    return [
        Event(
            tenant_id,
            7,
            "conversation.created",
            Audience.queue(uuid.uuid4()),
            conversation_id,
            {"conversation_id": conversation_id, "created_at": datetime.now(UTC)},
            datetime.now(UTC),
        )
    ]


class Heard:
    def __init__(self) -> None:
        self.messages: list[wire.Message] = []
        self.arrived = asyncio.Event()

    def __call__(self, message: wire.Message) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def first(self) -> wire.Message:
        async with asyncio.timeout(5):
            await self.arrived.wait()
        return self.messages[0]


@asynccontextmanager
async def redis_bus(redis_url: str) -> AsyncIterator[RedisBus[wire.Message]]:
    client = Redis.from_url(redis_url)
    bus = RedisBus(client, redis_url, wire.CODEC)
    try:
        for _ in range(500):
            if bus.connected:
                break
            await asyncio.sleep(0.01)
        yield bus
    finally:
        await bus.close()
        await client.aclose()


async def test_the_local_bus_hands_over_the_event_itself() -> None:
    bus: LocalBus[wire.Message] = LocalBus()
    tenant_id = uuid.uuid4()
    heard = Heard()
    await bus.subscribe(tenant_channel(tenant_id), heard)
    published = _events(tenant_id)
    bus.publish(tenant_channel(tenant_id), published)
    assert await heard.first() is published


async def test_redis_hands_this_instance_the_event_and_others_its_decoded_twin(redis_url: str) -> None:
    tenant_id = uuid.uuid4()
    channel = tenant_channel(tenant_id)
    async with redis_bus(redis_url) as here, redis_bus(redis_url) as there:
        heard_here, heard_there = Heard(), Heard()
        await here.subscribe(channel, heard_here)
        await there.subscribe(channel, heard_there)
        published = _events(tenant_id)
        here.publish(channel, published)
        assert await heard_here.first() is published
        [received] = await heard_there.first()  # type: ignore[misc]
        [sent] = published
        assert isinstance(received, Event)
        assert (received.tenant_id, received.seq, received.type) == (sent.tenant_id, sent.seq, sent.type)
        assert (received.audience, received.conversation_id, received.created_at) == (
            sent.audience,
            sent.conversation_id,
            sent.created_at,
        )
        await asyncio.sleep(0.2)
        assert len(heard_here.messages) == 1  # its own message is not delivered twice


async def test_an_unreadable_message_from_another_instance_is_left_out(redis_url: str) -> None:
    tenant_id = uuid.uuid4()
    channel = tenant_channel(tenant_id)
    async with redis_bus(redis_url) as bus:
        heard = Heard()
        await bus.subscribe(channel, heard)
        client = Redis.from_url(redis_url)
        try:
            await client.publish(channel, b"\0" * 16 + b"not json")
            # Well-formed JSON with a value of the wrong type fails differently (an int is no UUID).
            await client.publish(channel, b"\0" * 16 + b'{"k": "sessions_ended", "user_id": 5}')
            await client.publish(channel, b"\0" * 16 + wire.encode_notice(wire.AccessChanged(tenant_id)))
        finally:
            await client.aclose()
        assert await heard.first() == wire.AccessChanged(tenant_id)
        assert len(heard.messages) == 1
