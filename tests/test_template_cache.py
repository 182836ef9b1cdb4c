"""The templates' cache against the real simulator: kept for its time, one fetch for concurrent misses, the
kept copy when WhatsApp fails; and Meta's lists read leniently (what is unknown is ignored, not fatal)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fiv_console.simulation.cloud_api import SimulatorConfig, SimulatorServer
from fiv_console.simulation.envelopes import DEFAULT_WABA_ID
from fiv_console.simulation.templates import DEFAULT_TEMPLATES
from fiv_console.whatsapp.client import GraphClient, GraphError, RetryPolicy
from fiv_console.whatsapp.template_cache import TemplateCache
from fiv_console.whatsapp.templates import describe, parse_templates

TOKEN = "cache-test-token"


@pytest.fixture
async def server() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SimulatorConfig(app_secret=b"s", template_page_limit=2)) as running:
        yield running


@pytest.fixture
async def client(server: SimulatorServer) -> AsyncIterator[GraphClient]:
    async with aiohttp.ClientSession() as session:
        yield GraphClient(session, server.graph_url, retry=RetryPolicy(attempts=1))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_every_page_is_fetched(server: SimulatorServer, client: GraphClient) -> None:
    items = await client.message_templates(DEFAULT_WABA_ID, TOKEN)
    assert [item["name"] for item in items] == [t["name"] for t in DEFAULT_TEMPLATES]
    assert len(server.simulator.template_listings) == 4  # eight templates, two a page
    with pytest.raises(GraphError) as refused:
        await client.message_templates("999999999", TOKEN)
    assert refused.value.code == 100


async def test_kept_for_its_time_then_fetched_again(server: SimulatorServer, client: GraphClient) -> None:
    clock = Clock()
    cache = TemplateCache(client, ttl=600, clock=clock)
    channel = uuid.uuid4()
    first = await cache.get(channel, DEFAULT_WABA_ID, TOKEN)
    listings = len(server.simulator.template_listings)
    clock.now += 599
    assert await cache.get(channel, DEFAULT_WABA_ID, TOKEN) is first
    assert cache.age(first) == 599
    assert len(server.simulator.template_listings) == listings
    clock.now += 2
    again = await cache.get(channel, DEFAULT_WABA_ID, TOKEN)
    assert again is not first
    assert again.templates == first.templates
    assert len(server.simulator.template_listings) == 2 * listings
    # Another account of the same channel is another entry.
    server.simulator.fail_next(100, target="templates")
    with pytest.raises(GraphError):
        await cache.get(channel, "123456789", TOKEN)


async def test_concurrent_misses_share_one_fetch(server: SimulatorServer, client: GraphClient) -> None:
    cache = TemplateCache(client)
    channel = uuid.uuid4()
    answers = await asyncio.gather(*(cache.get(channel, DEFAULT_WABA_ID, TOKEN) for _ in range(5)))
    assert all(answer is answers[0] for answer in answers)
    assert len(server.simulator.template_listings) == 4  # one fetch: its four pages
    await cache.close()


async def test_a_cancelled_caller_does_not_cancel_the_fetch_for_the_others(
    server: SimulatorServer, client: GraphClient
) -> None:
    cache = TemplateCache(client)
    channel = uuid.uuid4()
    impatient = asyncio.create_task(cache.get(channel, DEFAULT_WABA_ID, TOKEN))
    patient = asyncio.create_task(cache.get(channel, DEFAULT_WABA_ID, TOKEN))
    await asyncio.sleep(0)
    impatient.cancel()
    catalog = await patient
    assert len(catalog.templates) == len(DEFAULT_TEMPLATES)


async def test_a_failed_refresh_answers_the_kept_copy_marked_stale(
    server: SimulatorServer, client: GraphClient
) -> None:
    cache = TemplateCache(client)
    channel = uuid.uuid4()
    kept = await cache.get(channel, DEFAULT_WABA_ID, TOKEN)
    server.simulator.fail_next(131000, target="templates")
    stale = await cache.get(channel, DEFAULT_WABA_ID, TOKEN, refresh=True)
    assert stale.stale
    assert stale.templates == kept.templates
    assert stale.fetched_at == kept.fetched_at
    assert stale.stale_reason == "WhatsApp had an unexpected error; try again."
    # The next success replaces the copy.
    fresh = await cache.get(channel, DEFAULT_WABA_ID, TOKEN, refresh=True)
    assert not fresh.stale
    assert fresh.fetched_at > kept.fetched_at


def test_what_meta_adds_is_ignored_and_an_unreadable_template_left_out() -> None:
    items: list[Any] = [
        {
            "name": "carousel_promo",
            "language": "en_US",
            "status": "APPROVED",
            "category": "MARKETING",
            "sub_category": "SOMETHING_NEW",
            "quality_score": {"score": "GREEN"},
            "components": [
                {"type": "BODY", "text": "Look at {{1}}", "example": "not the usual shape"},
                {"type": "CAROUSEL", "cards": [{"components": []}]},
                {"type": "BUTTONS", "buttons": [{"type": "FLOW", "text": "Open", "flow_id": 1}]},
            ],
        },
        {"language": "en_US", "status": "APPROVED"},  # no name
        "not even an object",
        {"name": "legacy", "language": "en", "status": "approved", "components": [{"type": "BODY", "text": "{{a}}"}]},
    ]
    carousel, legacy = (describe(template) for template in parse_templates(items))
    assert carousel.body is not None
    assert carousel.body.parameters[0].name == "1"
    assert carousel.body.parameters[0].example is None
    assert (carousel.sendable, carousel.unsupported) == (False, ["a CAROUSEL component", "a FLOW button"])
    # No `parameter_format` (listed before Meta gave one): a named placeholder makes it named.
    assert (legacy.parameter_format, legacy.status, legacy.sendable) == ("NAMED", "APPROVED", True)
