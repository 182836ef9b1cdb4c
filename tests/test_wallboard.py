"""The wallboard's API and pushes: who may see it, a board whole and then its changes adding up to a fresh
board, at most one push a second under a burst with the last state always arriving, supervisors setting
an agent's status (audited, live, within the tenant), and whispers reaching the conversation's agent only."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from fiv_console.db.pool import Database, tenant_tx
from tests.api import Browsers, TenantPeople
from tests.assigning import channel, conversations_waiting
from tests.sockets import Console, open_console


async def _board_frames(console: Console, seconds: float) -> list[tuple[float, dict[str, Any]]]:
    """The `queue.stats` frames that arrive within `seconds`, with when each arrived."""
    loop = asyncio.get_running_loop()
    frames: list[tuple[float, dict[str, Any]]] = []
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            frame = await console.frame(within=left)
        except TimeoutError:
            break
        if frame["type"] == "queue.stats":
            frames.append((loop.time(), frame["data"]))
    return frames


def _held(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """What a viewer holds after these frames: the whole board, then each change's rows replaced."""
    queues: dict[str, Any] = {}
    agents: dict[str, Any] = {}
    for data in frames:
        if data["full"]:
            queues, agents = {}, {}
        queues.update({q["queue_id"]: q for q in data["queues"]})
        agents.update({a["user_id"]: a for a in data["agents"]})
    return {"queues": list(queues.values()), "agents": list(agents.values())}


async def test_agents_are_refused_the_board_and_staff_get_it(browsers: Browsers, tenant: TenantPeople) -> None:
    agent = await browsers.signed_in(tenant.agent)
    assert (await agent.get("/api/wallboard")).status == 403
    assert (await agent.client.get("/wallboard", allow_redirects=False)).status == 403
    console = await open_console(agent)
    await console.send({"type": "wallboard"})
    refused = await console.reply()
    assert refused["type"] == "error"
    assert refused["error"]["code"] == "FORBIDDEN"
    assert await _board_frames(console, 1.2) == []
    for person in (tenant.supervisor, tenant.admin):
        staff = await browsers.signed_in(person)
        answer = await staff.get("/api/wallboard")
        assert answer.status == 200
        assert [q["queue_id"] for q in answer.data["queues"]] == [str(tenant.queue_id)]
        assert {a["user_id"] for a in answer.data["agents"]} == {str(tenant.agent.id), str(tenant.other_agent.id)}
        assert answer.data["server_ms"] >= 0
        assert (await staff.client.get("/wallboard", allow_redirects=False)).status == 200


async def test_a_burst_is_pushed_at_most_once_a_second_and_adds_up_to_a_fresh_board(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    made = await conversations_waiting(db, tenant, await channel(db, tenant), 6)
    supervisor = await browsers.signed_in(tenant.supervisor)
    admin = await browsers.signed_in(tenant.admin)
    console = await open_console(supervisor)
    await console.send({"type": "wallboard"})
    first = await _board_frames(console, 1.5)
    assert first
    assert first[0][1]["full"]
    [queue] = first[0][1]["queues"]
    assert queue["waiting"] == 6

    async def burst() -> int:
        changes = 0
        for _ in range(3):
            for conversation_id in made:
                await admin.post(
                    f"/api/conversations/{conversation_id}/assign", {"agent_id": str(tenant.agent.id), "force": True}
                )
                await admin.post(f"/api/conversations/{conversation_id}/close", {"reason": "done"})
                await admin.post(f"/api/conversations/{conversation_id}/reopen")
                changes += 3
        for conversation_id in made[:4]:
            await admin.post(
                f"/api/conversations/{conversation_id}/assign", {"agent_id": str(tenant.agent.id), "force": True}
            )
            changes += 1
        return changes

    loop = asyncio.get_running_loop()
    started = loop.time()
    changes, pushed = await asyncio.gather(burst(), _board_frames(console, 5.0))
    took = loop.time() - started
    pushed += await _board_frames(console, 1.5)  # the last changes' push, if the burst ended within its second
    assert 1 <= len(pushed) < changes
    assert len(pushed) <= took + 3
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(pushed)]
    assert all(gap > 0.8 for gap in gaps), gaps  # a second between reads; sending takes a moment of it
    assert not any(data["full"] for _, data in pushed)

    held = _held([first[0][1]] + [data for _, data in pushed])
    fresh = (await supervisor.get("/api/wallboard")).data
    assert held == {"queues": fresh["queues"], "agents": fresh["agents"]}
    [queue] = fresh["queues"]
    assert (queue["waiting"], queue["in_progress"], queue["closed_today"], queue["answered_today"]) == (2, 4, 18, 22)
    agent = next(a for a in fresh["agents"] if a["user_id"] == str(tenant.agent.id))
    assert (agent["open"], agent["handled_today"]) == (4, 18)

    # A second viewer starts from the board as last pushed: the same rows, whole.
    other = await open_console(await browsers.signed_in(tenant.admin))
    await other.send({"type": "wallboard"})
    [(_, whole)] = await _board_frames(other, 0.5)
    assert whole["full"]
    assert _held([whole]) == held


