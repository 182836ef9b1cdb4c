"""The rule of sight asked its three ways agrees with itself, for every role and every state.

A conversation shown by the REST API (`VISIBLE_CONVERSATION_SQL`) but whose events never reach the
person, or the other way round, is a console that lies: a list that does not move, or live events about
a conversation the person cannot open. So for every kind of viewer and every state a conversation can
be in, the SQL condition, the audience written with the change (`conversation_audience`), the check when
an event is sent (`Audience.reaches`, through a real socket) and the feed's index that picks the sockets
must all say the same.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from aiohttp import web

from fiv_console import access
from fiv_console.access import VISIBLE_CONVERSATION_SQL, Viewer, conversation_audience
from fiv_console.accounts.users import ROLES, Role
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.realtime.feed import TenantFeed
from fiv_console.realtime.socket import AgentSocket
from fiv_console.routing import queues
from tests.api import TenantPeople
from tests.assigning import channel

_VISIBLE_SQL = f"select exists (select 1 from conversations c where c.id = $3 and {VISIBLE_CONVERSATION_SQL})"


@dataclass(frozen=True)
class Case:
    name: str
    role: Role
    user_id: uuid.UUID | None


def _viewers(tenant: TenantPeople) -> list[Case]:
    return [
        Case("admin", "admin", tenant.admin.id),
        Case("supervisor", "supervisor", tenant.supervisor.id),
        Case("agent of the queue", "agent", tenant.agent.id),
        Case("agent of another queue", "agent", tenant.other_agent.id),
        Case("admin API token", "admin", None),
        Case("supervisor API token", "supervisor", None),
        Case("agent API token", "agent", None),
    ]


async def _conversations(db: Database, tenant: TenantPeople) -> dict[str, uuid.UUID]:
    """One conversation in each state, in the tenant's queue and in another one."""
    channel_id = await channel(db, tenant)
    made: dict[str, uuid.UUID] = {}
    async with tenant_tx(db, tenant.id) as conn:
        other_queue = await queues.create_queue(
            conn, tenant_id=tenant.id, data=queues.QueueCreate(name=f"Other {uuid.uuid4().hex[:4]}")
        )
        await queues.add_member(conn, tenant_id=tenant.id, queue_id=other_queue.id, user_id=tenant.other_agent.id)
        states: list[tuple[str, uuid.UUID, str, uuid.UUID | None]] = [
            ("waiting in the queue", tenant.queue_id, "waiting", None),
            ("waiting in the other queue", other_queue.id, "waiting", None),
            ("assigned to the agent", tenant.queue_id, "assigned", tenant.agent.id),
            ("assigned to the other agent", tenant.queue_id, "assigned", tenant.other_agent.id),
            ("assigned to the agent from the other queue", other_queue.id, "assigned", tenant.agent.id),
            ("closed by the agent", tenant.queue_id, "closed", tenant.agent.id),
            ("closed while waiting in the queue", tenant.queue_id, "closed", None),
        ]
        for name, queue_id, status, agent_id in states:
            contact = await conn.fetchval(
                "insert into contacts (tenant_id, wa_id) values ($1, $2) returning id",
                tenant.id,
                f"55{uuid.uuid4().int % 10**11:011d}",
            )
            made[name] = await conn.fetchval(
                "insert into conversations (tenant_id, channel_id, contact_id, queue_id, status, agent_id, "
                "assigned_at, closed_at) values ($1, $2, $3, $4, $5, $6, "
                "case when $6::uuid is not null then now() end, case when $5 = 'closed' then now() end) returning id",
                tenant.id,
                channel_id,
                contact,
                queue_id,
                status,
                agent_id,
            )
    return made


def _socket(tenant_id: uuid.UUID, case: Case, queue_ids: frozenset[uuid.UUID]) -> AgentSocket:
    """A socket as the hub holds one (a token has no socket: its user id stands in, and owns nothing)."""
    return AgentSocket(
        web.WebSocketResponse(),
        None,
        tenant_id=tenant_id,
        user_id=case.user_id or uuid.uuid4(),
        role=case.role,
        name=case.name,
        session_version=1,
        queue_ids=queue_ids,
        queue_limit=10,
        expires_at=0.0,
    )


async def test_the_sql_the_audience_and_the_sockets_agree_for_every_role_and_state(
    db: Database, tenant: TenantPeople
) -> None:
    made = await _conversations(db, tenant)
    seen: dict[tuple[str, str], bool] = {}
    for case in _viewers(tenant):
        viewer = Viewer(tenant_id=tenant.id, role=case.role, user_id=case.user_id)
        async with tenant_tx(db, tenant.id) as conn:
            member_of = (
                await queues.member_queue_ids(conn, user_id=case.user_id) if case.user_id else frozenset[uuid.UUID]()
            )
            rows = {
                name: await conn.fetchrow("select queue_id, agent_id, status from conversations where id = $1", id_)
                for name, id_ in made.items()
            }
            visible = {
                name: await conn.fetchval(_VISIBLE_SQL, *viewer.sight.params(), id_) for name, id_ in made.items()
            }
        socket = _socket(tenant.id, case, member_of)
        feed = TenantFeed(tenant.id, db)
        feed.add(socket)
        for name, row in rows.items():
            audience = conversation_audience(queue_id=row["queue_id"], agent_id=row["agent_id"], status=row["status"])
            reaches = audience.reaches(role=case.role, user_id=case.user_id, queue_ids=member_of)
            assert visible[name] == reaches, (case.name, name, "SQL against the audience")
            if case.user_id is not None:  # tokens hold no socket
                assert socket.sees(audience) == reaches, (case.name, name, "the socket's check")
                assert (socket in set(feed.targets(audience))) == reaches, (case.name, name, "the feed's index")
            seen[(case.name, name)] = visible[name]

    # And the rule itself, so that agreeing on something wrong does not pass.
    staff = {"admin", "supervisor", "admin API token", "supervisor API token"}
    for (viewer_name, name), sees in seen.items():
        expected = viewer_name in staff or (viewer_name, name) in {
            ("agent of the queue", "waiting in the queue"),
            ("agent of the queue", "assigned to the agent"),
            ("agent of the queue", "assigned to the agent from the other queue"),
            ("agent of the queue", "closed by the agent"),
            ("agent of another queue", "waiting in the other queue"),
            ("agent of another queue", "assigned to the other agent"),
        }
        assert sees == expected, (viewer_name, name)


@pytest.mark.parametrize("role", ROLES)
def test_staff_see_everything_is_one_rule(role: Role) -> None:
    user_id = uuid.uuid4()
    expected = role in {"admin", "supervisor"}
    viewer = Viewer(tenant_id=uuid.uuid4(), role=role, user_id=user_id)
    socket = _socket(uuid.uuid4(), Case(role, role, user_id), frozenset())
    assert access.sees_all(role) is expected
    assert viewer.sees_all is expected
    assert access.sight_of(role, user_id).whole_tenant is expected
    assert socket.sees_all is expected
