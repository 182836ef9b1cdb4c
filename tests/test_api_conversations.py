"""Conversations through the API: who sees what, the lifecycle moves and their races, notes, labels and the
message history.

WhatsApp intake does not exist yet, so conversations and messages are written with SQL, as intake will
write them; everything else goes through the API as the people of the tenant.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from fiv_console.accounts import tokens, users
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.routing import queues
from fiv_console.web.api.conversations import routes
from tests.api import Answer, Api, Browsers, Person, TenantPeople, password_hash

_CONTACT_SQL = "insert into contacts (tenant_id, wa_id, name, profile_name) values ($1, $2, $3, $4) returning id"
_CONVERSATION_SQL = """
insert into conversations (tenant_id, channel_id, contact_id, queue_id, agent_id, status, assigned_at, closed_at,
                           close_reason, enqueued_at, last_inbound_at, last_message_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
returning id
"""
_MESSAGE_SQL = """
insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, raw, wa_message_id, status,
                      created_at)
values ($1, $2, $3, 'inbound', 'text', $4, '{"entry": "the raw webhook"}', $5, 'received', $6)
returning id
"""


@dataclass
class Desk:
    """A tenant's WhatsApp number, and conversations and messages put on it directly."""

    db: Database
    people: TenantPeople
    channel_id: uuid.UUID

    async def conversation(
        self,
        *,
        queue_id: uuid.UUID | None = None,
        status: str = "waiting",
        agent_id: uuid.UUID | None = None,
        contact_id: uuid.UUID | None = None,
        name: str | None = None,
        profile_name: str | None = None,
        wa_id: str | None = None,
        enqueued_at: datetime | None = None,
        last_message_at: datetime | None = None,
        inbound: bool = True,
    ) -> uuid.UUID:
        now = datetime.now(UTC)
        async with tenant_tx(self.db, self.people.id) as conn:
            if contact_id is None:
                # Digits 2 to 9 only: a made-up number never matches the searches for 0s and 1s below.
                number = wa_id or "55" + "".join(secrets.choice("23456789") for _ in range(13))
                contact_id = await conn.fetchval(_CONTACT_SQL, self.people.id, number, name, profile_name)
            conversation_id: uuid.UUID = await conn.fetchval(
                _CONVERSATION_SQL,
                self.people.id,
                self.channel_id,
                contact_id,
                queue_id or self.people.queue_id,
                agent_id,
                status,
                now if agent_id else None,
                now if status == "closed" else None,
                "done" if status == "closed" else None,
                enqueued_at or now,
                (last_message_at or now) if inbound else None,
                last_message_at or now,
            )
        return conversation_id

    async def contact_of(self, conversation_id: uuid.UUID) -> uuid.UUID:
        async with tenant_tx(self.db, self.people.id) as conn:
            contact: uuid.UUID = await conn.fetchval(
                "select contact_id from conversations where id = $1", conversation_id
            )
        return contact

    async def messages(self, conversation_id: uuid.UUID, count: int, *, start: datetime) -> list[uuid.UUID]:
        """`count` messages, three to a timestamp so that only the id tells some of them apart."""
        made = []
        async with tenant_tx(self.db, self.people.id) as conn:
            for n in range(count):
                made.append(
                    await conn.fetchval(
                        _MESSAGE_SQL,
                        self.people.id,
                        conversation_id,
                        self.channel_id,
                        f"message {n}",
                        f"wamid.{uuid.uuid4().hex}",
                        start + timedelta(seconds=n // 3),
                    )
                )
        return made

    async def row(self, conversation_id: uuid.UUID) -> dict[str, Any]:
        async with tenant_tx(self.db, self.people.id) as conn:
            row = await conn.fetchrow("select * from conversations where id = $1", conversation_id)
        assert row is not None
        return dict(row)

    async def sql(self, statement: str, *args: Any) -> Any:
        async with tenant_tx(self.db, self.people.id) as conn:
            return await conn.fetchval(statement, *args)

    async def queue(self) -> uuid.UUID:
        async with tenant_tx(self.db, self.people.id) as conn:
            queue = await queues.create_queue(
                conn, tenant_id=self.people.id, data=queues.QueueCreate(name=f"Sales {uuid.uuid4().hex[:6]}")
            )
        return queue.id

    async def label(self, name: str = "vip") -> uuid.UUID:
        label_id: uuid.UUID = await self.sql(
            "insert into labels (tenant_id, name, color) values ($1, $2, '#aa0000') returning id", self.people.id, name
        )
        return label_id

    async def agents(self, count: int, *, queue_id: uuid.UUID | None = None) -> list[Person]:
        made = []
        async with tenant_tx(self.db, self.people.id) as conn:
            for n in range(count):
                email = f"extra-{n}-{uuid.uuid4().hex[:8]}@a.example"
                data = users.UserCreate(email=email, name=f"Extra {n}", role="agent", password=SecretStr("x" * 8))
                user = await users.create_user(conn, tenant_id=self.people.id, data=data, password_hash=password_hash())
                await queues.add_member(
                    conn, tenant_id=self.people.id, queue_id=queue_id or self.people.queue_id, user_id=user.id
                )
                made.append(Person(user.id, email, "agent", self.people.workspace))
        return made

    async def token(self, role: users.Role) -> str:
        async with tenant_tx(self.db, self.people.id) as conn:
            created = await tokens.create_token(
                conn, tenant_id=self.people.id, data=tokens.TokenCreate(name=role, role=role), created_by=None
            )
        return created.secret


async def _desk(db: Database, people: TenantPeople) -> Desk:
    async with tenant_tx(db, people.id) as conn:
        channel_id = await conn.fetchval(
            "insert into channels (tenant_id, phone_number_id, display_number, default_queue_id) "
            "values ($1, $2, '+351 21 000 0000', $3) returning id",
            people.id,
            str(uuid.uuid4().int)[:15],
            people.queue_id,
        )
    return Desk(db, people, channel_id)


@pytest.fixture
async def desk(db: Database, tenant: TenantPeople) -> Desk:
    return await _desk(db, tenant)


async def _sign_in(browsers: Browsers, *people: Person) -> list[Api]:
    return list(await asyncio.gather(*(browsers.signed_in(person) for person in people)))


def _ids(answer: Answer) -> list[str]:
    return [item["id"] for item in answer.data["items"]]


def _url(conversation_id: uuid.UUID, action: str = "") -> str:
    return f"/api/conversations/{conversation_id}" + (f"/{action}" if action else "")


async def _audit_actions(admin: Api) -> Counter[str]:
    entries = (await admin.get("/api/audit-log?limit=100")).data
    return Counter(entry["action"] for entry in entries if entry["action"].startswith("conversation."))


ID_OPERATIONS = [op for op in routes.operations if "conversation_id" in op.path_parameters]


async def _walk(api: Api, conversation_id: uuid.UUID, *, label_id: uuid.UUID, queue_id: uuid.UUID) -> dict[str, int]:
    """Every operation of the resource on one conversation, each with a valid body: operation → status."""
    bodies = {
        "assign_conversation": {},
        "transfer_conversation": {"queue_id": str(queue_id), "note": "over to you"},
        "close_conversation": {"reason": "done"},
        "add_conversation_note": {"body": "a note"},
    }
    statuses = {}
    for op in ID_OPERATIONS:
        path = op.path.replace("{conversation_id}", str(conversation_id)).replace("{label_id}", str(label_id))
        answer = await api.call(op.method, path, json=bodies.get(op.operation_id))
        statuses[op.operation_id] = answer.status
    return statuses


async def test_an_agent_sees_their_own_and_their_queues_waiting_conversations(
    browsers: Browsers, tenant: TenantPeople, desk: Desk
) -> None:
    elsewhere = await desk.queue()
    waiting_here = await desk.conversation()
    waiting_elsewhere = await desk.conversation(queue_id=elsewhere)
    mine_elsewhere = await desk.conversation(queue_id=elsewhere, status="assigned", agent_id=tenant.agent.id)
    colleagues = await desk.conversation(status="assigned", agent_id=tenant.other_agent.id)
    closed_mine = await desk.conversation(status="closed", agent_id=tenant.agent.id)
    closed_colleagues = await desk.conversation(status="closed", agent_id=tenant.other_agent.id)
    label = await desk.label()
    admin, supervisor, agent, colleague = await _sign_in(
        browsers, tenant.admin, tenant.supervisor, tenant.agent, tenant.other_agent
    )

    everything = {str(c) for c in (waiting_here, waiting_elsewhere, mine_elsewhere, colleagues, closed_mine)}
    everything.add(str(closed_colleagues))
    for staff in (admin, supervisor):
        assert set(_ids(await staff.get("/api/conversations?limit=100"))) == everything
    seen = await agent.get("/api/conversations")
    assert set(_ids(seen)) == {str(waiting_here), str(mine_elsewhere), str(closed_mine)}
    assert seen.body["pagination"]["total"] == 3
    # The other agent is in no queue: only what is theirs.
    assert set(_ids(await colleague.get("/api/conversations"))) == {str(colleagues), str(closed_colleagues)}
    # A filter never widens sight.
    assert _ids(await agent.get(f"/api/conversations?agent_id={tenant.other_agent.id}")) == []

    # Out of sight is exactly "not found": the same answer as an id that exists nowhere.
    unknown = await agent.get(_url(uuid.uuid4()))
    assert (unknown.status, unknown.code) == (404, "NOT_FOUND")
    for hidden in (waiting_elsewhere, colleagues, closed_colleagues):
        answer = await agent.get(_url(hidden))
        assert (answer.status, answer.body) == (404, unknown.body)

    # Every operation on a conversation out of sight: 404 (unassigning is refused by role before that).
    statuses = await _walk(agent, waiting_elsewhere, label_id=label, queue_id=tenant.queue_id)
    assert statuses == {
        op.operation_id: 403 if op.operation_id == "unassign_conversation" else 404 for op in ID_OPERATIONS
    }
    after = await supervisor.get(_url(waiting_elsewhere))
    assert (after.data["status"], after.data["queue_id"], after.data["labels"]) == ("waiting", str(elsewhere), [])
    assert (await supervisor.get(_url(waiting_elsewhere, "notes"))).data == []


async def test_another_tenants_conversation_ids_are_not_found_everywhere(
    browsers: Browsers, db: Database, tenant: TenantPeople, other_tenant: TenantPeople, desk: Desk
) -> None:
    theirs = await _desk(db, other_tenant)
    foreign = await theirs.conversation(status="assigned", agent_id=other_tenant.agent.id)
    foreign_label, foreign_queue = await theirs.label(), other_tenant.queue_id
    ours = await desk.conversation()
    admin, other_admin = await _sign_in(browsers, tenant.admin, other_tenant.admin)

    statuses = await _walk(admin, foreign, label_id=foreign_label, queue_id=foreign_queue)
    assert statuses == {op.operation_id: 404 for op in ID_OPERATIONS}
    assert set(statuses) >= {"get_conversation", "assign_conversation", "list_conversation_messages"}
    # Their ids inside our own conversation's calls: their label, agent and queue do not exist here.
    for method, path, body in (
        ("PUT", _url(ours, f"labels/{foreign_label}"), None),
        ("DELETE", _url(ours, f"labels/{foreign_label}"), None),
        ("POST", _url(ours, "assign"), {"agent_id": str(other_tenant.agent.id)}),
        ("POST", _url(ours, "transfer"), {"agent_id": str(other_tenant.agent.id)}),
        ("POST", _url(ours, "transfer"), {"queue_id": str(foreign_queue)}),
    ):
        answer = await admin.call(method, path, json=body)
        assert (answer.status, answer.code) == (404, "NOT_FOUND"), (method, path, answer.body)
    assert _ids(await admin.get(f"/api/conversations?queue_id={foreign_queue}")) == []
    assert (await admin.get(_url(ours))).data["status"] == "waiting"
    untouched = await other_admin.get(_url(foreign))
    assert (untouched.data["status"], untouched.data["agent_id"]) == ("assigned", str(other_tenant.agent.id))
    assert (await other_admin.get(_url(foreign, "notes"))).data == []


async def test_the_list_filters_searches_sorts_and_pages(browsers: Browsers, tenant: TenantPeople, desk: Desk) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    ana = await desk.conversation(
        name="Ana 100%", wa_id="351910000001", enqueued_at=t0, last_message_at=t0 + timedelta(minutes=30)
    )
    bruno = await desk.conversation(
        name="Bruno",
        profile_name="Bru_no",
        status="assigned",
        agent_id=tenant.agent.id,
        enqueued_at=t0 + timedelta(minutes=10),
        last_message_at=t0 + timedelta(minutes=50),
    )
    carla = await desk.conversation(
        name="Carla",
        inbound=False,
        status="closed",
        agent_id=tenant.agent.id,
        enqueued_at=t0 + timedelta(minutes=20),
        last_message_at=t0 + timedelta(minutes=40),
    )
    vip = await desk.label("vip")
    await desk.sql(
        "insert into conversation_labels (tenant_id, conversation_id, label_id) values ($1, $2, $3)",
        tenant.id,
        bruno,
        vip,
    )
    (supervisor,) = await _sign_in(browsers, tenant.supervisor)

    async def listed(query: str) -> list[str]:
        return _ids(await supervisor.get(f"/api/conversations?{query}"))

    assert await listed("") == [str(bruno), str(carla), str(ana)]
    assert await listed("sort=last_message_at") == [str(ana), str(carla), str(bruno)]
    assert await listed("sort=enqueued_at") == [str(ana), str(bruno), str(carla)]
    assert await listed("sort=-created_at") == [str(carla), str(bruno), str(ana)]
    assert await listed("status=assigned") == [str(bruno)]
    assert await listed(f"agent_id={tenant.agent.id}") == [str(bruno), str(carla)]
    assert await listed(f"queue_id={tenant.queue_id}&status=waiting") == [str(ana)]
    assert await listed(f"label_id={vip}") == [str(bruno)]
    assert await listed(f"contact_id={await desk.contact_of(carla)}") == [str(carla)]
    # Words start words of the name or profile name, any case; punctuation separates words and finds nothing
    # by itself; any part of the number is found.
    assert await listed("q=100") == [str(ana)]
    assert await listed("q=%25") == []
    assert await listed("q=no") == [str(bruno)]
    assert await listed("q=BRU_") == [str(bruno)]
    assert await listed("q=ru") == []
    assert await listed("q=3519100") == [str(ana)]
    assert await listed("q=910000") == [str(ana)]
    assert await listed("q=ana%20100") == [str(ana)]
    assert await listed("q=ana%20bruno") == []
    assert await listed("q=carla&status=waiting") == []

    first = await supervisor.get("/api/conversations?limit=2")
    assert first.body["pagination"] == {"limit": 2, "total": 3, "totalIsAtLeast": False, "hasNext": True}
    cursor = first.data["next_cursor"]
    second = await supervisor.get(f"/api/conversations?limit=2&cursor={cursor}")
    assert second.body["pagination"] == {"limit": 2, "total": 3, "totalIsAtLeast": False, "hasNext": False}
    assert second.data["next_cursor"] is None
    assert _ids(first) + _ids(second) == [str(bruno), str(carla), str(ana)]
    # A cursor belongs to its order: another order's is a field error, not a page of something else.
    answer = await supervisor.get(f"/api/conversations?limit=2&sort=enqueued_at&cursor={cursor}")
    assert (answer.status, answer.code) == (400, "VALIDATION_ERROR")
    assert answer.body["error"]["details"][0]["field"] == "query.cursor"

    item = (await supervisor.get(_url(bruno))).data
    assert set(item) == {
        "id", "status", "queue_id", "agent_id", "priority", "contact", "created_at", "enqueued_at", "assigned_at",
        "first_response_at", "closed_at", "close_reason", "sla_breached_at", "last_inbound_at", "last_message_at",
        "window_closes_at", "labels", "unread_count", "last_message",
    }  # fmt: skip
    assert item["contact"]["name"] == "Bruno"
    assert item["contact"]["profile_name"] == "Bru_no"
    assert set(item["contact"]) == {"id", "wa_id", "name", "profile_name", "username", "group_id"}
    assert item["labels"] == [{"id": str(vip), "name": "vip", "color": "#aa0000"}]
    last_inbound = datetime.fromisoformat(item["last_inbound_at"])
    assert datetime.fromisoformat(item["window_closes_at"]) - last_inbound == timedelta(hours=24)
    assert (await supervisor.get(_url(carla))).data["window_closes_at"] is None

    for query, field in (
        ("sort=password_hash", "query.sort"),
        ("status=open", "query.status"),
        ("queue_id=nope", "query.queue_id"),
        ("q=" + "x" * 101, "query.q"),
        ("q=%00", "query.q"),
        ("limit=101", "query.limit"),
        ("colour=red", "query.colour"),
        ("page=2", "query.page"),
        ("cursor=bm90IGEgY3Vyc29y", "query.cursor"),
        ("cursor=a.b", "query.cursor"),
    ):
        answer = await supervisor.get(f"/api/conversations?{query}")
        assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), query
        assert answer.body["error"]["details"][0]["field"] == field


