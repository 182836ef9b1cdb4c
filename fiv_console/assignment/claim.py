"""A claim: one short transaction in one tenant that assigns waiting conversations to available agents.

0. claims in one tenant take turns (a transaction-level advisory lock on the tenant), so each sees the
   assignments of the one before and the oldest waiting conversation goes first whichever instance claims;
1. the oldest waiting conversations of the highest priority are locked `FOR NO KEY UPDATE SKIP LOCKED`;
   one at the head of the line that another transaction holds for a moment (a follow-up message being
   stored, a receipt, a note) is waited for, briefly, rather than passed over; one a person is moving is
   theirs;
2. the agents who may take them (members of those queues, `online`, connected within the grace period,
   enabled, role agent) are locked in id order, waiting for any a manual move holds;
3. under those locks their open conversations are counted, so capacity is checked against every
   assignment committed before; the pure policy (`assignment.policy`) chooses. Only the agents the
   wallboard's counters show with room are locked: the others are full;
4. the assignments are written, and their `conversation.assigned` events appended last (`events.changing`).

Past the turn, lock order is the manual moves' (conversation, then user, then the event counter), and moves
never take the turn, so claims and moves never deadlock; no network I/O happens inside. Any number of
instances may claim at once: two can never own one conversation, nor push an agent over capacity.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal
from uuid import UUID

import asyncpg

from fiv_console.accounts.tenants import TenantSettings
from fiv_console.assignment.policy import Candidate, Waiting, plan
from fiv_console.assignment.presence import connected_condition
from fiv_console.conversations import lifecycle as conversations
from fiv_console.conversations import reading
from fiv_console.conversations.lifecycle import Moved
from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch

DEFAULT_SETTINGS = TenantSettings()

# Without turns, concurrent claims would each lock a different slice of the line (SKIP LOCKED) and the one
# that reached the agents first would give away younger conversations while older ones wait in another's
# slice. Claims of one tenant contend for its agents' rows anyway, so taking turns costs them little. A
# transaction lock: a claim that dies releases it with its connection, no lease or epoch to manage.
_TAKE_TURN_SQL = "select pg_advisory_xact_lock(hashtextextended('assignment-claim:' || $1::uuid::text, 0))"
# $1: the presence grace period. Their open conversations as the wallboard's counters have them
# (`assignment.counters`: no conversation counted): enough to choose whom to lock, as the count is taken
# again under the locks.
_CANDIDATES_SQL = f"""
select u.id, u.max_concurrent, u.last_assigned_at, m.queue_id, m.max_concurrent_override,
       coalesce(o.open, 0) as open
from users u
join queue_members m on m.tenant_id = u.tenant_id and m.user_id = u.id
left join (
    select subject_id, sum(value) as open from (
        select subject_id, value from assignment_counters where kind = 'agent_open'
        union all
        select subject_id, delta from assignment_counter_deltas where kind = 'agent_open'
    ) counted
    group by subject_id
) o on o.subject_id = u.id
where u.role = 'agent' and not u.disabled and u.status = 'online' and {connected_condition("$1")}
"""
# Only in queues where someone has room: a queue nobody can serve must not hold the others' turn.
# $3: look up the agent of the customer's last conversation; $4 (risen variant only): every how many seconds
# of waiting the priority rises by one. The priority, risen or not, orders the line and goes to the policy.
# The last agent is looked up for the rows of the line only, after the limit.
_WAITING_SQL = """
select w.id, w.queue_id, w.priority, w.enqueued_at, w.queue_priority, w.passed_over_agent_id,
       last.agent_id as preferred_agent_id
