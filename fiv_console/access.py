"""Who may see what: the one rule of sight, in the three forms the code asks it.

Staff (admins and supervisors) see the whole tenant. An agent sees the conversations assigned to them (in
any status, closed ones included) and the waiting conversations of the queues they are a member of;
anything else is "not found" to them, exactly like another tenant's id. An API token belongs to no person:
with the agent role it serves no queue and owns no conversation, so it sees nothing, never everything.

The rule is asked three ways, and they must agree (`tests/test_access.py` checks every role and state):

- in SQL, when a request reads or changes a conversation: `VISIBLE_CONVERSATION_SQL`;
- when a change is written to the event log: `conversation_audience`, who follows the conversation now;
- when an event is sent to a socket: `Audience.reaches`, whether that socket's person is in the audience.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from fiv_console.accounts.users import Role

STAFF_ROLES: frozenset[Role] = frozenset({"admin", "supervisor"})


def sees_all(role: Role) -> bool:
    """Whether this role sees the whole tenant (staff do; an agent sees what they serve)."""
    return role in STAFF_ROLES


@dataclass(frozen=True, slots=True)
class Sight:
    """Whose view a read takes: the whole tenant (staff) or what one agent serves (`agent_id`; None for an
    agent API token, which serves nothing)."""

    whole_tenant: bool
    agent_id: UUID | None = None

    def params(self) -> tuple[bool, UUID | None]:
        """The parameters $1 and $2 of `VISIBLE_CONVERSATION_SQL` (and of the reads built like it)."""
        return self.whole_tenant, self.agent_id


WHOLE_TENANT = Sight(whole_tenant=True)


def sight_of(role: Role, user_id: UUID | None) -> Sight:
    return WHOLE_TENANT if sees_all(role) else Sight(whole_tenant=False, agent_id=user_id)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks: their tenant, role and user id (None for an API token, which owns no conversation)."""

    tenant_id: UUID
    role: Role
    user_id: UUID | None

    @property
    def sees_all(self) -> bool:
        return sees_all(self.role)

    @property
    def sight(self) -> Sight:
        return sight_of(self.role, self.user_id)


# $1: the viewer sees the whole tenant (staff); $2: the agent's user id (null for an API token). Every
# statement that names a conversation through this condition takes these two parameters first.
VISIBLE_CONVERSATION_SQL = """(
    $1::boolean
    or c.agent_id = $2::uuid
    or (c.status = 'waiting' and exists (
        select 1 from queue_members m
        where m.tenant_id = c.tenant_id and m.queue_id = c.queue_id and m.user_id = $2::uuid))
)"""


AudienceKind = Literal["tenant", "supervisors", "members"]


@dataclass(frozen=True, slots=True)
class Audience:
    """Who may receive an event. Supervisors and admins receive every event of their tenant; agents receive
    `tenant` events, and `members` events naming them or a queue they are a member of when it is sent."""

    kind: AudienceKind
    queue_ids: tuple[UUID, ...] = ()
    user_ids: tuple[UUID, ...] = ()

    @classmethod
    def everyone(cls) -> Audience:
        return cls("tenant")

    @classmethod
    def supervisors(cls) -> Audience:
        return cls("supervisors")

    @classmethod
    def queue(cls, queue_id: UUID) -> Audience:
        return cls("members", queue_ids=(queue_id,))

    @classmethod
    def agent(cls, agent_id: UUID) -> Audience:
        return cls("members", user_ids=(agent_id,))

    @classmethod
    def members(cls, *, queue_ids: Iterable[UUID | None] = (), user_ids: Iterable[UUID | None] = ()) -> Audience:
        """The members of these queues and these people (None and repeats left out)."""
        return cls(
            "members",
            queue_ids=tuple(dict.fromkeys(q for q in queue_ids if q is not None)),
            user_ids=tuple(dict.fromkeys(u for u in user_ids if u is not None)),
        )

    def reaches(self, *, role: Role, user_id: UUID | None, queue_ids: AbstractSet[UUID]) -> bool:
        """Whether a person of this role, serving these queues, is in the audience (asked when the event is
        sent, not before: memberships change)."""
        if sees_all(role) or self.kind == "tenant":
            return True
        if self.kind == "supervisors" or user_id is None:
            return False
        return user_id in self.user_ids or any(q in queue_ids for q in self.queue_ids)


def conversation_audience(*, queue_id: UUID, agent_id: UUID | None, status: str) -> Audience:
    """Who follows a conversation as it now is: its agent once it has one (closed ones stay theirs), the
    agents of the queue it waits in, or, closed while it waited, nobody but supervisors and admins."""
    if agent_id is not None:
        return Audience.agent(agent_id)
    if status == "waiting":
        return Audience.queue(queue_id)
    return Audience.supervisors()