async def test_each_role_one_allowed_and_one_refused_call_per_operation(
    browsers: Browsers, tenant: TenantPeople, desk: Desk
) -> None:
    elsewhere = await desk.queue()
    mine = await desk.conversation(status="assigned", agent_id=tenant.agent.id)
    waiting = await desk.conversation()
    other_waiting = await desk.conversation()
    label = await desk.label()
    admin, supervisor, agent = await _sign_in(browsers, tenant.admin, tenant.supervisor, tenant.agent)

    async def expect(api: Api, method: str, path: str, status: int, body: Any = None) -> Answer:
        answer = await api.call(method, path, json=body)
        assert answer.status == status, (method, path, body, answer.body)
        return answer

    # Agent: allowed on what is theirs (or waiting in their queue), refused beyond it.
    await expect(agent, "GET", "/api/conversations", 200)
    await expect(agent, "GET", _url(waiting), 200)
    await expect(agent, "POST", _url(waiting, "assign"), 403, {"agent_id": str(tenant.other_agent.id)})
    await expect(agent, "POST", _url(waiting, "assign"), 403, {"force": True})
    taken = await expect(agent, "POST", _url(waiting, "assign"), 200, {})
    assert (taken.data["status"], taken.data["agent_id"]) == ("assigned", str(tenant.agent.id))
    await expect(agent, "POST", _url(other_waiting, "transfer"), 403, {"queue_id": str(elsewhere)})
    # An agent hands over only to another agent of the conversation's queue (other_agent is not in it).
    await expect(agent, "POST", _url(waiting, "transfer"), 409, {"agent_id": str(tenant.other_agent.id)})
    await expect(agent, "POST", _url(waiting, "transfer"), 409, {"agent_id": str(tenant.admin.id)})
    await expect(admin, "PUT", f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}", 200, {})
    await expect(agent, "POST", _url(waiting, "transfer"), 200, {"agent_id": str(tenant.other_agent.id)})
    await expect(agent, "POST", _url(mine, "unassign"), 403)
    await expect(agent, "POST", _url(other_waiting, "close"), 403, {"reason": "spam"})
    await expect(agent, "POST", _url(mine, "close"), 200, {"reason": "solved"})
    await expect(agent, "POST", _url(other_waiting, "reopen"), 409)
    await expect(agent, "POST", _url(mine, "reopen"), 200)
    await expect(agent, "POST", _url(waiting, "notes"), 404, {"body": "gone to a colleague"})
    await expect(agent, "POST", _url(other_waiting, "notes"), 201, {"body": "looks like a refund"})
    await expect(agent, "GET", _url(other_waiting, "notes"), 200)
    await expect(agent, "PUT", _url(waiting, f"labels/{label}"), 404)
    await expect(agent, "PUT", _url(other_waiting, f"labels/{label}"), 200)
    await expect(agent, "DELETE", _url(other_waiting, f"labels/{label}"), 200)
    await expect(agent, "GET", _url(waiting, "messages"), 404)
    await expect(agent, "GET", _url(other_waiting, "messages"), 200)

    # Supervisors and admins: every operation on every conversation; refusals come from the state only.
    for staff in (supervisor, admin):
        await expect(staff, "GET", "/api/conversations", 200)
        await expect(staff, "GET", _url(waiting), 200)
        await expect(staff, "POST", _url(other_waiting, "assign"), 200, {"agent_id": str(tenant.agent.id)})
        await expect(staff, "POST", _url(other_waiting, "assign"), 404, {"agent_id": str(uuid.uuid4())})
        await expect(staff, "POST", _url(other_waiting, "transfer"), 409, {"agent_id": str(tenant.agent.id)})
        await expect(staff, "POST", _url(other_waiting, "transfer"), 200, {"agent_id": str(tenant.other_agent.id)})
        await expect(staff, "POST", _url(other_waiting, "unassign"), 200)
        await expect(staff, "POST", _url(other_waiting, "unassign"), 409)
        await expect(staff, "POST", _url(other_waiting, "close"), 200, {"reason": "spam"})
        await expect(staff, "POST", _url(other_waiting, "close"), 409, {"reason": "spam"})
        await expect(staff, "POST", _url(other_waiting, "reopen"), 200)
        await expect(staff, "POST", _url(other_waiting, "reopen"), 409)
        await expect(staff, "POST", _url(other_waiting, "notes"), 201, {"body": "checked"})
        await expect(staff, "POST", _url(other_waiting, "notes"), 400, {"body": "   "})
        await expect(staff, "GET", _url(other_waiting, "notes"), 200)
        await expect(staff, "PUT", _url(other_waiting, f"labels/{label}"), 200)
        await expect(staff, "PUT", _url(other_waiting, f"labels/{uuid.uuid4()}"), 404)
        await expect(staff, "DELETE", _url(other_waiting, f"labels/{label}"), 200)
        await expect(staff, "GET", _url(other_waiting, "messages"), 200)
        await expect(staff, "GET", _url(other_waiting, "messages?before=nope!"), 400)

    # API tokens: a role without a person. A supervisor token acts but cannot author notes; an agent token
    # owns nothing, so it sees nothing.
    integration = await browsers.new(bearer=await desk.token("supervisor"))
    await expect(integration, "POST", _url(other_waiting, "assign"), 400, {})
    await expect(integration, "POST", _url(other_waiting, "assign"), 200, {"agent_id": str(tenant.agent.id)})
    await expect(integration, "POST", _url(other_waiting, "notes"), 403, {"body": "from the CRM"})
    await expect(integration, "POST", _url(other_waiting, "transfer"), 403, {"queue_id": str(elsewhere), "note": "x"})
    assert (await supervisor.get(_url(other_waiting))).data["queue_id"] == str(tenant.queue_id)
    agent_token = await browsers.new(bearer=await desk.token("agent"))
    assert (await expect(agent_token, "GET", "/api/conversations", 200)).data == {"items": [], "next_cursor": None}
    await expect(agent_token, "GET", _url(other_waiting), 404)


