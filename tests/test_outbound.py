"""Outbound messages in the database: receipts that beat the send's answer, and the lock that makes it safe."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import aiohttp
import pytest

from fiv_console.access import Viewer
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.errors import Conflict
from fiv_console.events import EventBatch, Unannounced
from fiv_console.messages import outbound, sending
from fiv_console.messages import statuses as message_statuses
from fiv_console.simulation.cloud_api import SimulatorConfig, SimulatorServer
from fiv_console.whatsapp.client import GraphClient, RetryPolicy
from tests.api import TenantPeople
from tests.webhooks import connect_number, new_phone_number_id


async def _queued_reply(db: Database, tenant: TenantPeople) -> outbound.Outgoing:
    channel_id = await connect_number(
        db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=new_phone_number_id()
    )
    async with tenant_tx(db, tenant.id) as conn:
        contact = await conn.fetchval(
            "insert into contacts (tenant_id, wa_id) values ($1, '5511900000001') returning id", tenant.id
        )
        conversation = await conn.fetchval(
            "insert into conversations (tenant_id, channel_id, contact_id, queue_id, last_inbound_at) "
            "values ($1, $2, $3, $4, now()) returning id",
            tenant.id,
            channel_id,
            contact,
            tenant.queue_id,
        )
        viewer = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
        return await outbound.prepare(
            conn,
            EventBatch(tenant.id),
            viewer=viewer,
            conversation_id=conversation,
            content=outbound.TextReply(text="hello"),
        )


async def _receipt(db: Database, tenant: TenantPeople, channel_id: uuid.UUID, wamid: str, status: str) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await message_statuses.record(
            conn,
            EventBatch(tenant.id),
            channel_id=channel_id,
            wa_message_id=wamid,
            status=status,
            occurred_at=datetime.now(UTC),
            errors=None,
            raw={},
        )


async def test_a_receipt_that_came_before_the_wamid_was_known_is_applied_then(
    db: Database, tenant: TenantPeople
) -> None:
    outgoing = await _queued_reply(db, tenant)
    await _receipt(db, tenant, outgoing.target.channel_id, "wamid.early", "delivered")
    async with tenant_tx(db, tenant.id) as conn:
        sent = await outbound.record_sent(conn, EventBatch(tenant.id), outgoing=outgoing, wamid="wamid.early")
    assert (sent.status, sent.wa_message_id) == ("delivered", "wamid.early")


async def test_a_receipt_racing_the_sends_answer_waits_for_it_and_applies(db: Database, tenant: TenantPeople) -> None:
    outgoing = await _queued_reply(db, tenant)
    async with tenant_tx(db, tenant.id) as conn:
        await outbound.record_sent(conn, EventBatch(tenant.id), outgoing=outgoing, wamid="wamid.racing")
        # Not committed yet: without the wamid's lock the receipt would find no message and be left unapplied.
        receipt = asyncio.create_task(_receipt(db, tenant, outgoing.target.channel_id, "wamid.racing", "read"))
        await asyncio.sleep(0.3)
        assert not receipt.done()
    await receipt
    async with tenant_tx(db, tenant.id) as conn:
        status = await conn.fetchval("select status from messages where id = $1", outgoing.message.id)
    assert status == "read"


async def test_a_failed_send_keeps_the_reason_and_later_receipts_do_not_revive_it(
    db: Database, tenant: TenantPeople
) -> None:
    outgoing = await _queued_reply(db, tenant)
    error = {"code": 131026, "title": "Message undeliverable", "reason": "WhatsApp could not deliver it."}
    async with tenant_tx(db, tenant.id) as conn:
        failed = await outbound.record_failed(conn, EventBatch(tenant.id), outgoing=outgoing, error=error)
        # The send's outcome is recorded once: a second answer for the same attempt changes nothing.
        again = await outbound.record_sent(conn, EventBatch(tenant.id), outgoing=outgoing, wamid="wamid.late")
    assert (failed.status, failed.error) == ("failed", error)
    assert (again.status, again.wa_message_id) == ("failed", None)


async def test_a_retry_forgets_the_last_attempts_wamid_and_records_only_its_own_outcome(
    db: Database, tenant: TenantPeople
) -> None:
    first = await _queued_reply(db, tenant)
    channel_id = first.target.channel_id
    viewer = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    async with tenant_tx(db, tenant.id) as conn:
        await outbound.record_sent(conn, EventBatch(tenant.id), outgoing=first, wamid="wamid.ONE")
    await _receipt(db, tenant, channel_id, "wamid.ONE", "failed")
    async with tenant_tx(db, tenant.id) as conn:
        second = await outbound.prepare_retry(conn, EventBatch(tenant.id), viewer=viewer, message_id=first.message.id)
    assert (second.attempt, second.message.status, second.message.wa_message_id) == (2, "queued", None)

    await _receipt(db, tenant, channel_id, "wamid.ONE", "delivered")  # late, about the first attempt
    async with tenant_tx(db, tenant.id) as conn:
        stale = await outbound.record_failed(conn, EventBatch(tenant.id), outgoing=first, error={"code": 1})
        assert stale.status == "queued"  # the first attempt's outcome does not touch the second
        sent = await outbound.record_sent(conn, EventBatch(tenant.id), outgoing=second, wamid="wamid.TWO")
    assert (sent.status, sent.wa_message_id, sent.error) == ("sent", "wamid.TWO", None)
    async with tenant_tx(db, tenant.id) as conn:
        wrong_status = await conn.fetchval("select count(*) from messages where wa_message_id = 'wamid.ONE'")
    assert wrong_status == 0


async def test_a_retry_is_only_for_a_failed_message(db: Database, tenant: TenantPeople) -> None:
    outgoing = await _queued_reply(db, tenant)
    viewer = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    async with tenant_tx(db, tenant.id) as conn:
        with pytest.raises(Conflict):
            await outbound.prepare_retry(conn, EventBatch(tenant.id), viewer=viewer, message_id=outgoing.message.id)


async def test_a_reply_recorded_while_a_customer_message_holds_the_contact_does_not_deadlock(
    db: Database, tenant: TenantPeople
) -> None:
    """Found by bench/soak.py: the reply's transaction wrote the conversation twice (the customer answered,
    then the first response), and PostgreSQL re-checks the foreign keys of a row the transaction already
    wrote: a share lock on the contact, which a customer's message (the intake) held for update while
    waiting for the conversation. A deadlock, and a reply WhatsApp took answered 500. Here that order is
    forced: the message's row is held so that `record_sent` stops after locking the conversation, the
    intake locks the contact and queues for the conversation, and the message's row is let go."""
    outgoing = await _queued_reply(db, tenant)
    conversation_id = outgoing.message.conversation_id
    async with tenant_tx(db, tenant.id) as conn:
        contact_id = await conn.fetchval(
            "update conversations set awaiting_reply_since = now() - interval '1 minute' where id = $1 "
            "returning contact_id",
            conversation_id,
        )
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold_message_row() -> None:
        async with tenant_tx(db, tenant.id) as conn:
            await conn.execute("select 1 from messages where id = $1 for update", outgoing.message.id)
            held.set()
            await release.wait()

    async def record() -> outbound.Message:
        async with tenant_tx(db, tenant.id) as conn:
            return await outbound.record_sent(conn, EventBatch(tenant.id), outgoing=outgoing, wamid="wamid.first")

    async def customer_writes() -> None:
        async with tenant_tx(db, tenant.id) as conn:  # as messages.identities and messages.inbound lock them
            await conn.execute("select 1 from contacts where id = $1 for update", contact_id)
            await conn.execute("select 1 from conversations where id = $1 for no key update", conversation_id)

    holder = asyncio.create_task(hold_message_row())
    await held.wait()
    recording = asyncio.create_task(record())
    await asyncio.sleep(0.3)  # record_sent waits for the message's row
    intake = asyncio.create_task(customer_writes())
    await asyncio.sleep(0.3)  # the intake holds the contact and waits for the conversation
    release.set()
    await holder
    sent, _ = await asyncio.wait_for(asyncio.gather(recording, intake), timeout=10)
    assert sent.status == "sent"
    async with tenant_tx(db, tenant.id) as conn:
        row = await conn.fetchrow(
            "select first_response_at, awaiting_reply_since from conversations where id = $1", conversation_id
        )
    assert row["first_response_at"] is not None
    assert row["awaiting_reply_since"] is None


