"""The assignment engine's tenant rules against the real database, through `run_once`: unanswered
conversations re-routed to another agent, the same agent as last time, priorities rising with the wait,
SLA breaches, and conversations closed for inactivity."""

from __future__ import annotations

import uuid
from typing import Any

from fiv_console import events
from fiv_console.access import Viewer
from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.conversations import lifecycle as conversations
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.events import Unannounced
from fiv_console.messages import outbound
from fiv_console.messages.intake import Intake
from fiv_console.whatsapp.payloads import parse_webhook
from tests.api import TenantPeople
from tests.assigning import assigned_to, available, channel, conversations_waiting, owners_of
from tests.webhooks import envelope, number_of, text_message


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


async def _agent_queues(
    db: Database, tenant: TenantPeople, conversation_id: uuid.UUID, agent_id: uuid.UUID
) -> outbound.Outgoing:
    """A reply of the agent's, stored as the API stores it (a template: it may go whenever they last wrote)."""
    agent = Viewer(tenant_id=tenant.id, role="agent", user_id=agent_id)
    template = outbound.TemplateReply(template=outbound.TemplateRequest(name="on_it", language="en"))
    async with events.changing(db, Unannounced(), tenant.id) as (conn, batch):
        return await outbound.prepare(conn, batch, viewer=agent, conversation_id=conversation_id, content=template)


async def _whatsapp_answers(db: Database, tenant: TenantPeople, outgoing: outbound.Outgoing, *, took: bool) -> None:
    """What the sending path records of WhatsApp's answer to one attempt: taken (`sent`) or refused."""
    async with events.changing(db, Unannounced(), tenant.id) as (conn, batch):
        if took:
            await outbound.record_sent(conn, batch, outgoing=outgoing, wamid=f"wamid.{uuid.uuid4().hex}")
        else:
            await outbound.record_failed(conn, batch, outgoing=outgoing, error={"code": 131026, "title": "refused"})