async def test_capacity_refuses_unless_a_supervisor_forces(
    browsers: Browsers, tenant: TenantPeople, desk: Desk
) -> None:
    await desk.sql("update users set max_concurrent = 1 where id = $1", tenant.agent.id)
    await desk.conversation(status="assigned", agent_id=tenant.agent.id)
    first, second, third, fourth = [await desk.conversation() for _ in range(4)]
    admin, supervisor, agent = await _sign_in(browsers, tenant.admin, tenant.supervisor, tenant.agent)
    to_agent = {"agent_id": str(tenant.agent.id)}

    for bad in ({"agent_id": "nope"}, {"force": "maybe"}, {**to_agent, "priority": 9}, [to_agent]):
        answer = await supervisor.post(_url(first, "assign"), bad)
        assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), bad
        assert answer.body["error"]["details"][0]["field"].startswith("body"), bad
    assert (await supervisor.post(f"/api/conversations/{first}x/assign", to_agent)).status == 400
    assert (await desk.row(first))["status"] == "waiting"

    refused = await supervisor.post(_url(first, "assign"), to_agent)
    assert (refused.status, refused.code) == (409, "CONFLICT")
    assert "capacity" in refused.body["error"]["message"]
    assert (await agent.post(_url(first, "assign"), {})).status == 409
    assert (await desk.row(first))["status"] == "waiting"

    forced = await supervisor.post(_url(first, "assign"), {**to_agent, "force": True})
    assert (forced.status, forced.data["agent_id"]) == (200, str(tenant.agent.id))

    # A queue's override replaces the agent's own capacity for that queue's conversations.
    await desk.sql(
        "update queue_members set max_concurrent_override = 3 where queue_id = $1 and user_id = $2",
        tenant.queue_id,
        tenant.agent.id,
    )
    assert (await agent.post(_url(second, "assign"), {})).status == 200
    assert (await agent.post(_url(third, "assign"), {})).status == 409

    await desk.sql("update users set disabled = true where id = $1", tenant.other_agent.id)
    disabled = await supervisor.post(_url(third, "assign"), {"agent_id": str(tenant.other_agent.id), "force": True})
    assert disabled.status == 409

    await desk.sql(
        "update tenants set settings = settings || '{\"agents_can_take_waiting\": false}' where id = $1", tenant.id
    )
    await desk.sql("update queue_members set max_concurrent_override = 10 where user_id = $1", tenant.agent.id)
    assert (await agent.post(_url(fourth, "assign"), {})).status == 403
    assert (await supervisor.post(_url(fourth, "assign"), to_agent)).status == 200

    closed = await desk.conversation(status="closed")
    assert (await supervisor.post(_url(closed, "assign"), {**to_agent, "force": True})).status == 409
    assert (await _audit_actions(admin))["conversation.assigned"] == 2