async def test_a_send_whose_record_loses_a_deadlock_is_recorded_again(db: Database, tenant: TenantPeople) -> None:
    """Recording a send locks its wamid, then the conversation; a webhook that stores a customer's message
    and that send's receipt together locks them the other way round, and PostgreSQL ends one of the two.
    Forced here: the conversation is held, the send is recorded (its wamid locked, the conversation awaited),
    then the wamid's lock is asked for. The record, waiting longest, is the one ended; WhatsApp took the
    message, so it is recorded again rather than left `queued` behind a 500."""
    outgoing = await _queued_reply(db, tenant)
    conversation_id = outgoing.message.conversation_id
    async with (
        SimulatorServer(SimulatorConfig(app_secret=b"s")) as simulator,
        aiohttp.ClientSession() as session,
    ):
        client = GraphClient(session, simulator.graph_url, retry=RetryPolicy(attempts=1))
        async with tenant_tx(db, tenant.id) as webhook:
            await webhook.execute("select 1 from conversations where id = $1 for no key update", conversation_id)
            delivering = asyncio.create_task(sending.deliver(db, client, Unannounced(), tenant.id, outgoing))
            for _ in range(100):
                if simulator.simulator.sent:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # the record holds the wamid's lock and waits for the conversation
            [sent] = simulator.simulator.sent
            await message_statuses.lock_wamid(webhook, channel_id=outgoing.target.channel_id, wa_message_id=sent.wamid)
        stored = await asyncio.wait_for(delivering, timeout=15)
    assert (stored.status, stored.wa_message_id) == ("sent", sent.wamid)
