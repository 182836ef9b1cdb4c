"""WhatsApp groups (issue #16, point 7): a group's messages are one group conversation, each naming the
participant who wrote it, and the agent's reply goes to the group, never privately to a participant.

Bodies: Meta's "Group messages webhook reference" (developers.facebook.com/documentation/business-messaging/
whatsapp/groups, Nov 2025): a messages change whose message has `group_id`, `from` being the participant;
sends: "Group messaging", `recipient_type: group` and the group's id as `to`.

The group's name: message webhooks do not carry it. The bodies of the group webhooks are those of Meta's
"Webhooks for Groups API" (https://developers.facebook.com/documentation/business-messaging/whatsapp/groups/
webhooks, updated Feb 11, 2026: "Group create succeed", "Group settings update succeed" and "... partial
fail"), placeholders filled in; the info of a group that writes in unnamed is Meta's "Get group info"
(`GET /<GROUP_ID>?fields=...`, https://developers.facebook.com/documentation/business-messaging/whatsapp/
groups/reference#get-group-info), answered by the simulator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from fiv_console.access import Audience, Viewer
from fiv_console.conversations import lifecycle
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.events import EventBatch, Unannounced
from fiv_console.keys import group_names_key
from fiv_console.messages import group_names
from fiv_console.messages.intake import Intake
from fiv_console.simulation.envelopes import message_object, messages_envelope
from fiv_console.whatsapp.client import GraphClient
from fiv_console.whatsapp.payloads import parse_webhook
from tests.api import TenantPeople
from tests.conftest import TestDatabase
from tests.webhooks import (
    World,
    connect_number,
    new_phone_number_id,
    open_conversation,
    post_webhook,
    simulated_world,
)

GROUP = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
ANA, BRUNO = "5511911112222", "5511933334444"


@pytest.fixture
async def world(database: TestDatabase, db: Database, tenant: TenantPeople) -> AsyncIterator[World]:
    async with simulated_world(database, db, tenant, seed=11) as world:
        yield world


async def _writes(world: World, who: str, name: str, text: str, *, group: str | None = GROUP) -> str:
    message: dict[str, Any] = message_object(who, "text", {"body": text})
    if group is not None:
        message["group_id"] = group
    body = messages_envelope(world.phone_number_id, "15550100", who, name, message)
    async with ClientSession() as http:
        assert (await post_webhook(http, world.webhook_url, body)).status == 200
    return str(message["id"])


async def test_a_group_is_one_conversation_and_is_answered_as_a_group(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    await _writes(world, ANA, "Ana", "Is the shop open on Sunday?")
    await _writes(world, BRUNO, "Bruno", "And on holidays?")
    await _writes(world, ANA, "Ana", "Just me, in private", group=None)

    async with tenant_tx(db, tenant.id) as conn:
        contacts = await conn.fetch("select id, wa_id, group_id from contacts order by group_id nulls last")
        conversations = await conn.fetch("select id, contact_id from conversations")
    assert [(c["wa_id"], c["group_id"]) for c in contacts] == [(None, GROUP), (ANA, None)]
    assert len(conversations) == 2  # the group's, and Ana's own
    group_conversation = next(c["id"] for c in conversations if c["contact_id"] == contacts[0]["id"])

    agent = await world.browsers.signed_in(tenant.agent)
    shown = await agent.get(f"/api/conversations/{group_conversation}")
    assert shown.data["contact"]["group_id"] == GROUP
    assert (await agent.post(f"/api/conversations/{group_conversation}/assign", {})).status == 200
    history = await agent.get(f"/api/conversations/{group_conversation}/messages")
    participants = [m["details"]["participant"] for m in reversed(history.data["items"])]
    assert [(p["wa_id"], p["name"]) for p in participants] == [(ANA, "Ana"), (BRUNO, "Bruno")]
    assert all(p["user_id"].startswith("ZZ.") for p in participants)

    reply = await agent.post(f"/api/conversations/{group_conversation}/messages", {"text": "Open 9 to 1 on Sundays."})
    assert reply.status == 201, reply.body
    [sent] = [s for s in world.simulator.sent if s.wamid == reply.data["wa_message_id"]]
    assert (sent.request["recipient_type"], sent.request["to"]) == ("group", GROUP)
    assert "recipient" not in sent.request


async def test_reactions_in_a_group_are_each_participants_own(world: World, db: Database, tenant: TenantPeople) -> None:
    target = await _writes(world, ANA, "Ana", "We meet at 5")
    for who, emoji in ((ANA, "👍"), (BRUNO, "❤️")):
        reaction = message_object(who, "reaction", {"message_id": target, "emoji": emoji})
        reaction["group_id"] = GROUP
        body = messages_envelope(world.phone_number_id, "15550100", who, "x", reaction)
        async with ClientSession() as http:
            assert (await post_webhook(http, world.webhook_url, body)).status == 200
    async with tenant_tx(db, tenant.id) as conn:
        emoji = await conn.fetch("select emoji from message_reactions order by reacted_at, emoji")
    assert sorted(r["emoji"] for r in emoji) == sorted(["👍", "❤️"])


def _groups_body(world: World, field: str, *items: dict[str, Any]) -> bytes:
    """Meta's group webhook envelope (the "Webhooks for Groups API" samples), for the world's number."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": world.phone_number_id},
        "groups": list(items),
    }
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": field}]}],
    }
    return orjson.dumps(document)