async def test_twenty_concurrent_assigns_never_push_an_agent_over_capacity(
    browsers: Browsers, tenant: TenantPeople, desk: Desk
) -> None:
    waiting = [await desk.conversation() for _ in range(20)]
    (supervisor,) = await _sign_in(browsers, tenant.supervisor)
    body = {"agent_id": str(tenant.agent.id)}
    answers = await asyncio.gather(*(supervisor.post(_url(c, "assign"), body) for c in waiting))
    assert Counter(a.status for a in answers) == {200: 3, 409: 17}
    load = await desk.sql(
        "select count(*) from conversations where agent_id = $1 and status = 'assigned'", tenant.agent.id
    )
    assert load == 3


async def test_ten_agents_taking_one_conversation_at_once_leave_one_owner(
    browsers: Browsers, tenant: TenantPeople, desk: Desk
) -> None:
    conversation = await desk.conversation()
    people = await desk.agents(10)
    agents = await _sign_in(browsers, *people)
    answers = await asyncio.gather(*(agent.post(_url(conversation, "assign"), {}) for agent in agents))
    # The others hear that it was taken: a clear answer, not the "not found" of a conversation out of sight.
    assert Counter(a.status for a in answers) == {200: 1, 409: 9}
    lost = [answer for answer in answers if answer.status == 409]
    assert all(a.code == "CONFLICT" and a.body["error"]["details"] == {"reason": "taken"} for a in lost)
    assert "another agent has taken" in lost[0].body["error"]["message"]
    winner = next(person for person, answer in zip(people, answers, strict=True) if answer.status == 200)
    # An agent of another queue still hears "not found": taken or not, it was never in their sight.
    stranger = (await _sign_in(browsers, *(await desk.agents(1, queue_id=await desk.queue()))))[0]
    refused = await stranger.post(_url(conversation, "assign"), {})
    assert (refused.status, refused.code) == (404, "NOT_FOUND")
    row = await desk.row(conversation)
    assert (row["status"], row["agent_id"]) == ("assigned", winner.id)