from (
    select c.id, c.tenant_id, c.contact_id, c.queue_id, {priority} as priority, c.enqueued_at,
           q.priority as queue_priority, c.passed_over_agent_id
    from conversations c
    join queues q on q.tenant_id = c.tenant_id and q.id = c.queue_id
    where c.status = 'waiting' and q.active and c.queue_id = any($1::uuid[]) {only}
    order by q.priority desc, {priority} desc, c.enqueued_at, c.id
    limit $2
    {lock}
) w
left join lateral (
    select p.agent_id from conversations p
    where $3::boolean and p.tenant_id = w.tenant_id and p.contact_id = w.contact_id and p.id <> w.id
      and p.agent_id is not null
    order by p.created_at desc
    limit 1
) last on true
"""
_RISEN_PRIORITY = "(c.priority + floor(extract(epoch from now() - c.enqueued_at) / $4::integer)::integer)"
# The line as it stands, locking nothing; the rows of the line it may lock at once; and some rows of it waited
# for (their ids the last parameter). Without a rise, the order is the waiting index's own
# (conversations_waiting_idx), read no further than needed.
_Shape = Literal["head", "line", "held"]
_WAITING_BY_SHAPE_SQL: dict[tuple[bool, _Shape], str] = {
    (risen, shape): _WAITING_SQL.format(
        priority=_RISEN_PRIORITY if risen else "c.priority",
        only=f"and c.id = any(${5 if risen else 4}::uuid[])" if shape == "held" else "",
        lock={"head": "", "line": "for no key update of c skip locked", "held": "for no key update of c"}[shape],
    )
    for risen in (False, True)
    for shape in ("head", "line", "held")
}
# How long a claim waits for a conversation at the head of the line that another transaction holds: those
# transactions take milliseconds; past this, the claim goes on without it (and breaks any wait cycle with a
# transaction that wants a conversation this claim holds, long before deadlock detection would).
HEAD_WAIT = "100ms"
# At most so many passed-over conversations are waited for in one claim.
HEAD_WAIT_ROWS = 10
# Waited for, not skipped: a claim that skipped the agents another holds could assign nothing and stop while
# its own conversations still wait. In id order, so claims never wait on each other in a cycle.
# The conditions again: a row waited for is checked as it is once the lock is granted (gone away, disabled).
_LOCK_AGENTS_SQL = """
select id from users
where id = any($1::uuid[]) and role = 'agent' and not disabled and status = 'online'
order by id
for no key update
"""
_LOAD_SQL = """
select agent_id, count(*) as open from conversations
where status = 'assigned' and agent_id = any($1::uuid[])
group by agent_id
"""
_ASSIGN_SQL = """
update conversations c
set status = 'assigned', agent_id = p.agent_id, assigned_at = now(), passed_over_agent_id = null, updated_at = now()
from unnest($1::uuid[], $2::uuid[]) as p(conversation_id, agent_id)
where c.id = p.conversation_id
"""
_TOUCH_AGENTS_SQL = "update users set last_assigned_at = now() where id = any($1::uuid[])"


def _capacity(candidate: asyncpg.Record) -> int:
    """The agent's capacity in the queue of this row: the queue's override, else their own."""
    return int(candidate["max_concurrent_override"] or candidate["max_concurrent"])


async def take_turn(conn: Connection, tenant_id: UUID) -> None:
    """Waits for the tenant's claim turn, held until the transaction ends. Other work of the loop that locks
    waiting conversations takes it too, so a claim never skips the oldest because the loop itself holds them."""
    await conn.execute(_TAKE_TURN_SQL, tenant_id)


async def _lock_the_line(
    conn: Connection, queue_ids: list[UUID], limit: int, settings: TenantSettings
) -> list[asyncpg.Record]:
    """The first `limit` waiting conversations of the queues, locked: those free at once, and those ahead of
    the last of them that another transaction held, once it lets go (within HEAD_WAIT)."""
    risen = settings.priority_rise_seconds is not None
    parameters = [queue_ids, limit, settings.prefer_last_agent]
    if risen:
        parameters.append(settings.priority_rise_seconds)
    rows = await conn.fetch(_WAITING_BY_SHAPE_SQL[risen, "line"], *parameters)
    taken = {r["id"] for r in rows}
    head = [r["id"] for r in await conn.fetch(_WAITING_BY_SHAPE_SQL[risen, "head"], *parameters)]
    # Passed over: in the line ahead of the last one locked (or anywhere, if none could be).
    last = max((head.index(i) for i in taken if i in head), default=len(head) - 1)
    passed = [i for i in head[: last + 1] if i not in taken][:HEAD_WAIT_ROWS]
    if not passed:
        return rows
    previous = await conn.fetchval("select current_setting('lock_timeout')")
    try:
        async with conn.transaction():  # a savepoint: a wait that times out takes only itself back
            await conn.execute("select set_config('lock_timeout', $1, true)", HEAD_WAIT)
            rows += await conn.fetch(_WAITING_BY_SHAPE_SQL[risen, "held"], *parameters, passed)
    except asyncpg.LockNotAvailableError:
        pass  # still held: a person moving it, most likely; the claim goes on without them
    await conn.execute("select set_config('lock_timeout', $1, true)", previous)
    return rows


@dataclass(frozen=True, slots=True)
class Claimed:
    assigned: int
    waiting_seen: int
    # Whether some agent it locked still has room after it: if none, another claim now would find nobody.
    room_left: bool = True


async def claim(
    conn: Connection,
    batch: EventBatch,
    *,
    grace: timedelta,
    limit: int = 100,
    settings: TenantSettings = DEFAULT_SETTINGS,
) -> Claimed:
    """In the tenant's transaction (`events.changing`): assigns what it can of the `limit` first waiting
    conversations of the queues where an available agent has room; their events go to `batch`. The
    tenant's `settings` say whether priorities rise with waiting and returning customers prefer their agent."""
    await take_turn(conn, batch.tenant_id)
    found = await conn.fetch(_CANDIDATES_SQL, grace)
    if not found:
        return Claimed(0, 0)
    # A first look without locks: the queues worth locking conversations in, and the agents worth locking.
    roomy = [r for r in found if r["open"] < _capacity(r)]
    with_room = list({r["queue_id"] for r in roomy})
    rows = await _lock_the_line(conn, with_room, limit, settings) if with_room else []
    if not rows:
        return Claimed(0, 0)
    waiting = [
        Waiting(
            r["id"],
            r["queue_id"],
            r["queue_priority"],
            r["priority"],
            r["enqueued_at"],
            preferred_agent_id=r["preferred_agent_id"],
            passed_over_agent_id=r["passed_over_agent_id"],
        )
        for r in rows
    ]
    queue_ids = {w.queue_id for w in waiting}
    found = [r for r in found if r["queue_id"] in queue_ids]
    # Only agents with room are locked and counted: with hundreds of agents, most are full most of the time.
    # One who freed a place since the first look is served by the round its close wakes.
    wanted = list({r["id"] for r in roomy if r["queue_id"] in queue_ids})
    locked = {r["id"] for r in await conn.fetch(_LOCK_AGENTS_SQL, wanted)}
    load = {r["agent_id"]: int(r["open"]) for r in await conn.fetch(_LOAD_SQL, list(locked))}
    capacities: dict[UUID, dict[UUID, int]] = {}
    last_assigned = {}
    for r in found:
        capacities.setdefault(r["id"], {})[r["queue_id"]] = _capacity(r)
        last_assigned[r["id"]] = r["last_assigned_at"]
    # The others stay in the plan as present but full: the policy may wait for them (a passed-over rule).
    candidates = [
        Candidate(
            agent_id,
            load.get(agent_id, 0) if agent_id in locked else max(capacity.values()),
            capacity,
            last_assigned[agent_id],
        )
        for agent_id, capacity in capacities.items()
    ]
    pairs = plan(waiting, candidates)
    if not pairs:
        return Claimed(0, len(waiting))
    await conn.execute(_ASSIGN_SQL, [c for c, _ in pairs], [a for _, a in pairs])
    await conn.execute(_TOUCH_AGENTS_SQL, list({a for _, a in pairs}))
    by_id = {w.conversation_id: w for w in waiting}
    after = {c.id: c for c in await reading.read_many(conn, [c for c, _ in pairs])}
    # In the policy's order, so the log reads as the line was served.
    for conversation_id, _ in pairs:
        moved = Moved(after[conversation_id], None, by_id[conversation_id].queue_id, "waiting")
        conversations.announce_move(batch, "conversation.assigned", moved)
    given = Counter(agent_id for _, agent_id in pairs)
    room_left = any(
        load.get(c.agent_id, 0) + given[c.agent_id] < max(c.capacity.values())
        for c in candidates
        if c.agent_id in locked
    )
    return Claimed(len(pairs), len(waiting), room_left)