def _created(group_id: str, subject: str, at: int) -> dict[str, Any]:
    """ "Group create succeed" (group_lifecycle_update)."""
    return {
        "timestamp": str(at),
        "group_id": group_id,
        "type": "group_create",
        "request_id": "B35FB999BF97240A0B2FDFF5574F8297",
        "subject": subject,
        "invite_link": "https://chat.whatsapp.com/LINK_ID",
        "join_approval_mode": "auto_approve",
    }


def _settings(
    group_id: str, at: int, *, subject: str | None, description: str | None, ok: bool = True
) -> dict[str, Any]:
    """ "Group settings update succeed" (group_settings_update), saying the settings given (None: that one
    was not changed); with `ok` False, "partial fail": the subject and description refused, the picture
    taken."""
    failed = {} if ok else {"errors": [{"code": 131000, "message": "Something went wrong", "title": "ERROR_TITLE"}]}
    item: dict[str, Any] = {
        "timestamp": str(at),
        "group_id": group_id,
        "type": "group_settings_update",
        "request_id": "REQUEST_ID",
        "profile_picture": {"mime_type": "image/jpeg", "update_successful": True, "sha256": "PHOTO_HASH"},
    }
    if subject is not None:
        item["group_subject"] = {"text": subject, "update_successful": ok, **failed}
    if description is not None:
        item["group_description"] = {"text": description, "update_successful": ok, **failed}
    return item


async def _post(world: World, body: bytes) -> None:
    async with ClientSession() as http:
        assert (await post_webhook(http, world.webhook_url, body)).status == 200


async def _group_contact(db: Database, tenant: TenantPeople, group_id: str = GROUP) -> asyncpg.Record | None:
    async with tenant_tx(db, tenant.id) as conn:
        return await conn.fetchrow(
            "select id, profile_name, group_description from contacts where group_id = $1", group_id
        )