async def test_transfers_keep_the_place_in_line_and_save_the_note(
    browsers: Browsers, tenant: TenantPeople, desk: Desk
) -> None:
    billing = await desk.queue()
    arrived = datetime.now(UTC) - timedelta(hours=1)
    conversation = await desk.conversation(status="assigned", agent_id=tenant.agent.id, enqueued_at=arrived)
    admin, supervisor, agent, colleague = await _sign_in(
        browsers, tenant.admin, tenant.supervisor, tenant.agent, tenant.other_agent
    )

    moved = await agent.post(_url(conversation, "transfer"), {"queue_id": str(billing), "note": "asks for an invoice"})
    assert (moved.status, moved.data["status"], moved.data["agent_id"]) == (200, "waiting", None)
    assert moved.data["queue_id"] == str(billing)
    assert datetime.fromisoformat(moved.data["enqueued_at"]) == arrived
    # The agent is not in the billing queue: it has left their sight.
    assert (await agent.get(_url(conversation))).status == 404
    notes = (await supervisor.get(_url(conversation, "notes"))).data
    assert [(n["body"], n["author_id"], n["author_name"]) for n in notes] == [
        ("asks for an invoice", str(tenant.agent.id), "Agent")
    ]

    to_colleague = await supervisor.post(_url(conversation, "transfer"), {"agent_id": str(tenant.other_agent.id)})
    assert (to_colleague.data["status"], to_colleague.data["agent_id"]) == ("assigned", str(tenant.other_agent.id))
    again = await supervisor.post(_url(conversation, "transfer"), {"agent_id": str(tenant.other_agent.id)})
    assert again.status == 409
    # Agents hand over only to agents of the conversation's queue.
    refused = await colleague.post(_url(conversation, "transfer"), {"agent_id": str(tenant.agent.id)})
    assert refused.status == 409
    assert (await admin.put(f"/api/queues/{billing}/members/{tenant.agent.id}", {})).status == 200
    back = await colleague.post(_url(conversation, "transfer"), {"agent_id": str(tenant.agent.id), "note": "yours"})
    assert back.data["agent_id"] == str(tenant.agent.id)
    assert (await agent.get(_url(conversation))).status == 200

    # Unassigning returns it to its queue at its original place too.
    unassigned = await supervisor.post(_url(conversation, "unassign"))
    assert (unassigned.data["status"], unassigned.data["queue_id"]) == ("waiting", str(billing))
    assert datetime.fromisoformat(unassigned.data["enqueued_at"]) == arrived

    for bad in ({}, {"agent_id": str(tenant.agent.id), "queue_id": str(billing)}, {"queue_id": "billing"}):
        answer = await supervisor.post(_url(conversation, "transfer"), bad)
        assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), bad
        assert answer.body["error"]["details"][0]["field"].startswith("body")
    assert (await supervisor.post(_url(conversation, "transfer"), {"queue_id": str(billing)})).status == 409
    assert (await supervisor.post(_url(conversation, "transfer"), {"queue_id": str(uuid.uuid4())})).status == 404

    assert len((await supervisor.get(_url(conversation, "notes"))).data) == 2
    actions = await _audit_actions(admin)
    assert (actions["conversation.transferred"], actions["conversation.unassigned"]) == (1, 1)


