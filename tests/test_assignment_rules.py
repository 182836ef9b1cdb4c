"""The assignment engine's tenant rules against the real database, through `run_once`: unanswered
conversations re-routed to another agent, the same agent as last time, priorities rising with the wait,
SLA breaches, and conversations closed for inactivity."""

from __future__ import annotations

import uuid
from typing import Any

from fiv_console import conversations
from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.conversations import Viewer
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.events import Unannounced
from tests.api import TenantPeople
from tests.assigning import assigned_to, available, channel, conversations_waiting, owners_of


def _loop(db: Database) -> AssignmentLoop:
    return AssignmentLoop(db, Unannounced(), grace=30)


async def _settings(db: Database, tenant: TenantPeople, **settings: Any) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update tenants set settings = settings || $2::jsonb where id = $1", tenant.id, settings)


async def _events(db: Database, tenant: TenantPeople, conversation_id: uuid.UUID) -> list[tuple[str, Any]]:
    async with tenant_tx(db, tenant.id) as conn:
        rows = await conn.fetch(
            "select type, payload from events where conversation_id = $1 order by seq", conversation_id
        )
    return [(r["type"], r["payload"]) for r in rows]


async def _agent_writes(db: Database, tenant: TenantPeople, conversation_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, status, author_id) "
            "select tenant_id, id, channel_id, 'outbound', 'text', 'On it', 'sent', $2 from conversations "
            "where id = $1",
            conversation_id,
            agent_id,
        )


async def _customer_wrote(db: Database, tenant: TenantPeople, conversation_id: uuid.UUID, minutes_ago: int) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, status, created_at) "
            "select tenant_id, id, channel_id, 'inbound', 'text', 'Hello?', 'received', "
            "now() - make_interval(mins => $2) from conversations where id = $1",
            conversation_id,
            minutes_ago,
        )


async def _assigned_minutes_ago(db: Database, tenant: TenantPeople, conversation_id: uuid.UUID, minutes: int) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update conversations set assigned_at = now() - make_interval(mins => $2) where id = $1",
            conversation_id,
            minutes,
        )


async def test_a_customer_left_unanswered_goes_to_another_agent(db: Database, tenant: TenantPeople) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    # Both assigned to the agent ten minutes ago, both customers wrote eight minutes ago; one was answered.
    unanswered, answered = await assigned_to(db, tenant, tenant.agent.id, 2)
    for conversation_id in (unanswered, answered):
        await _customer_wrote(db, tenant, conversation_id, 8)
    await _agent_writes(db, tenant, answered, tenant.agent.id)
    loop = _loop(db)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[unanswered] == tenant.agent.id  # the tenant has no limit set

    await _settings(db, tenant, unanswered_reroute_seconds=300)
    await loop.run_once(tenant.id)
    owners = await owners_of(db, tenant)
    assert (owners[unanswered], owners[answered]) == (tenant.other_agent.id, tenant.agent.id)
    moves = [(kind, payload.get("reason")) for kind, payload in await _events(db, tenant, unanswered)]
    assert moves == [("conversation.unassigned", "unanswered"), ("conversation.assigned", None)]

    # The customer wrote a minute ago: the other agent has four minutes more before it moves again.
    await _assigned_minutes_ago(db, tenant, unanswered, 10)
    await _customer_wrote(db, tenant, unanswered, 1)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[unanswered] == tenant.other_agent.id