async def test_a_group_the_business_created_is_named_by_its_lifecycle_webhook(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    now = int(time.time())
    await _post(world, _groups_body(world, "group_lifecycle_update", _created(GROUP, "Order 4471: delivery", now)))
    await _writes(world, ANA, "Ana", "Is it on its way?")
    await world.console.app[group_names_key].drain()

    agent = await world.browsers.signed_in(tenant.agent)
    listed = await agent.get("/api/conversations")
    [shown] = [c for c in listed.data["items"] if c["contact"]["group_id"] == GROUP]
    assert shown["contact"]["profile_name"] == "Order 4471: delivery"  # what the list and header show
    assert world.simulator.group_lookups == []  # named already: Graph is not asked


async def test_a_settings_change_renames_the_group_live_and_an_older_one_is_not_applied(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    await _writes(world, ANA, "Ana", "Hello group")
    await world.console.app[group_names_key].drain()  # the simulator knows no such group: no name yet
    assert (contact := await _group_contact(db, tenant)) is not None
    assert contact["profile_name"] is None
    now = int(time.time())

    renamed = _settings(GROUP, now, subject="VIP customers", description="Our best customers")
    await _post(world, _groups_body(world, "group_settings_update", renamed))
    contact = await _group_contact(db, tenant)
    assert contact is not None
    assert (contact["profile_name"], contact["group_description"]) == ("VIP customers", "Our best customers")
    async with tenant_tx(db, tenant.id) as conn:
        event = await conn.fetchrow("select payload from events where type = 'conversation.updated' order by seq desc")
    assert event is not None
    assert event["payload"]["conversation"]["contact"]["profile_name"] == "VIP customers"

    older = _settings(GROUP, now - 60, subject="Customers", description="Old")
    refused = _settings(GROUP, now + 60, subject="Refused", description="Refused", ok=False)
    await _post(world, _groups_body(world, "group_settings_update", older, refused))
    contact = await _group_contact(db, tenant)
    assert contact is not None
    assert (contact["profile_name"], contact["group_description"]) == ("VIP customers", "Our best customers")

    agent = await world.browsers.signed_in(tenant.admin)
    shown = await agent.get(f"/api/contacts/{contact['id']}")
    assert (shown.data["profile_name"], shown.data["group_description"]) == ("VIP customers", "Our best customers")


async def test_a_subject_change_delivered_after_a_newer_description_change_is_applied(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    """The subject changed at T1, then the description at T2; Meta delivers the description's first. Each
    has its own time: the description's does not make the older subject look stale (it would be lost for
    good, the background fetch only asking while no subject is known)."""
    await _writes(world, ANA, "Ana", "Hello group")
    await world.console.app[group_names_key].drain()
    now = int(time.time())

    described = _settings(GROUP, now, subject=None, description="Deliveries on Tuesdays")
    await _post(world, _groups_body(world, "group_settings_update", described))
    renamed = _settings(GROUP, now - 30, subject="Order 4471", description=None)
    await _post(world, _groups_body(world, "group_settings_update", renamed))
    contact = await _group_contact(db, tenant)
    assert contact is not None
    assert (contact["profile_name"], contact["group_description"]) == ("Order 4471", "Deliveries on Tuesdays")

    # Each field still refuses its own older change.
    stale = _settings(GROUP, now - 60, subject="Order 4470", description="Deliveries on Mondays")
    await _post(world, _groups_body(world, "group_settings_update", stale))
    contact = await _group_contact(db, tenant)
    assert contact is not None
    assert (contact["profile_name"], contact["group_description"]) == ("Order 4471", "Deliveries on Tuesdays")
    async with tenant_tx(db, tenant.id) as conn:
        times = await conn.fetchrow(
            "select extract(epoch from group_subject_at)::bigint as subject_at, "
            "extract(epoch from group_description_at)::bigint as description_at from contacts where group_id = $1",
            GROUP,
        )
    assert times is not None
    assert (times["subject_at"], times["description_at"]) == (now - 30, now)


async def test_a_group_that_writes_in_unnamed_is_named_from_graph_in_the_background(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    group = world.simulator.groups.create("Casamento de Ana & Léo", description="Lista", participants=[ANA])
    await _writes(world, ANA, "Ana", "Hi!", group=group.id)
    await _writes(world, BRUNO, "Bruno", "Hello!", group=group.id)
    await world.console.app[group_names_key].drain()
    contact = await _group_contact(db, tenant, group.id)
    assert contact is not None
    assert (contact["profile_name"], contact["group_description"]) == ("Casamento de Ana & Léo", "Lista")
    assert world.simulator.group_lookups == [group.id]  # once, for both messages


async def test_a_failed_fetch_leaves_the_group_unnamed_and_is_not_repeated_at_once(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    group = world.simulator.groups.create("Store opening")
    world.simulator.fail_next(100, target="group", details="Object does not exist")
    await _writes(world, ANA, "Ana", "Hi!", group=group.id)
    await world.console.app[group_names_key].drain()
    await _writes(world, ANA, "Ana", "Anyone?", group=group.id)
    await world.console.app[group_names_key].drain()
    contact = await _group_contact(db, tenant, group.id)
    assert contact is not None
    assert contact["profile_name"] is None  # the console shows "WhatsApp group"
    assert world.simulator.group_lookups == [group.id]  # tried again only after the interval


async def test_a_group_webhook_that_cannot_be_read_is_kept_and_the_rest_applied(
    world: World, db: Database, tenant: TenantPeople, owner: asyncpg.Connection
) -> None:
    dead_before = await owner.fetchval("select count(*) from webhook_dead_letters")
    broken = {"timestamp": "TIMESTAMP", "type": "group_create", "subject": "No id"}
    good = _created(GROUP, "Order 4471: delivery", int(time.time()))
    await _post(world, _groups_body(world, "group_lifecycle_update", broken, good))
    # Fields the console does not use (who joined, a suspension) are taken and change nothing.
    joined = {"timestamp": str(int(time.time())), "group_id": GROUP, "type": "group_participants_add"}
    await _post(world, _groups_body(world, "group_participants_update", {**joined, "reason": "invite_link"}))

    contact = await _group_contact(db, tenant)
    assert contact is not None
    assert contact["profile_name"] == "Order 4471: delivery"
    dead = await owner.fetch("select detail from webhook_dead_letters order by id offset $1", dead_before)
    assert [d["detail"] for d in dead] == [
        "a group_lifecycle_update change that cannot be read: group_id: Field required; timestamp: Value error, "
        "must be a string of Unix seconds"
    ]


async def test_a_rename_racing_an_assignment_is_announced_to_the_new_followers(
    db: Database, tenant: TenantPeople
) -> None:
    """The rename's `conversation.updated` goes to whoever follows the conversation when it commits. Here
    an assignment holds the conversation, uncommitted, while the rename is recorded: the rename waits for it
    (a share lock) and announces to the agent; read without the lock, it went to the queue it had left, and
    the agent never heard of the new name."""
    _, _, conversation_id = await open_conversation(db, tenant, group_id=GROUP)
    admin = Viewer(tenant_id=tenant.id, role="admin", user_id=tenant.admin.id)
    held, release = asyncio.Event(), asyncio.Event()

    async def assigning() -> None:
        async with tenant_tx(db, tenant.id) as conn:
            await lifecycle.assign(
                conn, viewer=admin, conversation_id=conversation_id, agent_id=tenant.agent.id, force=True
            )
            held.set()
            await release.wait()

    async def renaming() -> EventBatch:
        async with tenant_tx(db, tenant.id) as conn:
            batch = EventBatch(tenant.id)
            applied = await group_names.record(
                conn,
                batch,
                tenant_id=tenant.id,
                group_id=GROUP,
                subject="VIP customers",
                description=None,
                named_at=datetime.now(UTC),
            )
            assert applied
            return batch

    assignment = asyncio.create_task(assigning())
    await held.wait()
    rename = asyncio.create_task(renaming())
    await asyncio.sleep(0.3)  # the rename has made its change and reads the followers
    release.set()
    await assignment
    batch = await asyncio.wait_for(rename, timeout=10)
    [event] = batch.pending
    assert event.type == "conversation.updated"
    assert event.audience == Audience.agent(tenant.agent.id)
    assert event.payload["conversation"]["agent_id"] == str(tenant.agent.id)


class _StalledGraph:
    """A Graph API that takes every `GET /<GROUP_ID>` and answers none until `answer` is set."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.answer = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/{group_id}", self._group)

    async def _group(self, request: web.Request) -> web.Response:
        group_id = request.match_info["group_id"]
        self.asked.append(group_id)
        await self.answer.wait()
        return web.json_response({"id": group_id, "subject": f"Group {group_id}"})


async def test_while_meta_is_slow_the_backlog_of_name_fetches_stays_bounded(db: Database, tenant: TenantPeople) -> None:
    """300 unnamed groups write while Meta answers nothing: 4 asks run, at most 100 fetches wait or run,
    the rest are not started, and a group turned away is asked on its next message once there is room."""
    channel_id = await connect_number(
        db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=new_phone_number_id()
    )
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "insert into contacts (tenant_id, group_id) select $1, 'G' || i from generate_series(1, 300) as i",
            tenant.id,
        )
    graph = _StalledGraph()
    async with TestServer(graph.app) as server, ClientSession() as http:
        client = GraphClient(http, str(server.make_url("")))
        names = group_names.GroupNames(db, client, Unannounced(), limit=4, backlog=100)
        try:
            for _ in range(2):  # each group writes twice
                for i in range(1, 301):
                    names.want(tenant.id, channel_id, f"G{i}")
                assert names.pending == 100
            await asyncio.sleep(0.5)
            assert names.pending == 100
            assert sorted(graph.asked) == sorted(f"G{i}" for i in range(1, 5))  # `limit` asks at a time

            graph.answer.set()
            await names.drain()
            assert sorted(graph.asked) == sorted(f"G{i}" for i in range(1, 101))
            names.want(tenant.id, channel_id, "G250")  # turned away before, not remembered
            await names.drain()
            assert graph.asked[-1] == "G250"
        finally:
            graph.answer.set()
            await names.close()
    async with tenant_tx(db, tenant.id) as conn:
        named = await conn.fetchval("select count(*) from contacts where profile_name like 'Group G%'")
    assert named == 101


def _group_writes_and_other_renamed(phone_number_id: str, writing: str, renamed: str) -> bytes:
    """One POST: a message in group `writing`, and the subject of group `renamed` changed."""
    message = message_object(ANA, "text", {"body": "Hi"})
    message["group_id"] = writing
    metadata = {"display_phone_number": "15550100", "phone_number_id": phone_number_id}
    messages = orjson.loads(messages_envelope(phone_number_id, "15550100", ANA, "Ana", message))
    settings = _settings(renamed, int(time.time()), subject=f"Renamed {renamed}", description=None)
    groups = {"messaging_product": "whatsapp", "metadata": metadata, "groups": [settings]}
    messages["entry"][0]["changes"].append({"value": groups, "field": "group_settings_update"})
    return orjson.dumps(messages)


async def _ingest(intake: Intake, body: bytes) -> None:
    await intake.ingest(parse_webhook(body), body=body)


async def test_two_instances_crossing_two_groups_do_not_deadlock(
    db: Database, tenant: TenantPeople, owner: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """Instance A stores a message of group G and a rename of H; instance B a message of H and a rename of G.
    The contacts of a batch's renamed groups are locked with its messages' groups, sorted, before any
    conversation: B waits for A at G, and nothing deadlocks. Locked after the conversations (the rename
    applied last), A held G and waited for H while B held H and waited for G; PostgreSQL broke it after a
    second and the batch was retried. The crossing is forced: both conversations are held until A and B
    wait on locks, then let go together."""
    phone_number_id = new_phone_number_id()
    await connect_number(db, tenant_id=tenant.id, queue_id=tenant.queue_id, phone_number_id=phone_number_id)
    group_g, group_h = GROUP + "G", GROUP + "H"
    first, second = Intake(db, Unannounced()), Intake(db, Unannounced())
    for intake, group in ((first, group_g), (second, group_h)):  # their conversations, open
        message = message_object(ANA, "text", {"body": "Hello"})
        message["group_id"] = group
        await _ingest(intake, messages_envelope(phone_number_id, "15550100", ANA, "Ana", message))
    async with tenant_tx(db, tenant.id) as conn:
        conversations = [row["id"] for row in await conn.fetch("select id from conversations")]
    assert len(conversations) == 2

    async def waiting_on_locks() -> int:
        return int(
            await owner.fetchval(
                "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'"
            )
        )

    held, release = asyncio.Event(), asyncio.Event()

    async def hold_conversations() -> None:
        async with tenant_tx(db, tenant.id) as conn:
            await conn.execute("select 1 from conversations where id = any($1::uuid[]) for update", conversations)
            held.set()
            await release.wait()

    caplog.set_level(logging.INFO, logger="fiv_console.messages.intake")
    holder = asyncio.create_task(hold_conversations())
    await held.wait()
    crossing = asyncio.gather(
        _ingest(first, _group_writes_and_other_renamed(phone_number_id, group_g, group_h)),
        _ingest(second, _group_writes_and_other_renamed(phone_number_id, group_h, group_g)),
    )
    for _ in range(500):  # until A and B both wait (10 s at most)
        if await waiting_on_locks() >= 2:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the two batches never both waited")
    release.set()
    await holder
    await asyncio.wait_for(crossing, timeout=15)

    assert [r.message for r in caplog.records if "retried" in r.message] == []
    async with tenant_tx(db, tenant.id) as conn:
        rows = await conn.fetch("select group_id, profile_name from contacts where group_id is not null order by 1")
        stored = await conn.fetchval("select count(*) from messages")
    assert [(r["group_id"], r["profile_name"]) for r in rows] == [
        (group_g, f"Renamed {group_g}"),
        (group_h, f"Renamed {group_h}"),
    ]
    assert stored == 4