async def test_close_and_reopen(browsers: Browsers, tenant: TenantPeople, desk: Desk) -> None:
    mine = await desk.conversation(status="assigned", agent_id=tenant.agent.id)
    other = await desk.conversation(status="assigned", agent_id=tenant.other_agent.id)
    admin, supervisor, agent = await _sign_in(browsers, tenant.admin, tenant.supervisor, tenant.agent)

    for reason in ("", "   ", "x" * 501, None, 7):
        answer = await agent.post(_url(mine, "close"), {"reason": reason})
        assert (answer.status, answer.body["error"]["details"][0]["field"]) == (400, "body.reason"), reason
    assert (await desk.row(mine))["status"] == "assigned"

    closed = await agent.post(_url(mine, "close"), {"reason": "  solved on the phone "})
    assert (closed.data["status"], closed.data["close_reason"]) == ("closed", "solved on the phone")
    assert closed.data["closed_at"] is not None
    # Closed, it stays in the agent's history and sight.
    assert (await agent.get(_url(mine))).data["agent_id"] == str(tenant.agent.id)
    assert (await agent.post(_url(mine, "close"), {"reason": "again"})).status == 409
    assert (await supervisor.post(_url(other, "close"), {"reason": "duplicate"})).status == 200

    before = (await desk.row(mine))["enqueued_at"]
    reopened = await agent.post(_url(mine, "reopen"))
    assert (reopened.data["status"], reopened.data["agent_id"], reopened.data["closed_at"]) == ("waiting", None, None)
    assert reopened.data["close_reason"] is None
    assert datetime.fromisoformat(reopened.data["enqueued_at"]) > before

    # One open conversation per contact and number: a new one came in meanwhile, so no reopening.
    await desk.conversation(contact_id=await desk.contact_of(other))
    refused = await supervisor.post(_url(other, "reopen"))
    assert (refused.status, refused.code) == (409, "CONFLICT")
    assert (await desk.row(other))["status"] == "closed"

    actions = await _audit_actions(admin)
    assert (actions["conversation.closed"], actions["conversation.reopened"]) == (1, 0)


