"""Agents' presence: the status they choose (online, away, offline) and whether they are connected.

The two are apart on purpose: an agent may be "online" with their laptop asleep. Connected means a live
console socket on some instance: each instance keeps a row per agent it serves (`agent_connections`) and
refreshes its `seen_at` while the agent has sockets there. A row not refreshed within the grace period
no longer counts, whether the agent closed their last tab or the instance died, so a crashed instance
strands nobody: `CONNECTED_SQL` says so at the moment it is asked.

`users.connected` is what people were last told: the transitions flip it (under the user's row lock, so
two instances report one change once), and each flip or status change is an `agent.presence` event for
the tenant's supervisors and the agent's own tabs, and a row of `agent_presence_log` (the activity
report). Lock order: the user's row, then the event counter (last, as everywhere).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from fiv_console.access import Audience
from fiv_console.accounts.users import _USER_COLUMNS, AgentStatus, User
from fiv_console.db.pool import Connection
from fiv_console.errors import NotFound
from fiv_console.events import EventBatch


def connected_condition(grace: str) -> str:
    """SQL: whether the user `u` has a live socket anywhere; `grace` names the parameter holding the grace
    period. The assignment claim asks it too."""
    return f"""exists (
    select 1 from agent_connections ac
    where ac.tenant_id = u.tenant_id and ac.user_id = u.id and ac.seen_at > now() - {grace}::interval
)"""


CONNECTED_SQL = connected_condition("$1")


def _announce(batch: EventBatch, row: asyncpg.Record) -> None:
    changed_at = row["changed_at"]
    payload: dict[str, Any] = {
        "user_id": row["id"],
        "name": row["name"],
        "role": row["role"],
        "status": row["status"],
        "connected": row["connected"],
        "changed_at": changed_at.isoformat() if changed_at is not None else None,
    }
    batch.add("agent.presence", Audience.agent(row["id"]), conversation_id=None, payload=payload)


_LOG_SQL = """
insert into agent_presence_log (tenant_id, user_id, status, connected, changed_at) values ($1, $2, $3, $4, $5)
"""


async def _record(conn: Connection, batch: EventBatch, rows: list[asyncpg.Record]) -> None:
    if rows:
        await conn.executemany(
            _LOG_SQL, [(batch.tenant_id, r["id"], r["status"], r["connected"], r["changed_at"]) for r in rows]
        )
    for row in rows:
        _announce(batch, row)


_SET_STATUS_SQL = """
with before as (select id, status from users where id = $1 for no key update)
update users u set status = $2, status_changed_at = now()
from before where u.id = before.id and before.status <> $2
returning u.id, u.name, u.role, u.status, u.connected, u.status_changed_at as changed_at
"""
_USER_SQL = f"select {_USER_COLUMNS} from users where id = $1"


async def set_status(conn: Connection, batch: EventBatch, *, user_id: UUID, status: AgentStatus) -> User:
    """The agent's choice; a change is announced and recorded, choosing the same again is nothing."""
    changed = await conn.fetchrow(_SET_STATUS_SQL, user_id, status)
    if changed is not None:
        await _record(conn, batch, [changed])
    row = await conn.fetchrow(_USER_SQL, user_id)
    if row is None:
        raise NotFound("no such user")
    return User.model_validate(dict(row))


_OPEN_SQL = """
insert into agent_connections as ac (tenant_id, user_id, instance_id, sockets, seen_at)
values ($1, $2, $3, 1, now())
on conflict (tenant_id, user_id, instance_id) do update set sockets = ac.sockets + 1, seen_at = now()
"""
_MARK_CONNECTED_SQL = """
update users set connected = true, connected_changed_at = now()
where id = $1 and not connected
returning id, name, role, status, connected, connected_changed_at as changed_at
"""


async def socket_opened(conn: Connection, batch: EventBatch, *, user_id: UUID, instance_id: UUID) -> None:
    """A socket of the user's opened on this instance: they are connected (announced if they were not)."""
    await conn.execute(_OPEN_SQL, batch.tenant_id, user_id, instance_id)
    await _record(conn, batch, list(await conn.fetch(_MARK_CONNECTED_SQL, user_id)))


_CLOSE_SQL = """
update agent_connections set sockets = greatest(sockets - 1, 0), seen_at = now()
where user_id = $1 and instance_id = $2
"""


async def socket_closed(conn: Connection, *, user_id: UUID, instance_id: UUID) -> None:
    """A socket closed. The user stays connected for the grace period; `sweep` reports them gone after."""
    await conn.execute(_CLOSE_SQL, user_id, instance_id)


# Upserted, not just updated: a lease another instance forgot while this one could not reach the database
# (it looked dead) comes back with the true count of sockets.
_REFRESH_SQL = """
insert into agent_connections as ac (tenant_id, user_id, instance_id, sockets, seen_at)
select $1, s.user_id, $2, s.sockets, now() from unnest($3::uuid[], $4::int[]) as s(user_id, sockets)
on conflict (tenant_id, user_id, instance_id) do update set sockets = excluded.sockets, seen_at = now()
"""
_MARK_ALL_CONNECTED_SQL = """
update users set connected = true, connected_changed_at = now()
where id = any($1::uuid[]) and not connected
returning id, name, role, status, connected, connected_changed_at as changed_at
"""


async def refresh(conn: Connection, batch: EventBatch, *, instance_id: UUID, sockets: dict[UUID, int]) -> None:
    """This instance serves these users with this many sockets each: their leases run on (and anyone shown
    as gone meanwhile is connected again)."""
    await conn.execute(_REFRESH_SQL, batch.tenant_id, instance_id, list(sockets), list(sockets.values()))
    await _record(conn, batch, list(await conn.fetch(_MARK_ALL_CONNECTED_SQL, list(sockets))))


# The departure is dated when the grace ran out after the agent was last seen, not when it was noticed: an
# instance that noticed late (or a tenant nobody watched for a while) must not stretch the connected time.
_SWEEP_SQL = f"""
update users u set connected = false, connected_changed_at = least(now(), coalesce((
    select max(ac.seen_at) from agent_connections ac where ac.tenant_id = u.tenant_id and ac.user_id = u.id
) + $1::interval, now()))
where u.connected and not {CONNECTED_SQL}
returning u.id, u.name, u.role, u.status, u.connected, u.connected_changed_at as changed_at
"""
# Rows that no longer count and will not be refreshed: a closed last socket, or a dead instance's.
_FORGET_SQL = "delete from agent_connections where seen_at < now() - $1::interval"


async def sweep(conn: Connection, batch: EventBatch, *, grace: timedelta) -> None:
    """Announces the agents whose grace period has run out since they were last seen connected."""
    lapsed = list(await conn.fetch(_SWEEP_SQL, grace))
    await _record(conn, batch, lapsed)
    await conn.execute(_FORGET_SQL, grace * 2)