async def _agent_writes(db: Database, tenant: TenantPeople, conversation_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """A reply of the agent's that WhatsApp took."""
    outgoing = await _agent_queues(db, tenant, conversation_id, agent_id)
    await _whatsapp_answers(db, tenant, outgoing, took=True)


async def _console_replies(db: Database, tenant: TenantPeople, conversation_id: uuid.UUID) -> None:
    """An automatic reply (out of hours), as the assignment loop stores it."""
    async with events.changing(db, Unannounced(), tenant.id) as (conn, batch):
        reply = await outbound.prepare_automatic(
            conn, batch, conversation_id=conversation_id, text="We are closed", reason="out_of_hours"
        )
    assert reply is not None


async def _arrives(db: Database, phone_number_id: str, wa_id: str) -> None:
    body = envelope(phone_number_id, messages=[text_message(wa_id, "Hello?")])
    assert (await Intake(db, Unannounced()).ingest(parse_webhook(body), body=body)).messages_stored == 1


async def _customer_writes(db: Database, tenant: TenantPeople, conversation_id: uuid.UUID) -> None:
    """A message from the conversation's customer, now, through the webhook intake."""
    async with tenant_tx(db, tenant.id) as conn:
        row = await conn.fetchrow(
            "select k.wa_id, ch.phone_number_id from conversations c join contacts k on k.id = c.contact_id "
            "join channels ch on ch.id = c.channel_id where c.id = $1",
            conversation_id,
        )
    await _arrives(db, row["phone_number_id"], row["wa_id"])


async def _minutes_pass(db: Database, tenant: TenantPeople, minutes: int) -> None:
    """Everything the tenant's conversations and messages remember happened `minutes` earlier."""
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update messages set created_at = created_at - make_interval(mins => $1)", minutes)
        await conn.execute(
            "update conversations set assigned_at = assigned_at - make_interval(mins => $1), "
            "awaiting_reply_since = awaiting_reply_since - make_interval(mins => $1), "
            "last_inbound_at = last_inbound_at - make_interval(mins => $1), "
            "last_message_at = last_message_at - make_interval(mins => $1)",
            minutes,
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
    # Both assigned to the agent, both customers wrote eight minutes ago; one was answered.
    unanswered, answered = await assigned_to(db, tenant, tenant.agent.id, 2)
    for conversation_id in (unanswered, answered):
        await _customer_writes(db, tenant, conversation_id)
    await _agent_writes(db, tenant, answered, tenant.agent.id)
    await _minutes_pass(db, tenant, 8)
    loop = _loop(db)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[unanswered] == tenant.agent.id  # the tenant has no limit set

    await _settings(db, tenant, unanswered_reroute_seconds=300)
    await loop.run_once(tenant.id)
    owners = await owners_of(db, tenant)
    assert (owners[unanswered], owners[answered]) == (tenant.other_agent.id, tenant.agent.id)
    moves = [(kind, payload.get("reason")) for kind, payload in await _events(db, tenant, unanswered)]
    assert [move for move in moves if move[0] != "message.created"] == [
        ("conversation.unassigned", "unanswered"),
        ("conversation.assigned", None),
    ]

    # Given to the other agent a minute ago: they have four minutes more, however long the customer waited.
    await _assigned_minutes_ago(db, tenant, unanswered, 1)
    await _customer_writes(db, tenant, unanswered)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[unanswered] == tenant.other_agent.id


async def test_a_customer_who_keeps_writing_to_a_silent_agent_is_re_routed_from_their_first_message(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    await _settings(db, tenant, unanswered_reroute_seconds=300)
    [conversation] = await assigned_to(db, tenant, tenant.agent.id, 1)  # ten minutes ago
    loop = _loop(db)
    # A message every minute: the latest is always new, the first gets older.
    for minute in range(5):
        await _customer_writes(db, tenant, conversation)
        await loop.run_once(tenant.id)
        assert (await owners_of(db, tenant))[conversation] == tenant.agent.id, minute
        await _minutes_pass(db, tenant, 1)
    await _customer_writes(db, tenant, conversation)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[conversation] == tenant.other_agent.id
    moves = [(kind, payload.get("reason")) for kind, payload in await _events(db, tenant, conversation)]
    assert moves[-2:] == [("conversation.unassigned", "unanswered"), ("conversation.assigned", None)]


async def test_an_answer_restarts_the_wait_from_the_next_message_and_an_automatic_reply_does_not(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    await _settings(db, tenant, unanswered_reroute_seconds=300)
    [conversation] = await assigned_to(db, tenant, tenant.agent.id, 1)
    await _customer_writes(db, tenant, conversation)
    await _minutes_pass(db, tenant, 4)
    await _agent_writes(db, tenant, conversation, tenant.agent.id)
    await _customer_writes(db, tenant, conversation)  # the wait starts again here
    await _minutes_pass(db, tenant, 2)
    # Six minutes since the first message, two since the one nobody answered; the console's reply is no answer.
    await _console_replies(db, tenant, conversation)
    await _customer_writes(db, tenant, conversation)
    loop = _loop(db)
    for minutes in (2, 1):
        await loop.run_once(tenant.id)
        assert (await owners_of(db, tenant))[conversation] == tenant.agent.id
        await _minutes_pass(db, tenant, minutes)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[conversation] == tenant.other_agent.id


async def test_only_a_reply_whatsapp_took_answers_and_a_retry_answers_what_came_before_it(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    await _settings(db, tenant, unanswered_reroute_seconds=300)
    [refused, retried, overtaken] = await assigned_to(db, tenant, tenant.agent.id, 3)
    for conversation_id in (refused, retried, overtaken):
        await _customer_writes(db, tenant, conversation_id)
    await _minutes_pass(db, tenant, 6)
    # The first reply WhatsApp refuses: the customer is still unanswered.
    await _whatsapp_answers(db, tenant, await _agent_queues(db, tenant, refused, tenant.agent.id), took=False)
    # The second is refused, the customer writes again, and the agent sends it once more, which goes.
    first_try = await _agent_queues(db, tenant, retried, tenant.agent.id)
    await _whatsapp_answers(db, tenant, first_try, took=False)
    await _customer_writes(db, tenant, retried)
    agent = Viewer(tenant_id=tenant.id, role="agent", user_id=tenant.agent.id)
    async with events.changing(db, Unannounced(), tenant.id) as (conn, batch):
        second_try = await outbound.prepare_retry(conn, batch, viewer=agent, message_id=first_try.message.id)
    await _whatsapp_answers(db, tenant, second_try, took=True)
    # The third is queued, the customer writes before WhatsApp takes it: that message still awaits an answer.
    queued = await _agent_queues(db, tenant, overtaken, tenant.agent.id)
    await _customer_writes(db, tenant, overtaken)
    await _whatsapp_answers(db, tenant, queued, took=True)

    async with tenant_tx(db, tenant.id) as conn:
        rows = await conn.fetch(
            "select id, awaiting_reply_since from conversations where id = any($1)", [refused, retried, overtaken]
        )
        messages = await conn.fetch(
            "select conversation_id, max(created_at) as latest from messages "
            "where direction = 'inbound' and conversation_id = any($1) group by conversation_id",
            [refused, retried, overtaken],
        )
    awaiting = {r["id"]: r["awaiting_reply_since"] for r in rows}
    latest = {r["conversation_id"]: r["latest"] for r in messages}
    assert awaiting[retried] is None
    assert awaiting[overtaken] == latest[overtaken]
    assert awaiting[refused] is not None
    assert awaiting[refused] < latest[overtaken]
    await _loop(db).run_once(tenant.id)
    owners = await owners_of(db, tenant)
    assert owners[retried] == owners[overtaken] == tenant.agent.id
    assert owners[refused] == tenant.other_agent.id


async def test_a_customer_who_waited_in_the_queue_gives_the_agent_the_whole_limit_from_the_assignment(
    db: Database, tenant: TenantPeople
) -> None:
    await _settings(db, tenant, unanswered_reroute_seconds=300)
    phone_number_id = await number_of(db, tenant)
    await _arrives(db, phone_number_id, "5511987650000")
    loop = _loop(db)
    await loop.run_once(tenant.id)  # nobody there
    await _minutes_pass(db, tenant, 10)
    await available(db, tenant, tenant.agent.id)
    await loop.run_once(tenant.id)
    [conversation] = await owners_of(db, tenant)
    assert (await owners_of(db, tenant))[conversation] == tenant.agent.id
    await available(db, tenant, tenant.other_agent.id)
    for minutes in (4, 1):
        await _customer_writes(db, tenant, conversation)
        await loop.run_once(tenant.id)
        assert (await owners_of(db, tenant))[conversation] == tenant.agent.id
        await _minutes_pass(db, tenant, minutes)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[conversation] == tenant.other_agent.id


async def test_a_passed_over_agent_gets_it_back_only_when_no_other_agent_of_the_queue_is_there(
    db: Database, tenant: TenantPeople
) -> None:
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    await _settings(db, tenant, unanswered_reroute_seconds=300)
    busy, waiting = await assigned_to(db, tenant, tenant.agent.id, 2)
    await _customer_writes(db, tenant, waiting)
    await _minutes_pass(db, tenant, 8)
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
    [(kind, payload)] = [event for event in await _events(db, tenant, answered) if not event[0].startswith("message.")]
    assert (kind, payload["reason"]) == ("conversation.closed", "inactivity")