async def test_notes_and_labels(
    browsers: Browsers, db: Database, tenant: TenantPeople, other_tenant: TenantPeople, desk: Desk
) -> None:
    conversation = await desk.conversation()
    label, other_label = await desk.label("vip"), await desk.label("Angry")
    foreign_label = await (await _desk(db, other_tenant)).label()
    supervisor, agent, colleague = await _sign_in(browsers, tenant.supervisor, tenant.agent, tenant.other_agent)

    written = await agent.post(_url(conversation, "notes"), {"body": "  line one\nline two <script>"})
    assert written.status == 201
    assert written.data["body"] == "  line one\nline two <script>"
    assert written.data["author_id"] == str(tenant.agent.id)
    await supervisor.post(_url(conversation, "notes"), {"body": "thanks"})
    for bad in ({"body": ""}, {"body": "x" * 10_001}, {"body": "a\u0000b"}, {"body": "hi", "pinned": True}, {}):
        answer = await agent.post(_url(conversation, "notes"), bad)
        assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), bad
        assert answer.body["error"]["details"][0]["field"].startswith("body")
    listed = await agent.get(_url(conversation, "notes"))
    assert [n["body"] for n in listed.data] == ["  line one\nline two <script>", "thanks"]
    assert listed.body["pagination"]["total"] == 2
    assert (await colleague.get(_url(conversation, "notes"))).status == 404
    assert (await colleague.post(_url(conversation, "notes"), {"body": "sneaky"})).status == 404

    tagged = await agent.put(_url(conversation, f"labels/{label}"))
    assert [entry["name"] for entry in tagged.data["labels"]] == ["vip"]
    await agent.put(_url(conversation, f"labels/{label}"))
    both = await supervisor.put(_url(conversation, f"labels/{other_label}"))
    assert [entry["name"] for entry in both.data["labels"]] == ["Angry", "vip"]
    assert (await agent.put(_url(conversation, f"labels/{foreign_label}"))).status == 404
    assert (await colleague.put(_url(conversation, f"labels/{label}"))).status == 404
    untagged = await agent.delete(_url(conversation, f"labels/{label}"))
    assert [entry["name"] for entry in untagged.data["labels"]] == ["Angry"]
    assert (await agent.delete(_url(conversation, f"labels/{label}"))).status == 200
    assert (await agent.put(_url(conversation, "labels/not-a-uuid"))).status == 400