async def test_a_supervisor_sets_an_agents_status_audited_and_live(
    browsers: Browsers, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    supervisor = await browsers.signed_in(tenant.supervisor)
    agent = await browsers.signed_in(tenant.agent)
    agent_console = await open_console(agent)
    connected = await agent_console.presence_of(tenant.agent.id)  # their own socket connecting
    assert connected["data"]["status"] == "offline"
    answer = await supervisor.put(f"/api/agents/{tenant.agent.id}/status", {"status": "away"})
    assert answer.status == 200
    assert answer.data["status"] == "away"
    event = await agent_console.presence_of(tenant.agent.id)
    assert event["data"]["status"] == "away"
    assert (await agent.get("/api/agents/me/status")).data["status"] == "away"
    # Setting it again changes nothing and audits nothing; their own later choice wins.
    assert (await supervisor.put(f"/api/agents/{tenant.agent.id}/status", {"status": "away"})).status == 200
    assert (await agent.put("/api/agents/me/status", {"status": "online"})).data["status"] == "online"
    async with tenant_tx(db, tenant.id) as conn:
        audited = await conn.fetch(
            "select actor_id, target_id, details from audit_log where action = 'agent.status_set'"
        )
    assert [(r["actor_id"], r["target_id"], r["details"]) for r in audited] == [
        (tenant.supervisor.id, str(tenant.agent.id), {"from": "offline", "to": "away"})
    ]
    assert (await agent.put(f"/api/agents/{tenant.other_agent.id}/status", {"status": "away"})).status == 403
    assert (await supervisor.put(f"/api/agents/{other_tenant.agent.id}/status", {"status": "away"})).status == 404
    assert (await supervisor.put(f"/api/agents/{tenant.agent.id}/status", {"status": "busy"})).status == 400


async def test_a_whisper_reaches_the_conversations_agent_only(
    browsers: Browsers, db: Database, tenant: TenantPeople
) -> None:
    [conversation_id] = await conversations_waiting(db, tenant, await channel(db, tenant), 1)
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "insert into queue_members (tenant_id, queue_id, user_id) values ($1, $2, $3)",
            tenant.id,
            tenant.queue_id,
            tenant.other_agent.id,
        )
    supervisor = await browsers.signed_in(tenant.supervisor)
    agent = await browsers.signed_in(tenant.agent)
    path = f"/api/conversations/{conversation_id}/notes"
    assert (await supervisor.post(path, {"body": "psst", "whisper": True})).code == "CONFLICT"  # nobody holds it
    assert (
        await supervisor.post(f"/api/conversations/{conversation_id}/assign", {"agent_id": str(tenant.agent.id)})
    ).status == 200
    agent_console = await open_console(agent)
    colleague = await open_console(await browsers.signed_in(tenant.other_agent))
    assert (await agent.post(path, {"body": "psst", "whisper": True})).status == 403
    answer = await supervisor.post(path, {"body": "Offer the refund", "whisper": True})
    assert answer.status == 201
    assert answer.data["whisper"] is True
    heard = await agent_console.event("note.created")
    assert heard["data"]["note"]["body"] == "Offer the refund"
    assert heard["data"]["note"]["whisper"] is True
    assert [f for f in await colleague.quiet(0.5) if f.get("event") == "note.created"] == []
    listed = (await agent.get(path)).data
    assert [(n["body"], n["whisper"]) for n in listed] == [("Offer the refund", True)]