async def test_a_passed_over_agent_gets_it_back_only_when_no_other_agent_of_the_queue_is_there(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    await _settings(db, tenant, unanswered_reroute_seconds=300)
    busy, waiting = await assigned_to(db, tenant, tenant.agent.id, 2)
    await _customer_wrote(db, tenant, waiting, 8)
    async with tenant_tx(db, tenant.id) as conn:
        # The other agent is full; the agent, who let `waiting` be, has room.
        await conn.execute("update conversations set agent_id = $2 where id = $1", busy, tenant.other_agent.id)
        await conn.execute("update users set max_concurrent = 1 where id = $1", tenant.other_agent.id)
    loop = _loop(db)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[waiting] is None  # it waits for the other agent
    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conversations.close(conn, viewer=admin, conversation_id=busy, reason="done")
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[waiting] == tenant.other_agent.id

    # Unanswered again, and now the other agent is away: rather than wait for nobody, it goes back.
    await _assigned_minutes_ago(db, tenant, waiting, 10)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set status = 'away' where id = $1", tenant.agent.id)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[waiting] == tenant.other_agent.id
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select passed_over_agent_id from conversations where id = $1", waiting) is None
    kinds = [kind for kind, _ in await _events(db, tenant, waiting)]
    assert kinds[-2:] == ["conversation.unassigned", "conversation.assigned"]


async def test_a_returning_customer_goes_to_the_agent_of_their_last_conversation_when_the_tenant_says_so(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    channel_id = await channel(db, tenant)
    [before] = await conversations_waiting(db, tenant, channel_id, 1)
    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conversations.assign(conn, viewer=admin, conversation_id=before, agent_id=tenant.agent.id, force=False)
        await conversations.close(conn, viewer=admin, conversation_id=before, reason="solved")
        # The other agent has never had a conversation: without the preference they would be first.
        await conn.execute("update users set last_assigned_at = now() where id = $1", tenant.agent.id)

    async def returns() -> uuid.UUID:
        async with tenant_tx(db, tenant.id) as conn:
            again: uuid.UUID = await conn.fetchval(
                "insert into conversations (tenant_id, channel_id, contact_id, queue_id) "
                "select tenant_id, channel_id, contact_id, queue_id from conversations where id = $1 returning id",
                before,
            )
        return again

    again = await returns()
    await _loop(db).run_once(tenant.id)
    assert (await owners_of(db, tenant))[again] == tenant.other_agent.id
    async with tenant_tx(db, tenant.id) as conn:
        await conversations.close(conn, viewer=admin, conversation_id=again, reason="solved")
        await conn.execute("update conversations set agent_id = $2 where id = $1", again, tenant.agent.id)

    await _settings(db, tenant, prefer_last_agent=True)
    third = await returns()
    await _loop(db).run_once(tenant.id)
    assert (await owners_of(db, tenant))[third] == tenant.agent.id


async def test_a_long_wait_raises_a_conversations_priority_when_the_tenant_says_so(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id)
    channel_id = await channel(db, tenant)
    # Two hours' wait at priority 0 and a fresh one at priority 3; the agent has room for one.
    patient, urgent = await conversations_waiting(db, tenant, channel_id, 2)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set max_concurrent = 1 where id = $1", tenant.agent.id)
        await conn.execute("update conversations set enqueued_at = now() - interval '2 hours' where id = $1", patient)
        await conn.execute("update conversations set priority = 3, enqueued_at = now() where id = $1", urgent)
    await _loop(db).run_once(tenant.id)
    assert (await owners_of(db, tenant))[urgent] == tenant.agent.id

    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conversations.unassign(conn, viewer=admin, conversation_id=urgent)
    await _settings(db, tenant, priority_rise_seconds=1800)  # + 4 after two hours: 4 > 3
    await _loop(db).run_once(tenant.id)
    assert (await owners_of(db, tenant))[patient] == tenant.agent.id


async def test_waiting_past_the_queues_target_is_marked_once_with_an_event(db: Database, tenant: TenantPeople) -> None:
    channel_id = await channel(db, tenant)
    late, early = await conversations_waiting(db, tenant, channel_id, 2)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update queues set sla_seconds = 120 where id = $1", tenant.queue_id)
        await conn.execute("update conversations set enqueued_at = now() - interval '3 minutes' where id = $1", late)
        await conn.execute("update conversations set enqueued_at = now() - interval '1 minute' where id = $1", early)
    loop = _loop(db)
    await loop.run_once(tenant.id)
    await loop.run_once(tenant.id)
    [(kind, payload)] = await _events(db, tenant, late)
    assert kind == "conversation.sla_breached"
    assert payload["conversation"]["sla_breached_at"] is not None
    assert await _events(db, tenant, early) == []

    # A reopened conversation is new work: its clock starts afresh.
    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conversations.close(conn, viewer=admin, conversation_id=late, reason="spam")
        moved = await conversations.reopen(conn, viewer=admin, conversation_id=late)
    assert moved.conversation.sla_breached_at is None


async def test_inactive_conversations_close_but_never_one_whose_customer_awaits_an_answer(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id)
    answered, unanswered, passed_on = await assigned_to(db, tenant, tenant.agent.id, 3)
    await _agent_writes(db, tenant, answered, tenant.agent.id)
    # "Passing you on to billing": the agent had the last word, and the customer waits in the queue again.
    await _agent_writes(db, tenant, passed_on, tenant.agent.id)
    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    async with tenant_tx(db, tenant.id) as conn:
        await conversations.unassign(conn, viewer=admin, conversation_id=passed_on)
        await conn.execute("update users set status = 'away' where id = $1", tenant.agent.id)
    async with tenant_tx(db, tenant.id) as conn:
        # The customer of the second wrote last; an hour of silence in both.
        await conn.execute(
            "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, status) "
            "select tenant_id, id, channel_id, 'inbound', 'text', 'Hello?', 'received' from conversations "
            "where id = $1",
            unanswered,
        )
        await conn.execute("update messages set created_at = now() - interval '1 hour'")
        await conn.execute("update conversations set last_message_at = now() - interval '1 hour'")
    await _settings(db, tenant, inactivity_close_seconds=1800)
    await _loop(db).run_once(tenant.id)
    async with tenant_tx(db, tenant.id) as conn:
        rows = await conn.fetch("select id, status, close_reason from conversations")
    states = {r["id"]: (r["status"], r["close_reason"]) for r in rows}
    assert states == {
        answered: ("closed", "inactivity"),
        unanswered: ("assigned", None),
        passed_on: ("waiting", None),
    }
    [(kind, payload)] = await _events(db, tenant, answered)
    assert (kind, payload["reason"]) == ("conversation.closed", "inactivity")