async def test_message_history_pages_with_a_cursor(browsers: Browsers, tenant: TenantPeople, desk: Desk) -> None:
    conversation = await desk.conversation()
    quiet = await desk.conversation()
    start = datetime.now(UTC) - timedelta(hours=1)
    made = await desk.messages(conversation, 23, start=start)
    (agent,) = await _sign_in(browsers, tenant.agent)

    seen: list[dict[str, Any]] = []
    pages = []
    query = "limit=10"
    while True:
        answer = await agent.get(_url(conversation, f"messages?{query}"))
        assert answer.status == 200, answer.body
        seen += answer.data["items"]
        pages.append(answer.body["pagination"])
        cursor = answer.data["next_cursor"]
        if cursor is None:
            break
        query = f"limit=10&before={cursor}"
    assert pages == [
        {"page": 1, "limit": 10, "total": 23, "hasNext": True},
        {"page": 2, "limit": 10, "total": 23, "hasNext": True},
        {"page": 3, "limit": 10, "total": 23, "hasNext": False},
    ]
    # Every message once, newest first; messages sharing a timestamp come in id order.
    order = sorted(zip(made, range(len(made)), strict=True), key=lambda m: (m[1] // 3, str(m[0])), reverse=True)
    assert [m["id"] for m in seen] == [str(message_id) for message_id, _ in order]
    assert set(seen[0]) == {
        "id", "conversation_id", "direction", "kind", "text", "media", "status", "error", "author_id", "details",
        "wa_message_id", "reply_to_wa_message_id", "sent_at", "created_at", "edited_at", "revoked_at", "reactions",
        "revisions",
    }  # fmt: skip
    assert "raw webhook" not in str(seen)

    empty = await agent.get(_url(quiet, "messages"))
    assert (empty.data, empty.body["pagination"]["hasNext"]) == ({"items": [], "next_cursor": None}, False)
    # Cursors whose time overflows once converted to UTC (year 1 at +14:00, year 9999 at -14:00).
    extremes = [
        base64.urlsafe_b64encode(f"{when}|{uuid.uuid4()}".encode()).decode().rstrip("=")
        for when in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
    ]
    bad_queries = ["before=bm90IGEgY3Vyc29y", "before=%21%21", "limit=101", "limit=0", "page=2", "after=x"]
    for query in [*bad_queries, *(f"before={cursor}" for cursor in extremes)]:
        answer = await agent.get(_url(conversation, f"messages?{query}"))
        assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), query
        assert answer.body["error"]["details"][0]["field"].startswith("query."), query
