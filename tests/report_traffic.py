"""Known traffic for the report tests, written as the owner at chosen times.

The owner writes the same columns the domain's statements set (status, queue, agent, assigned_at,
closed_at, enqueued_at, updated_at; a reply queued, then sent), so the triggers of sql/0016 record the
segments as they do for the server, at those times. `scene` is a tenant in Europe/Lisbon whose traffic
crosses midnight and the end of summer time (2026-10-25 02:00 WEST -> 01:00 WET); tests/test_reports.py
lists the figures it makes, computed by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import pytest

from tests.api import TenantPeople
from tests.conftest import TestDatabase


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class Traffic:
    """Writes conversations' moves as the owner, at chosen times."""

    owner: asyncpg.Connection
    tenant_id: uuid.UUID
    channel_id: uuid.UUID

    async def open(self, queue_id: uuid.UUID, when: datetime, name: str = "Customer") -> uuid.UUID:
        contact = await self.owner.fetchval(
            "insert into contacts (tenant_id, wa_id, name) values ($1, $2, $3) returning id",
            self.tenant_id,
            str(uuid.uuid4().int)[:13],
            name,
        )
        return await self.owner.fetchval(  # type: ignore[no-any-return]
            "insert into conversations (tenant_id, channel_id, contact_id, queue_id, created_at, enqueued_at,"
            " last_message_at, updated_at) values ($1, $2, $3, $4, $5, $5, $5, $5) returning id",
            self.tenant_id,
            self.channel_id,
            contact,
            queue_id,
            when,
        )

    async def assign(self, conversation: uuid.UUID, agent: uuid.UUID, when: datetime) -> None:
        await self.owner.execute(
            "update conversations set status = 'assigned', agent_id = $2, assigned_at = $3, updated_at = $3,"
            " passed_over_agent_id = null where id = $1",
            conversation,
            agent,
            when,
        )

    async def to_queue(self, conversation: uuid.UUID, queue: uuid.UUID, when: datetime) -> None:
        await self.owner.execute(
            "update conversations set status = 'waiting', queue_id = $2, agent_id = null, assigned_at = null,"
            " updated_at = $3 where id = $1",
            conversation,
            queue,
            when,
        )

    async def reroute(self, conversation: uuid.UUID, when: datetime) -> None:
        """As `assignment.unanswered` takes it from a silent agent: passed over by them."""
        await self.owner.execute(
            "update conversations set status = 'waiting', passed_over_agent_id = agent_id, agent_id = null,"
            " assigned_at = null, updated_at = $2 where id = $1",
            conversation,
            when,
        )

    async def reply(self, conversation: uuid.UUID, author: uuid.UUID | None, when: datetime) -> None:
        """Queued, then taken by WhatsApp at `when` (as `outbound.record_sent` marks it)."""
        message = await self.owner.fetchval(
            "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, status, author_id,"
            " details, created_at, updated_at) select tenant_id, id, channel_id, 'outbound', 'text', 'hi', 'queued',"
            " $2, $3::jsonb, $4, $4 from conversations where id = $1 returning id",
            conversation,
            author,
            None if author is not None else '{"automatic": "queue_position"}',
            when,
        )
        await self.owner.execute(
            "update messages set status = 'sent', wa_message_id = $2, updated_at = $3 where id = $1",
            message,
            f"wamid.{uuid.uuid4().hex}",
            when,
        )

    async def close(self, conversation: uuid.UUID, when: datetime) -> None:
        await self.owner.execute(
            "update conversations set status = 'closed', closed_at = $2, close_reason = 'done', updated_at = $2"
            " where id = $1",
            conversation,
            when,
        )

    async def reopen(self, conversation: uuid.UUID, when: datetime) -> None:
        await self.owner.execute(
            "update conversations set status = 'waiting', agent_id = null, assigned_at = null, closed_at = null,"
            " close_reason = null, enqueued_at = $2, updated_at = $2 where id = $1",
            conversation,
            when,
        )

    async def presence(self, user: uuid.UUID, status: str, connected: bool, when: datetime) -> None:
        await self.owner.execute(
            "insert into agent_presence_log (tenant_id, user_id, status, connected, changed_at)"
            " values ($1, $2, $3, $4, $5)",
            self.tenant_id,
            user,
            status,
            connected,
            when,
        )


