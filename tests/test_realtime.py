"""The console socket on one instance: who may open it, what reaches whom, resume, and bad clients.

Everything runs against the real server on a port, its in-process bus, and the real database.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestServer, make_mocked_request

from fiv_console import events
from fiv_console.app import create_app
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.keys import hub_key
from fiv_console.realtime.protocol import SESSION_ENDED_CODE
from fiv_console.web import ws as ws_module
from tests.api import PASSWORD, Api, Browsers, Person, TenantPeople
from tests.conftest import TestDatabase
from tests.sockets import Console, open_console, origin_of
from tests.webhooks import customer_writes, number_of


async def _waiting(
    server: TestServer, people: Browsers, db: Database, tenant: TenantPeople, text: str, *, by: Person | None = None
) -> tuple[Api, dict[str, Any]]:
    """A customer's new conversation waiting in the tenant's queue, and a person (the supervisor unless `by`)
    signed in, who sees it."""
    await customer_writes(server, await number_of(db, tenant), text)
    api = await people.signed_in(by or tenant.supervisor)
    [conversation] = (await api.get("/api/conversations?status=waiting")).data["items"]
    return api, conversation


async def test_hello_names_the_user_and_the_tenant_position(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    agent = await open_console(await live_people.signed_in(tenant.agent))
    data = agent.hello["data"]
    assert data["user"]["id"] == str(tenant.agent.id)
    assert data["user"]["connected"] is True
    assert data["heartbeat"] > 0
    # The first event after hello is the agent's own arrival, which the hello's seq comes just before.
    arrival = await agent.presence_of(tenant.agent.id)
    assert arrival["seq"] == data["last_seq"] + 1
    async with tenant_tx(db, tenant.id) as conn:
        assert await events.last_seq(conn) == arrival["seq"]
    await agent.send({"type": "ping"})
    assert await agent.frame() == {"type": "pong"}


async def test_a_customer_message_reaches_the_queue_agents_and_supervisors_but_no_one_else(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    agent = await open_console(await live_people.signed_in(tenant.agent))
    second_tab = await open_console(await live_people.signed_in(tenant.agent))
    supervisor = await open_console(await live_people.signed_in(tenant.supervisor))
    not_in_queue = await open_console(await live_people.signed_in(tenant.other_agent))
    other_supervisor = await open_console(await live_people.signed_in(other_tenant.supervisor))
    other_admin = await open_console(await live_people.signed_in(other_tenant.admin))

    await customer_writes(live_server, phone_number_id, "hello there")

    for console in (agent, second_tab, supervisor):
        created = await console.event("conversation.created")
        message = await console.event("message.created")
        assert message["seq"] == created["seq"] + 1
        assert message["data"]["message"]["text"] == "hello there"
    for console in (not_in_queue, other_supervisor, other_admin):
        assert await console.quiet_about_conversations(0.5) == []


async def test_an_assignment_reaches_the_queue_the_new_agent_and_supervisors(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    supervisor_api, conversation = await _waiting(live_server, live_people, db, tenant, "please help")
    queue_agent = await open_console(await live_people.signed_in(tenant.agent))
    assignee = await open_console(await live_people.signed_in(tenant.other_agent))
    supervisor = await open_console(supervisor_api)

    answer = await supervisor_api.post(
        f"/api/conversations/{conversation['id']}/assign", {"agent_id": str(tenant.other_agent.id)}
    )
    assert answer.status == 200, answer.body
    for console in (queue_agent, assignee, supervisor):
        assigned = await console.event("conversation.assigned")
        assert assigned["data"]["conversation"]["agent_id"] == str(tenant.other_agent.id)
        assert assigned["data"]["from"]["status"] == "waiting"

    # The queue's agent no longer follows it: a note on it reaches the assignee and supervisors only.
    note = await supervisor_api.post(f"/api/conversations/{conversation['id']}/notes", {"body": "VIP customer"})
    assert note.status == 201, note.body
    assert (await assignee.event("note.created"))["data"]["note"]["body"] == "VIP customer"
    assert (await supervisor.event("note.created"))["data"]["note"]["body"] == "VIP customer"
    assert await queue_agent.quiet_about_conversations(0.5) == []


async def test_leaving_a_queue_stops_its_events_at_once(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    agent = await open_console(await live_people.signed_in(tenant.agent))
    admin = await live_people.signed_in(tenant.admin)
    removed = await admin.delete(f"/api/queues/{tenant.queue_id}/members/{tenant.agent.id}")
    assert removed.status == 200, removed.body
    await asyncio.sleep(0.3)  # the access change travels by bus, like everything else
    await customer_writes(live_server, phone_number_id, "anyone?")
    assert await agent.quiet_about_conversations(0.7) == []

    added = await admin.put(f"/api/queues/{tenant.queue_id}/members/{tenant.agent.id}", {})
    assert added.status == 200, added.body
    await asyncio.sleep(0.3)
    await customer_writes(live_server, phone_number_id, "hello?", customer="5511900000002")
    assert (await agent.event("message.created"))["data"]["message"]["text"] == "hello?"


async def test_resume_replays_exactly_the_missed_events_in_order_then_goes_live(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    api = await live_people.signed_in(tenant.agent)
    first = await open_console(api)
    await customer_writes(live_server, phone_number_id, "one")
    last_seen = (await first.event("message.created"))["seq"]
    await first.close()

    for text in ("two", "three", "four"):
        await customer_writes(live_server, phone_number_id, text)

    again = await open_console(api, resume=last_seen)
    replayed = [await again.event() for _ in range(3)]
    assert [f["data"]["message"]["text"] for f in replayed] == ["two", "three", "four"]
    seqs = [f["seq"] for f in replayed]
    assert seqs == sorted(seqs)
    assert seqs[0] > last_seen
    assert await again.quiet_about_conversations(0.5) == []

    await customer_writes(live_server, phone_number_id, "five")
    live = await again.event("message.created")
    assert live["data"]["message"]["text"] == "five"
    assert live["seq"] > seqs[-1]


async def test_resume_in_the_url_replays_before_anything_live(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    api = await live_people.signed_in(tenant.agent)
    async with tenant_tx(db, tenant.id) as conn:
        start = await events.last_seq(conn)
    await customer_writes(live_server, phone_number_id, "missed")
    console = await open_console(api, last_seq=start)
    assert (await console.event("message.created"))["data"]["message"]["text"] == "missed"


async def test_resume_from_before_retention_answers_resync(
    live_server: TestServer, live_people: Browsers, db: Database, owner: asyncpg.Connection, tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    await customer_writes(live_server, phone_number_id, "old news")
    # Aged as the owner: the server's role may add and prune events, never rewrite them.
    await owner.execute("update events set created_at = now() - interval '8 days' where tenant_id = $1", tenant.id)
    async with tenant_tx(db, tenant.id) as conn:
        assert await events.prune(conn, keep=timedelta(days=7)) >= 2
        position = await events.last_seq(conn)
    console = await open_console(await live_people.signed_in(tenant.agent), resume=0)
    assert await console.reply() == {"type": "resync", "data": {"last_seq": position}}


async def test_a_foreign_or_missing_origin_is_refused_before_the_upgrade(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    api = await live_people.signed_in(tenant.agent)
    for origin in ("https://evil.example", origin_of(api).replace("127.0.0.1", "localhost"), "null"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.client.ws_connect("/ws", origin=origin)
        assert refused.value.status == 403
    response = await api.client.get("/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
    assert response.status == 403


async def test_without_a_session_the_upgrade_is_refused(live_server: TestServer, live_people: Browsers) -> None:
    api = await live_people.new()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect("/ws", origin=origin_of(api))
    assert refused.value.status == 401


@pytest.mark.parametrize(
    ("send", "code"),
    [
        ("x" * 5000, aiohttp.WSCloseCode.MESSAGE_TOO_BIG),
        ("not json", aiohttp.WSCloseCode.UNSUPPORTED_DATA),
        (b"\x00\x01", aiohttp.WSCloseCode.UNSUPPORTED_DATA),
        ('{"type": "subscribe_everything"}', aiohttp.WSCloseCode.POLICY_VIOLATION),
        ("[1, 2]", aiohttp.WSCloseCode.POLICY_VIOLATION),
    ],
)
async def test_bad_frames_close_the_socket_and_the_server_lives_on(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople, send: str | bytes, code: int
) -> None:
    api = await live_people.signed_in(tenant.agent)
    console = await open_console(api)
    if isinstance(send, bytes):
        await console.ws.send_bytes(send)
    else:
        await console.ws.send_str(send)
    assert await console.closed() == code
    again = await open_console(api)
    await again.send({"type": "ping"})
    assert await again.frame() == {"type": "pong"}


async def test_a_known_frame_with_bad_fields_gets_an_error_frame_and_the_socket_stays(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    console = await open_console(await live_people.signed_in(tenant.agent))
    await console.send({"type": "presence", "status": "asleep"})
    error = await console.reply()
    assert error["type"] == "error"
    assert error["error"]["code"] == "VALIDATION_ERROR"
    await console.send({"type": "typing", "conversation_id": str(uuid.uuid4())})
    missing = await console.reply()
    assert missing["type"] == "error"
    assert missing["error"]["code"] == "NOT_FOUND"
    await console.send({"type": "ping"})
    assert await console.reply() == {"type": "pong"}


async def test_a_flood_of_frames_closes_the_socket(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    console = await open_console(await live_people.signed_in(tenant.agent))
    conversation_id = str(uuid.uuid4())
    for _ in range(100):  # one answer only (not found), then throttled: the flood is what closes the socket
        await console.send({"type": "typing", "conversation_id": conversation_id})
    assert await console.closed() == aiohttp.WSCloseCode.POLICY_VIOLATION


async def test_sockets_per_user_are_capped(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    api = await live_people.signed_in(tenant.agent)
    consoles = [await open_console(api) for _ in range(10)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect("/ws", origin=origin_of(api))
    assert refused.value.status == 429
    await consoles[0].close()
    await asyncio.sleep(0.1)
    await open_console(api)


async def test_a_password_change_closes_the_users_open_sockets(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    api = await live_people.signed_in(tenant.agent)
    other_device_api = await live_people.signed_in(tenant.agent)
    other_device = await open_console(other_device_api)
    this_tab = await open_console(api)
    colleague = await open_console(await live_people.signed_in(tenant.other_agent))
    changed = await api.post(
        "/api/me/password", {"current_password": PASSWORD, "new_password": "a brand new long passphrase"}
    )
    assert changed.status == 200, changed.body
    assert await other_device.closed(within=3) == SESSION_ENDED_CODE
    assert await this_tab.closed(within=3) == SESSION_ENDED_CODE
    await colleague.send({"type": "ping"})
    assert await colleague.reply() == {"type": "pong"}
    # The other device's cookie opens nothing any more; the tab that changed it has a new session that does.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await other_device_api.client.ws_connect("/ws", origin=origin_of(other_device_api))
    assert refused.value.status == 401
    await open_console(api)


async def test_presence_changes_reach_supervisors_live(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    supervisor = await open_console(await live_people.signed_in(tenant.supervisor))
    agent_api = await live_people.signed_in(tenant.agent)
    agent = await open_console(agent_api)
    connected = await supervisor.presence_of(tenant.agent.id)
    assert connected["data"]["connected"] is True
    assert connected["data"]["status"] == "offline"

    await agent.send({"type": "presence", "status": "online"})
    assert (await supervisor.presence_of(tenant.agent.id))["data"]["status"] == "online"
    # The agent's own tabs hear it too: their arrival, then their choice.
    own = [(await agent.presence_of(tenant.agent.id))["data"]["status"] for _ in range(2)]
    assert own == ["offline", "online"]

    answer = await agent_api.put("/api/agents/me/status", {"status": "away"})
    assert answer.status == 200, answer.body
    assert (await supervisor.presence_of(tenant.agent.id))["data"]["status"] == "away"

    await agent.close()
    # Not connected once the grace period (1.5 s here) has run out without a socket.
    gone = await supervisor.presence_of(tenant.agent.id, within=6)
    assert gone["data"]["connected"] is False
    assert gone["data"]["status"] == "away"


async def test_typing_reaches_the_other_followers_not_the_typist(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    agent_api, conversation = await _waiting(live_server, live_people, db, tenant, "typing test", by=tenant.agent)
    agent = await open_console(agent_api)
    supervisor = await open_console(await live_people.signed_in(tenant.supervisor))
    outsider = await open_console(await live_people.signed_in(tenant.other_agent))
    await agent.send({"type": "typing", "conversation_id": conversation["id"]})
    typing = await supervisor.reply()
    assert typing == {
        "type": "typing",
        "data": {"conversation_id": conversation["id"], "user_id": str(tenant.agent.id), "name": "Agent"},
    }
    await agent.send({"type": "typing", "conversation_id": conversation["id"]})  # within 2 s: not relayed
    assert [f for f in await supervisor.quiet(0.5) if f["type"] == "typing"] == []
    assert [f for f in await outsider.quiet(0.2) if f["type"] == "typing"] == []
    assert [f for f in await agent.quiet(0.2) if f["type"] == "typing"] == []


async def test_shutdown_closes_sockets_so_clients_reconnect_elsewhere(
    database: TestDatabase, tenant: TenantPeople
) -> None:
    test_server = TestServer(create_app(database.settings()))
    await test_server.start_server()
    browsers = Browsers(test_server)
    try:
        console: Console = await open_console(await browsers.signed_in(tenant.agent))
        assert len(test_server.app[hub_key].sockets_of(tenant.agent.id)) == 1
        closing = asyncio.create_task(console.closed(within=10))
        await test_server.close()
        assert await closing == aiohttp.WSCloseCode.SERVICE_RESTART
    finally:
        await browsers.close()


async def _never_reading_socket(api: Api) -> asyncio.StreamWriter:
    """A `/ws` upgrade over a raw connection with a tiny receive buffer, whose client then reads nothing."""
    url = api.client.make_url("/ws")
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (url.host, url.port))
    reader, writer = await asyncio.open_connection(sock=raw)
    cookies = api.client.session.cookie_jar.filter_cookies(url)
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin_of(api)}\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return writer


async def test_a_client_that_stops_reading_is_disconnected_and_others_keep_up(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    slow = await _never_reading_socket(await live_people.signed_in(tenant.agent))
    reader = await open_console(await live_people.signed_in(tenant.supervisor))
    hub = live_server.app[hub_key]
    assert len(hub.sockets_of(tenant.agent.id)) == 1
    try:
        text = "x" * 4000
        for number in range(200):
            customer = f"55119{number:08d}"
            posted = asyncio.get_running_loop().time()
            await customer_writes(live_server, phone_number_id, f"{number} {text}", customer=customer)
            # The supervisor, who reads, gets each message at once: the stuck socket holds nobody up.
            message = await reader.event("message.created", within=2)
            assert message["data"]["message"]["text"].startswith(f"{number} ")
            assert asyncio.get_running_loop().time() - posted < 2
            if not hub.sockets_of(tenant.agent.id):
                break
        for _ in range(100):
            if not hub.sockets_of(tenant.agent.id):
                break
            await asyncio.sleep(0.05)
        assert hub.sockets_of(tenant.agent.id) == set(), "the socket that reads nothing is still open"
        assert number < 199, "the outbox limit was never reached"
    finally:
        slow.close()
        await slow.wait_closed()


async def test_a_label_change_is_live_for_the_conversations_followers(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    admin, conversation = await _waiting(live_server, live_people, db, tenant, "label me", by=tenant.admin)
    label = (await admin.post("/api/labels", {"name": f"vip-{uuid.uuid4().hex[:6]}"})).data
    queue_agent = await open_console(await live_people.signed_in(tenant.agent))
    outsider = await open_console(await live_people.signed_in(tenant.other_agent))
    answer = await admin.put(f"/api/conversations/{conversation['id']}/labels/{label['id']}")
    assert answer.status == 200, answer.body
    updated = await queue_agent.event("conversation.updated")
    assert [item["name"] for item in updated["data"]["conversation"]["labels"]] == [label["name"]]
    assert await outsider.quiet_about_conversations(0.5) == []


async def test_a_peer_that_stops_answering_pings_is_dropped(database: TestDatabase, tenant: TenantPeople) -> None:
    test_server = TestServer(create_app(database.settings(ws_heartbeat_seconds=1)))
    await test_server.start_server()
    browsers = Browsers(test_server)
    try:
        api = await browsers.signed_in(tenant.agent)
        # A half-open connection: the client neither reads nor answers pings.
        ws = await api.client.ws_connect("/ws", origin=origin_of(api), autoping=False)
        assert "hello" in (await ws.receive(timeout=5)).data
        hub = test_server.app[hub_key]
        assert len(hub.sockets_of(tenant.agent.id)) == 1
        for _ in range(100):
            if not hub.sockets_of(tenant.agent.id):
                break
            await asyncio.sleep(0.05)
        assert hub.sockets_of(tenant.agent.id) == set()
        await ws.close()
    finally:
        await browsers.close()
        await test_server.close()


async def test_a_transfer_note_reaches_only_those_who_follow_the_conversation_after_it(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    supervisor_api, conversation = await _waiting(live_server, live_people, db, tenant, "transfer me")
    queue_agent = await open_console(await live_people.signed_in(tenant.agent))
    new_agent = await open_console(await live_people.signed_in(tenant.other_agent))
    answer = await supervisor_api.post(
        f"/api/conversations/{conversation['id']}/transfer",
        {"agent_id": str(tenant.other_agent.id), "note": "private context"},
    )
    assert answer.status == 200, answer.body
    # The queue's agent hears that it left their line, and nothing of what is said about it after.
    assert (await queue_agent.event("conversation.transferred"))["data"]["conversation"]["status"] == "assigned"
    assert await queue_agent.quiet_about_conversations(0.5) == []
    assert (await new_agent.event("note.created"))["data"]["note"]["body"] == "private context"


async def test_a_conversation_closed_while_waiting_concerns_supervisors_only(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    supervisor_api, conversation = await _waiting(live_server, live_people, db, tenant, "spam")
    closed = await supervisor_api.post(f"/api/conversations/{conversation['id']}/close", {"reason": "spam"})
    assert closed.status == 200, closed.body
    queue_agent = await open_console(await live_people.signed_in(tenant.agent))
    supervisor = await open_console(supervisor_api)
    note = await supervisor_api.post(f"/api/conversations/{conversation['id']}/notes", {"body": "blocked number"})
    assert note.status == 201, note.body
    assert (await supervisor.event("note.created"))["data"]["note"]["body"] == "blocked number"
    assert await queue_agent.quiet_about_conversations(0.5) == []


async def test_opening_many_sockets_at_once_cannot_pass_the_per_user_limit(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    api = await live_people.signed_in(tenant.agent)

    attempts = await asyncio.gather(
        *(api.client.ws_connect("/ws", origin=origin_of(api)) for _ in range(30)), return_exceptions=True
    )
    opened = [ws for ws in attempts if isinstance(ws, aiohttp.ClientWebSocketResponse)]
    refused = [e for e in attempts if isinstance(e, aiohttp.WSServerHandshakeError)]
    assert len(opened) == 10
    assert {e.status for e in refused} == {429}
    assert len(refused) == 20
    for ws in opened:
        await ws.close()


async def test_a_resume_after_the_socket_went_live_for_events_before_it_answers_resync(
    live_server: TestServer, live_people: Browsers, db: Database, tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    await customer_writes(live_server, phone_number_id, "before the socket")
    api = await live_people.signed_in(tenant.agent)
    ws = await api.client.ws_connect("/ws", origin=origin_of(api))
    hello = orjson.loads((await ws.receive(timeout=5)).data)
    assert hello["data"]["last_seq"] >= 2
    await asyncio.sleep(ws_module.START_WINDOW + 0.2)  # no first frame: the socket goes live by itself
    await customer_writes(live_server, phone_number_id, "live already")
    console = Console(ws, hello)
    live = await console.event("message.created")
    # Replaying what came before the socket joined now would put it after `live`: the client must resync.
    await console.send({"type": "resume", "last_seq": hello["data"]["last_seq"] - 1})
    assert await console.reply() == {"type": "resync", "data": {"last_seq": live["seq"]}}
    await ws.close()


async def test_resumes_are_rate_limited(live_server: TestServer, live_people: Browsers, tenant: TenantPeople) -> None:
    console = await open_console(await live_people.signed_in(tenant.agent))
    await console.send({"type": "resume", "last_seq": 0})
    refused = await console.reply()
    assert refused["type"] == "error"
    assert refused["error"]["code"] == "RATE_LIMITED"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://console.example.com", True),
        ("https://console.example.com:443", True),
        ("http://console.example.com", False),
        ("https://other.example.com", False),
    ],
)
def test_behind_a_tls_proxy_the_public_url_is_the_origin(origin: str, allowed: bool) -> None:
    request = make_mocked_request("GET", "/ws", headers={"Origin": origin, "Host": "10.0.0.5:8080"})
    assert ws_module.same_origin(request, "https://console.example.com") is allowed
    assert ws_module.same_origin(request, None) is False


async def test_frames_are_not_compressed_even_when_the_browser_offers_it(
    live_server: TestServer, live_people: Browsers, tenant: TenantPeople
) -> None:
    api = await live_people.signed_in(tenant.agent)
    ws = await api.client.ws_connect("/ws", origin=origin_of(api), compress=15)
    assert ws.compress == 0
    await ws.close()
