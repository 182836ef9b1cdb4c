"""A conversation's moves: assign, transfer (to an agent or a queue), unassign, close, reopen.

Locking: a move locks the conversation row and then, when it gives the conversation to someone, that
person's user row, always in this order, so moves cannot deadlock each other, never give one conversation
two owners and never push an agent over capacity. Whatever else assigns (the assignment loop) must lock in
the same order. The locks are held until the caller's transaction commits, so nothing slow, and no network
I/O, may run between a move and that commit.

The rows are locked `FOR NO KEY UPDATE` rather than `FOR UPDATE`: the two exclude each other and
themselves alike, but the weaker one does not block the key-share locks that inserting a message or a note
takes on its conversation and author, so intake never waits on a manual assignment. A move only ever
touches a conversation the viewer may see (`access.VISIBLE_CONVERSATION_SQL`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, StringConstraints, Tag

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Audience, Viewer
from fiv_console.accounts import tenants
from fiv_console.conversations.notes import NoteBody
from fiv_console.conversations.reading import Conversation, ConversationStatus, read_after_move, read_many
from fiv_console.db.pool import Connection
from fiv_console.errors import Conflict, Forbidden, InvalidInput, NotFound
from fiv_console.events import EventBatch
from fiv_console.text import NO_NUL

CloseReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=NO_NUL)]


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: UUID | None = Field(default=None, description="Whom to give it to; omitted: yourself.")
    force: bool = Field(default=False, description="Supervisors and admins: assign even over capacity.")


class TransferToAgent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: UUID
    note: NoteBody | None = Field(default=None, description="Why; saved as a note on the conversation.")
    force: bool = Field(default=False, description="Supervisors and admins: transfer even over capacity.")


class TransferToQueue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_id: UUID
    note: NoteBody | None = Field(default=None, description="Why; saved as a note on the conversation.")


def _transfer_target(value: Any) -> str | None:
    """Which transfer a body asks for: the one of `agent_id` and `queue_id` it names (None: both or neither)."""
    named = value.model_fields_set if isinstance(value, BaseModel) else value if isinstance(value, dict) else {}
    to_agent, to_queue = "agent_id" in named, "queue_id" in named
    if to_agent == to_queue:
        return None
    return "agent" if to_agent else "queue"


class TransferRequest(
    RootModel[
        Annotated[
            Annotated[TransferToAgent, Tag("agent")] | Annotated[TransferToQueue, Tag("queue")],
            Discriminator(
                _transfer_target,
                custom_error_type="transfer_target",
                custom_error_message="give exactly one of agent_id and queue_id",
            ),
        ]
    ]
):
    """To an agent or to a queue: exactly one of `agent_id` and `queue_id`."""


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: CloseReason


@dataclass(frozen=True, slots=True)
class Moved:
    """A conversation after a move, with where it was before (for the audit log and the event's audience)."""

    conversation: Conversation
    from_agent_id: UUID | None
    from_queue_id: UUID
    from_status: ConversationStatus

    @property
    def audience(self) -> Audience:
        """Whoever followed it before or follows it now: its agents, and its queues' agents while it waits
        there (a waiting conversation that is taken leaves their line; one put back joins it)."""
        after = self.conversation
        return Audience.members(
            queue_ids=[
                self.from_queue_id if self.from_status == "waiting" else None,
                after.queue_id if after.status == "waiting" else None,
            ],
            user_ids=[self.from_agent_id, after.agent_id],
        )


MoveEvent = Literal[
    "conversation.assigned",
    "conversation.transferred",
    "conversation.unassigned",
    "conversation.closed",
    "conversation.reopened",
]


MoveReason = Literal["agent_absent", "unanswered", "inactivity"]


def announce_move(batch: EventBatch, event: MoveEvent, moved: Moved, *, reason: MoveReason | None = None) -> None:
    """The move's event, with the conversation as it now is and where it was before; none if nothing moved
    (assigning a conversation to the agent who has it). `reason` names why the console moved it by itself."""
    after = moved.conversation
    if (after.status, after.agent_id, after.queue_id) == (moved.from_status, moved.from_agent_id, moved.from_queue_id):
        return
    batch.add(
        event,
        moved.audience,
        conversation_id=moved.conversation.id,
        payload={
            "conversation": moved.conversation.model_dump(mode="json"),
            "from": {
                "agent_id": moved.from_agent_id,
                "queue_id": moved.from_queue_id,
                "status": moved.from_status,
            },
            **({"reason": reason} if reason is not None else {}),
        },
    )


async def announce_returned(
    conn: Connection, batch: EventBatch, rows: Sequence[asyncpg.Record], *, reason: MoveReason
) -> None:
    """`conversation.unassigned` for assigned conversations the console itself put back in their queues;
    `rows` say where each was before (`id`, `queue_id`, `agent_id`)."""
    before = {r["id"]: r for r in rows}
    for conversation in await read_many(conn, list(before)):
        row = before[conversation.id]
        moved = Moved(conversation, row["agent_id"], row["queue_id"], "assigned")
        announce_move(batch, "conversation.unassigned", moved, reason=reason)


@dataclass(frozen=True, slots=True)
class _Locked:
    id: UUID
    status: ConversationStatus
    queue_id: UUID
    agent_id: UUID | None


async def _moved(conn: Connection, locked: _Locked) -> Moved:
    return Moved(await read_after_move(conn, locked.id), locked.agent_id, locked.queue_id, locked.status)


_LOCK_SQL = f"""
select c.id, c.status, c.queue_id, c.agent_id from conversations c
where c.id = $3 and {VISIBLE_CONVERSATION_SQL}
for no key update of c
"""


# A conversation of one of the agent's queues that another agent now holds: what the agent saw waiting a
# moment ago, so saying it was taken tells them nothing they could not see.
_TAKEN_SQL = """
select 1 from conversations c
where c.id = $2 and c.status = 'assigned' and c.agent_id <> $1
  and exists (select 1 from queue_members m
              where m.tenant_id = c.tenant_id and m.queue_id = c.queue_id and m.user_id = $1)
"""


async def _lock(conn: Connection, viewer: Viewer, conversation_id: UUID) -> _Locked:
    """Lock the conversation's row, if the viewer may see it, and read its state under the lock.

    A lock that had to wait is granted on the row as the other transaction left it, and PostgreSQL checks
    the sight condition again on that row: a waiting conversation another agent has just taken is out of
    the slower agent's sight. They hear that it was taken (409), not "not found", when it is in one of their
    queues; any other conversation out of their sight is "not found", exactly like another tenant's id.
    """
    row = await conn.fetchrow(_LOCK_SQL, *viewer.sight.params(), conversation_id)
    if row is None:
        if viewer.user_id is not None and await conn.fetchval(_TAKEN_SQL, viewer.user_id, conversation_id):
            raise Conflict("another agent has taken this conversation", details={"reason": "taken"})
        raise NotFound("no such conversation")
    return _Locked(row["id"], row["status"], row["queue_id"], row["agent_id"])


_LOCK_ASSIGNEE_SQL = """
select u.disabled, u.role, m.user_id is not null as serves_queue,
       coalesce(m.max_concurrent_override, u.max_concurrent) as capacity
from users u
left join queue_members m on m.tenant_id = u.tenant_id and m.queue_id = $2 and m.user_id = u.id
where u.id = $1
for no key update of u
"""
_LOAD_SQL = "select count(*) from conversations where agent_id = $1 and status = 'assigned'"
_ASSIGN_SQL = """
update conversations
set status = 'assigned', agent_id = $2, assigned_at = now(), passed_over_agent_id = null, updated_at = now()
where id = $1
"""
_TOUCH_ASSIGNEE_SQL = "update users set last_assigned_at = now() where id = $1"


async def _give(
    conn: Connection, conversation: _Locked, *, agent_id: UUID, force: bool, colleagues_only: bool = False
) -> None:
    """Under the conversation's lock: lock the agent's row, check capacity, assign.

    Capacity is the agent's override in the conversation's queue, else their own `max_concurrent`, counted
    over every conversation assigned to them. The count runs after the agent's lock is granted, so it sees
    every assignment committed before, and two assignments to one agent are counted one after the other.
    """
    agent = await conn.fetchrow(_LOCK_ASSIGNEE_SQL, agent_id, conversation.queue_id)
    if agent is None:
        raise NotFound("no such user in this tenant")
    if agent["disabled"]:
        raise Conflict("that user is disabled")
    # An agent hands over only to a fellow agent of the conversation's queue; staff may pick anyone.
    if colleagues_only and (agent["role"] != "agent" or not agent["serves_queue"]):
        raise Conflict("that user is not an agent of this conversation's queue")
    if not force:
        load = int(await conn.fetchval(_LOAD_SQL, agent_id))
        if load >= agent["capacity"]:
            raise Conflict(f"the agent is at capacity ({load} of {agent['capacity']} conversations)")
    await conn.execute(_ASSIGN_SQL, conversation.id, agent_id)
    await conn.execute(_TOUCH_ASSIGNEE_SQL, agent_id)


async def _tenant_settings(conn: Connection, tenant_id: UUID) -> tenants.TenantSettings:
    tenant = await tenants.get_tenant(conn, tenant_id=tenant_id)
    assert tenant is not None, "the caller's tenant exists"
    return tenant.settings


async def assign(
    conn: Connection, *, viewer: Viewer, conversation_id: UUID, agent_id: UUID | None, force: bool
) -> Moved:
    """Give the conversation to `agent_id` (omitted: the viewer).

    Supervisors and admins assign or reassign to any enabled user of the tenant, over capacity with
    `force`. An agent only takes a waiting conversation of their queues for themselves, under capacity, and
    only where the tenant lets agents take waiting conversations. Of agents taking one conversation at
    once, one gets it and the others hear "not found": it has left their sight.

    Locks the conversation and the agent (see the module docstring): no network I/O until commit.
    """
    target = agent_id if agent_id is not None else viewer.user_id
    if target is None:
        raise InvalidInput(
            "an API token must name the agent",
            details=[{"field": "body.agent_id", "message": "required when an API token assigns"}],
        )
    # These refusals do not depend on the conversation, so answering them first reveals nothing about it.
    if not viewer.sees_all:
        if target != viewer.user_id:
            raise Forbidden("agents may take conversations only for themselves")
        if force:
            raise Forbidden("only supervisors and admins may assign over capacity")
        if not (await _tenant_settings(conn, viewer.tenant_id)).agents_can_take_waiting:
            raise Forbidden("in this tenant agents do not take waiting conversations themselves")
    locked = await _lock(conn, viewer, conversation_id)
    if locked.status == "closed":
        raise Conflict("the conversation is closed: reopen it first")
    if locked.status == "assigned" and locked.agent_id == target:
        return await _moved(conn, locked)
    # An agent sees only their own conversations and their queues' waiting ones: past the two checks above,
    # what they have locked is waiting.
    await _give(conn, locked, agent_id=target, force=force)
    return await _moved(conn, locked)


def _check_owner_or_staff(viewer: Viewer, locked: _Locked, action: str) -> None:
    """Supervisors and admins may; an agent only while the conversation is assigned to them."""
    if locked.status == "closed":
        raise Conflict("the conversation is closed")
    if not viewer.sees_all and not (locked.status == "assigned" and locked.agent_id == viewer.user_id):
        raise Forbidden(f"only the agent who has the conversation, or a supervisor, may {action} it")


async def transfer_to_agent(
    conn: Connection, *, viewer: Viewer, conversation_id: UUID, agent_id: UUID, force: bool
) -> Moved:
    """Hand the conversation to another agent (under their capacity unless staff `force` it). An agent may
    hand it only to another agent of its queue; supervisors and admins to anyone enabled.

    Locks the conversation and the agent: no network I/O until commit.
    """
    if force and not viewer.sees_all:
        raise Forbidden("only supervisors and admins may assign over capacity")
    locked = await _lock(conn, viewer, conversation_id)
    _check_owner_or_staff(viewer, locked, "transfer")
    if locked.status == "assigned" and locked.agent_id == agent_id:
        raise Conflict("the conversation is already assigned to that agent")
    await _give(conn, locked, agent_id=agent_id, force=force, colleagues_only=not viewer.sees_all)
    return await _moved(conn, locked)


_QUEUE_ACTIVE_SQL = "select active from queues where id = $1"
# Back in a waiting line, keeping enqueued_at: a transfer or unassign keeps the conversation's place.
_REQUEUE_SQL = """
update conversations
set status = 'waiting', queue_id = $2, agent_id = null, assigned_at = null, updated_at = now(),
    position_replied_at = case when queue_id = $2 then position_replied_at end
where id = $1
"""


async def transfer_to_queue(conn: Connection, *, viewer: Viewer, conversation_id: UUID, queue_id: UUID) -> Moved:
    """Put the conversation in a queue's waiting line at its original place (enqueued_at is kept).

    Locks the conversation: no network I/O until commit.
    """
    locked = await _lock(conn, viewer, conversation_id)
    _check_owner_or_staff(viewer, locked, "transfer")
    active = await conn.fetchval(_QUEUE_ACTIVE_SQL, queue_id)
    if active is None:
        raise NotFound("no such queue in this tenant")
    if not active:
        raise Conflict("that queue is not active")
    if locked.status == "waiting" and locked.queue_id == queue_id:
        raise Conflict("the conversation is already waiting in that queue")
    await conn.execute(_REQUEUE_SQL, conversation_id, queue_id)
    return await _moved(conn, locked)


async def unassign(conn: Connection, *, viewer: Viewer, conversation_id: UUID) -> Moved:
    """Back to its queue's waiting line at its original place (enqueued_at is kept).

    Locks the conversation: no network I/O until commit.
    """
    locked = await _lock(conn, viewer, conversation_id)
    if locked.status != "assigned":
        raise Conflict(f"the conversation is {locked.status}, not assigned")
    await conn.execute(_REQUEUE_SQL, conversation_id, locked.queue_id)
    return await _moved(conn, locked)


_CLOSE_SQL = """
update conversations set status = 'closed', closed_at = now(), close_reason = $2, updated_at = now()
where id = $1
"""


async def close(conn: Connection, *, viewer: Viewer, conversation_id: UUID, reason: str) -> Moved:
    """Close with a reason; the agent stays on it (it remains in their history and sight).

    Locks the conversation: no network I/O until commit.
    """
    locked = await _lock(conn, viewer, conversation_id)
    _check_owner_or_staff(viewer, locked, "close")
    await conn.execute(_CLOSE_SQL, conversation_id, reason)
    return await _moved(conn, locked)


# Reopened, it joins the end of its queue's line: it is new work, not a conversation that kept its place.
_REOPEN_SQL = """
update conversations
set status = 'waiting', agent_id = null, assigned_at = null, closed_at = null, close_reason = null,
    enqueued_at = now(), sla_breached_at = null, passed_over_agent_id = null, out_of_hours_replied_at = null,
    position_replied_at = null, updated_at = now()
where id = $1
"""


async def reopen(conn: Connection, *, viewer: Viewer, conversation_id: UUID) -> Moved:
    """A closed conversation back to waiting in its queue; refused while the contact has another open one
    on the same number (at most one open conversation per contact and number).

    Supervisors and admins may reopen any; an agent sees a closed conversation only if it was theirs, so
    sight alone lets the agent who had it reopen it. Locks the conversation: no network I/O until commit.
    """
    locked = await _lock(conn, viewer, conversation_id)
    if locked.status != "closed":
        raise Conflict(f"the conversation is {locked.status}, not closed")
    try:
        await conn.execute(_REOPEN_SQL, conversation_id)
    except asyncpg.UniqueViolationError:
        raise Conflict("the contact already has another open conversation on this number") from None
    return await _moved(conn, locked)