@dataclass
class Scene:
    tenant: TenantPeople
    q1: uuid.UUID
    q2: uuid.UUID


@pytest.fixture
async def scene(database: TestDatabase, tenant: TenantPeople) -> AsyncIterator[Scene]:
    owner = await asyncpg.connect(database.owner_url)
    try:
        await owner.execute("update tenants set time_zone = 'Europe/Lisbon' where id = $1", tenant.id)
        await owner.execute("update queues set sla_seconds = 60, name = 'First line' where id = $1", tenant.queue_id)
        q2 = await owner.fetchval(
            "insert into queues (tenant_id, name, sla_seconds) values ($1, 'Billing, \"VIP\"', 300) returning id",
            tenant.id,
        )
        channel = await owner.fetchval(
            "insert into channels (tenant_id, phone_number_id, display_number, default_queue_id)"
            " values ($1, $2, '+351 555', $3) returning id",
            tenant.id,
            str(uuid.uuid4().int)[:15],
            tenant.queue_id,
        )
        traffic = Traffic(owner, tenant.id, channel)
        q1, a, b = tenant.queue_id, tenant.agent.id, tenant.other_agent.id
        # c1 crosses midnight: queued and answered on the 24th, closed on the 25th.
        c1 = await traffic.open(q1, at("2026-10-24T23:50:00+01:00"))
        await traffic.assign(c1, a, at("2026-10-24T23:50:30+01:00"))
        await traffic.reply(c1, a, at("2026-10-24T23:52:30+01:00"))
        await traffic.close(c1, at("2026-10-25T00:10:00+01:00"))
        # c2 spans the end of summer time: B has it, hands it to A, who answers in the repeated hour.
        c2 = await traffic.open(q1, at("2026-10-25T01:30:00+01:00"))
        await traffic.assign(c2, b, at("2026-10-25T01:32:00+01:00"))
        await traffic.assign(c2, a, at("2026-10-25T01:40:00+01:00"))
        await traffic.reply(c2, a, at("2026-10-25T01:20:00+00:00"))
        await traffic.close(c2, at("2026-10-25T03:00:00+00:00"))
        # c3 and c4 close while waiting: abandoned, c3 within the 5 s of a short abandon. c4 was sent an
        # automatic reply, which answers nothing.
        c3 = await traffic.open(q2, at("2026-10-24T10:00:00+01:00"))
        await traffic.close(c3, at("2026-10-24T10:00:03+01:00"))
        c4 = await traffic.open(q2, at("2026-10-24T11:00:00+01:00"), name='=HYPERLINK("x")')
        await traffic.reply(c4, None, at("2026-10-24T11:05:00+01:00"))
        await traffic.close(c4, at("2026-10-24T11:10:00+01:00"))
        # c5: moved to the second queue while waiting, taken by A, re-routed from A unanswered, answered by
        # B, closed; reopened the next morning and still waiting.
        c5 = await traffic.open(q1, at("2026-10-24T12:00:00+01:00"), name='Silva, "Zé"\nda Costa')
        await traffic.to_queue(c5, q2, at("2026-10-24T12:01:00+01:00"))
        await traffic.assign(c5, a, at("2026-10-24T12:03:00+01:00"))
        await traffic.reroute(c5, at("2026-10-24T12:13:00+01:00"))
        await traffic.assign(c5, b, at("2026-10-24T12:14:00+01:00"))
        await traffic.reply(c5, b, at("2026-10-24T12:15:00+01:00"))
        await traffic.close(c5, at("2026-10-24T12:30:00+01:00"))
        await traffic.reopen(c5, at("2026-10-25T09:00:00+00:00"))
        # A: online from before the range, away at 13:00 local, gone (no socket) at 14:00 local.
        await traffic.presence(a, "online", True, at("2026-10-23T20:00:00+00:00"))
        await traffic.presence(a, "away", True, at("2026-10-24T12:00:00+00:00"))
        await traffic.presence(a, "online", False, at("2026-10-24T13:00:00+00:00"))
        yield Scene(tenant, q1, q2)
    finally:
        await owner.close()
