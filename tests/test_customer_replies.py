"""What a waiting customer hears from the console by itself, sent through the Cloud API simulator: the
out-of-hours message, their place in the line with an estimated wait, and the closing message of an
inactive conversation. The console and the simulator are real servers on loopback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fiv_console import events
from fiv_console.assignment.customer_replies import fill, wait_in_words
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.events import Unannounced
from fiv_console.keys import assignment_key
from fiv_console.messages import outbound
from fiv_console.simulation.cloud_api import SentMessage
from tests.api import TenantPeople
from tests.assigning import available
from tests.conftest import TestDatabase
from tests.webhooks import World, simulated_world

ALWAYS_CLOSED: dict[str, Any] = {}
CLOSED_TEXT = "We are closed now; we answer from 9:00 on weekdays."


@pytest.fixture
async def world(database: TestDatabase, db: Database, tenant: TenantPeople) -> AsyncIterator[World]:
    async with simulated_world(database, db, tenant, seed=11) as world:
        yield world


async def _writes(world: World, customer: str, text: str) -> None:
    await world.customer_writes(customer, text)


async def _texts_to(world: World, customer: str, count: int, within: float = 5.0) -> list[str]:
    """The texts sent to the customer, once there are `count` of them (and a moment more for any extra)."""

    def sent() -> list[SentMessage]:
        return [s for s in world.simulator.sent if s.wa_id == customer and s.type == "text"]

    for _ in range(int(within / 0.02)):
        if len(sent()) >= count:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    return [s.request["text"]["body"] for s in sent()]


async def _settings(db: Database, tenant: TenantPeople, **settings: Any) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update tenants set settings = settings || $2::jsonb where id = $1", tenant.id, settings)


async def test_a_customer_writing_out_of_hours_is_told_once_through_whatsapp(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update queues set business_hours = $2, out_of_hours_message = $3 where id = $1",
            tenant.queue_id,
            ALWAYS_CLOSED,
            CLOSED_TEXT,
        )
    await _writes(world, "5511911110001", "Hello, anyone there?")
    assert await _texts_to(world, "5511911110001", 1) == [CLOSED_TEXT]
    await _writes(world, "5511911110001", "Hello again")
    assert await _texts_to(world, "5511911110001", 2, within=1.0) == [CLOSED_TEXT]  # once per closed period

    # Stored as the console's own message (no author), and the customer still waits in the line.
    async with tenant_tx(db, tenant.id) as conn:
        row = await conn.fetchrow(
            "select m.author_id, m.details, m.status, c.status as conversation_status from messages m "
            "join conversations c on c.id = m.conversation_id where m.direction = 'outbound'"
        )
    assert row is not None
    assert (row["author_id"], row["details"], row["conversation_status"]) == (
        None,
        {"automatic": "out_of_hours"},
        "waiting",
    )

    # An agent present out of hours answers: a customer given to them is not told the queue is closed.
    await available(db, tenant, tenant.agent.id)
    await _writes(world, "5511911110003", "Are you open?")
    for _ in range(250):
        async with tenant_tx(db, tenant.id) as conn:
            if await conn.fetchval("select count(*) from conversations where status = 'assigned'"):
                break
        await asyncio.sleep(0.02)
    assert await _texts_to(world, "5511911110003", 1, within=1.0) == []
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set status = 'away' where id = $1", tenant.agent.id)

    # Open hours all week: nobody else is told.
    every_day = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update queues set business_hours = $2 where id = $1", tenant.queue_id, every_day)
    await _writes(world, "5511911110002", "Hi")
    assert await _texts_to(world, "5511911110002", 1, within=1.0) == []


async def test_a_customer_left_waiting_hears_their_place_and_the_estimated_wait(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    await _settings(db, tenant, queue_position_reply="You are number {position} in line. Wait: {wait}.")
    await _writes(world, "5511922220001", "First")
    assert await _texts_to(world, "5511922220001", 1) == ["You are number 1 in line. Wait: not known yet."]
    await _writes(world, "5511922220002", "Second")
    assert await _texts_to(world, "5511922220002", 1) == ["You are number 2 in line. Wait: not known yet."]
    await _writes(world, "5511922220002", "Still there?")
    assert len(await _texts_to(world, "5511922220002", 2, within=1.0)) == 1  # told once


def test_the_estimated_wait_reads_as_a_person_would_say_it() -> None:
    # Six assignments in the last half hour: one every five minutes.
    assert wait_in_words(1, 6) == "about 5 minutes"
    assert wait_in_words(3, 6) == "about 15 minutes"
    assert wait_in_words(1, 100) == "less than a minute"
    assert wait_in_words(40, 6) == "about 3 hours"
    assert wait_in_words(1, 0) == "not known yet"
    assert fill("{position}/{wait} {other}", position=2, wait="soon") == "2/soon {other}"


async def test_an_inactive_conversation_is_closed_with_the_tenants_closing_message(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    customer = "5511933330001"
    await _writes(world, customer, "Can you help?")
    async with tenant_tx(db, tenant.id) as conn:
        conversation_id: uuid.UUID = await conn.fetchval("select id from conversations")
        # The customer wrote two hours ago, the agent answered an hour ago, and the customer went quiet.
        await conn.execute("update messages set created_at = now() - interval '2 hours'")
        await conn.execute(
            "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, status, author_id,"
            " created_at) select tenant_id, id, channel_id, 'outbound', 'text', 'Done!', 'sent', $2,"
            " now() - interval '1 hour' from conversations where id = $1",
            conversation_id,
            tenant.agent.id,
        )
        await conn.execute(
            "update conversations set status = 'assigned', agent_id = $2, assigned_at = now() - interval '2 hours',"
            " last_message_at = now() - interval '1 hour' where id = $1",
            conversation_id,
            tenant.agent.id,
        )
    await _settings(db, tenant, inactivity_close_seconds=1800, inactivity_close_message="Closing this chat. Bye!")
    await world.console.app[assignment_key].run_once(tenant.id)
    assert await _texts_to(world, customer, 1) == ["Closing this chat. Bye!"]
    async with tenant_tx(db, tenant.id) as conn:
        row = await conn.fetchrow("select status, close_reason from conversations where id = $1", conversation_id)
    assert row is not None
    assert (row["status"], row["close_reason"]) == ("closed", "inactivity")


async def test_an_automatic_reply_a_stopped_instance_left_unsent_goes_out_with_a_later_sweep(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    customer = "5511944440001"
    await _writes(world, customer, "Hi")
    async with events.changing(db, Unannounced(), tenant.id) as (conn, batch):
        conversation_id = await conn.fetchval("select id from conversations")
        stored = await outbound.prepare_automatic(
            conn, batch, conversation_id=conversation_id, text="You are number 1 in line.", reason="queue_position"
        )
        assert stored is not None
        # Stored, and then the instance stopped before sending it.
        await conn.execute(
            "update messages set updated_at = now() - interval '5 minutes' where id = $1", stored.message.id
        )
    await world.console.app[assignment_key].run_once(tenant.id)
    assert await _texts_to(world, customer, 1) == ["You are number 1 in line."]
    [sent] = [s for s in world.simulator.sent if s.wa_id == customer]
    assert sent.idempotency_key == str(stored.message.id)
    # A second sweep finds nothing more to send.
    await world.console.app[assignment_key].run_once(tenant.id)
    assert len(await _texts_to(world, customer, 2, within=0.5)) == 1
