"""Where a conversation can be handed over to: the people and queues the transfer dialog offers.

The same rules as the moves themselves (`lifecycle`): an agent hands over only to a fellow agent of the
conversation's queue, supervisors and admins to any enabled person; anybody to an active queue. Each person
comes with what a good choice needs (status, connected, open conversations against capacity), so nobody
transfers to an agent who is offline or full without seeing it.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Viewer, sees_all
from fiv_console.accounts.users import AgentStatus, Role
from fiv_console.db.pool import Connection
from fiv_console.errors import NotFound


class TargetAgent(BaseModel):
    id: UUID
    name: str
    role: Role
    status: AgentStatus
    connected: bool
    open_conversations: int
    capacity: int


class TargetQueue(BaseModel):
    id: UUID
    name: str
    waiting: int


class TransferTargets(BaseModel):
    agents: list[TargetAgent]
    queues: list[TargetQueue]


_QUEUE_OF_SQL = f"select c.queue_id from conversations c where c.id = $3 and {VISIBLE_CONVERSATION_SQL}"
# $1: the conversation's queue; $2: true when anyone enabled may be chosen (staff), else its agents only;
# $3: the viewer, never offered to themselves.
_AGENTS_SQL = """
select u.id, u.name, u.role, u.status, u.connected,
       coalesce(m.max_concurrent_override, u.max_concurrent) as capacity,
       (select count(*) from conversations o where o.agent_id = u.id and o.status = 'assigned') as open_conversations
from users u
left join queue_members m on m.tenant_id = u.tenant_id and m.queue_id = $1 and m.user_id = u.id
where not u.disabled and u.id is distinct from $3
  and ($2 or (u.role = 'agent' and m.user_id is not null))
order by u.name, u.id
"""
_QUEUES_SQL = """
select q.id, q.name,
       (select count(*) from conversations w where w.queue_id = q.id and w.status = 'waiting') as waiting
from queues q
where q.active
order by q.priority desc, q.name, q.id
"""


async def transfer_targets(conn: Connection, *, viewer: Viewer, conversation_id: UUID) -> TransferTargets:
    """Who and where the viewer may hand this conversation to; NotFound when it is out of their sight."""
    queue_id = await conn.fetchval(_QUEUE_OF_SQL, *viewer.sight.params(), conversation_id)
    if queue_id is None:
        raise NotFound("no such conversation")
    agents = await conn.fetch(_AGENTS_SQL, queue_id, sees_all(viewer.role), viewer.user_id)
    queues = await conn.fetch(_QUEUES_SQL)
    return TransferTargets(
        agents=[TargetAgent.model_validate(dict(row)) for row in agents],
        queues=[TargetQueue.model_validate(dict(row)) for row in queues],
    )
