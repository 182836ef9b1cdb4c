"""The WhatsApp Cloud API simulator and the traffic generator, against a real loopback "console".

The console here is a bare aiohttp server that keeps every webhook POST, checks its signature with the
intake's own `signature_matches`, and answers as scripted; everything it gets must read through
`parse_webhook` without a problem.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import hashlib
import os
import signal
import socket
import sys
import textwrap
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from fiv_console.cli import add_simulator_arguments
from fiv_console.serving import free_port
from fiv_console.settings import load_settings
from fiv_console.simulation.cloud_api import SimulatorConfig, SimulatorServer
from fiv_console.simulation.command import (
    SimulatorOptions,
    run_simulator,
    serve_simulator,
)
from fiv_console.simulation.envelopes import text_message_envelope
from fiv_console.simulation.traffic import TrafficConfig, TrafficGenerator
from fiv_console.whatsapp.payloads import StatusUpdate, parse_webhook
from fiv_console.whatsapp.signature import SIGNATURE_HEADER, sign, signature_matches

SECRET = b"simulator-app-secret"
TOKEN = "EAAG-test-token"
PNID = "106540352242922"
DISPLAY = "15550783881"
CUSTOMER = "5511987654321"
PROJECT = Path(__file__).resolve().parents[1]


@dataclass
class Console:
    """A stand-in console webhook: keeps what it gets, answers 200 unless told otherwise."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)
    unsigned: int = 0
    answers: deque[int] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if signature_matches(SECRET, body, request.headers.get(SIGNATURE_HEADER)):
            self.bodies.append(body)
        else:
            self.unsigned += 1
        self.arrived.set()
        return web.Response(status=self.answers.popleft() if self.answers else 200)

    async def wait_for(self, count: int) -> None:
        while len(self.bodies) < count:
            self.arrived.clear()
            await self.arrived.wait()

    def statuses(self) -> list[StatusUpdate]:
        records = [status for body in self.bodies for status in parse_webhook(body).statuses]
        assert all(record.problem is None for record in records)
        return records


@pytest.fixture
async def console() -> AsyncIterator[Console]:
    recorder = Console()
    app = web.Application()
    app.router.add_post("/webhooks/whatsapp", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    recorder.url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/whatsapp"
    yield recorder
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def config(console: Console, **overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {
        "app_secret": SECRET,
        "console_url": console.url,
        "display_numbers": {PNID: DISPLAY},
        "status_delays": (0.0, 0.0, 0.0),
        "webhook_retry_delay": 0.01,
        "seed": 3,
    }
    values.update(overrides)
    return SimulatorConfig(**values)


def text(to: str = CUSTOMER, body: str = "Hello from the console") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
    }


async def post(
    http: aiohttp.ClientSession, server: SimulatorServer, document: Any, *, token: str | None = TOKEN, **headers: str
) -> tuple[int, Any]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.post(f"{server.graph_url}/{PNID}/messages", json=document, headers=headers) as answer:
        return answer.status, await answer.json()


def wamid_of(answer: Any) -> str:
    wamid: str = answer["messages"][0]["id"]
    return wamid


# --- sends ----------------------------------------------------------------------------------------------


async def test_a_send_gets_metas_success_answer(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console)) as server:
        status, answer = await post(http, server, text(to="+55 (11) 98765-4321"))
        assert status == 200
        wamid = wamid_of(answer)
        assert answer == {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "+55 (11) 98765-4321", "wa_id": CUSTOMER}],
            "messages": [{"id": wamid}],
        }
        assert wamid.startswith("wamid.")
        # Any Graph API version is served.
        async with http.post(
            f"{server.base_url}/v19.0/{PNID}/messages", json=text(), headers={"Authorization": f"Bearer {TOKEN}"}
        ) as other_version:
            assert other_version.status == 200
            assert wamid_of(await other_version.json()) != wamid
        sent = server.simulator.sent[0]
        assert (sent.wamid, sent.phone_number_id, sent.wa_id, sent.type, sent.token) == (
            wamid,
            PNID,
            CUSTOMER,
            "text",
            TOKEN,
        )
        assert sent.request["text"] == {"body": "Hello from the console"}
        assert server.simulator.wamids_sent_to(CUSTOMER) == [wamid, server.simulator.sent[1].wamid]


async def test_the_bearer_token_is_required(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console, access_tokens=frozenset({TOKEN}))) as server:
        for token in (None, "", "someone-elses-token"):
            async with http.post(
                f"{server.graph_url}/{PNID}/messages",
                json=text(),
                headers={} if token is None else {"Authorization": f"Bearer {token}"},
            ) as answer:
                assert answer.status == 401
                assert "invalid_token" in answer.headers["WWW-Authenticate"]
                error = (await answer.json())["error"]
            assert (error["code"], error["type"]) == (190, "OAuthException")
            assert error["fbtrace_id"]
        assert server.simulator.sent == []
        assert (await post(http, server, text()))[0] == 200


async def test_requests_are_checked_as_meta_checks_them(console: Console, http: aiohttp.ClientSession) -> None:
    media = {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image"}
    bad: list[Any] = [
        {**text(), "messaging_product": "telegram"},
        {key: value for key, value in text().items() if key != "to"},
        {**text(), "to": "call me"},
        {**text(), "type": "hologram"},
        {**text(), "text": {"body": "x" * 4097}},
        {**text(), "text": {"body": ""}},
        {**text(), "txet": {"body": "typo"}},
        {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template"},
        {**media, "image": {"id": "1", "link": "https://example.com/a.png"}},
        {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "reaction", "reaction": {"emoji": "👍"}},
        ["not", "an", "object"],
    ]
    async with SimulatorServer(config(console)) as server:
        for document in bad:
            status, answer = await post(http, server, document)
            assert status == 400, document
            assert answer["error"]["code"] == 100, document
            assert answer["error"]["message"] == "(#100) Invalid parameter"
            assert answer["error"]["error_data"]["details"], document
        assert server.simulator.sent == []
        assert [rejection.error.code for rejection in server.simulator.rejections] == [100] * len(bad)

        # The limit itself is fine, and `type` defaults to text as on Meta.
        longest = {key: value for key, value in text(body="é" * 4096).items() if key != "type"}
        assert (await post(http, server, longest))[0] == 200


async def test_an_idempotency_key_gets_the_first_answer_again(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console)) as server:
        first = await post(http, server, text(), **{"Idempotency-Key": "send-1"})
        again = await post(http, server, text(), **{"Idempotency-Key": "send-1"})
        other = await post(http, server, text(), **{"Idempotency-Key": "send-2"})
        assert first == again
        assert wamid_of(other[1]) != wamid_of(first[1])
        assert [sent.idempotency_key for sent in server.simulator.sent] == ["send-1", "send-2"]
        await server.simulator.settle()
        assert len(console.statuses()) == 6  # the repeat sent nothing either


async def test_recipients_by_convention_meet_metas_errors(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console)) as server:
        status, answer = await post(http, server, text(to="+44 7700 0131047"))
        assert status == 400
        error = answer["error"]
        assert error["message"] == "(#131047) Re-engagement message"
        assert (error["type"], error["code"]) == ("OAuthException", 131047)
        assert error["error_data"]["messaging_product"] == "whatsapp"
        assert "24 hours" in error["error_data"]["details"]

        # Outside the window a template still goes.
        template = {
            "messaging_product": "whatsapp",
            "to": "+44 7700 0131047",
            "type": "template",
            "template": {
                "name": "order_update",
                "language": {"code": "en_US"},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#1"}]}
                ],
            },
        }
        assert (await post(http, server, template))[0] == 200

        status, answer = await post(http, server, text(to="5511900130429"))
        assert (status, answer["error"]["code"], answer["error"]["message"]) == (
            400,
            130429,
            "(#130429) Rate limit hit",
        )

        # Undeliverable: accepted, then a failed status webhook, as Meta reports it.
        status, answer = await post(http, server, text(to="5511900131026"))
        assert status == 200
        await server.simulator.settle()
        failed = [update for update in console.statuses() if update.wa_message_id == wamid_of(answer)]
        assert [update.status for update in failed] == ["failed"]
        assert [(e.code, e.title) for e in failed[0].errors] == [(131026, "Message undeliverable")]
        assert failed[0].errors[0].details


async def test_failures_can_be_scripted_for_retries(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console)) as server:
        server.simulator.fail_next(131000, times=2)
        server.simulator.fail_next(130429, target="read")
        answers = [await post(http, server, text(), **{"Idempotency-Key": "retry-me"}) for _ in range(3)]
        assert [status for status, _ in answers] == [500, 500, 200]
        assert answers[0][1]["error"]["code"] == 131000
        assert len(server.simulator.sent) == 1
        read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in"}
        assert (await post(http, server, read))[1]["error"]["code"] == 130429
        assert (await post(http, server, read))[1] == {"success": True}
        assert [(r.target, r.error.code, r.scripted) for r in server.simulator.rejections] == [
            ("send", 131000, True),
            ("send", 131000, True),
            ("read", 130429, True),
        ]


async def test_read_marks_and_typing(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console)) as server:
        plain = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.A"}
        typing = {**plain, "message_id": "wamid.B", "typing_indicator": {"type": "text"}}
        assert await post(http, server, plain) == (200, {"success": True})
        assert await post(http, server, typing) == (200, {"success": True})
        status, answer = await post(http, server, {"messaging_product": "whatsapp", "status": "read"})
        assert (status, answer["error"]["code"]) == (400, 100)
        marks = [(mark.message_id, mark.typing_indicator) for mark in server.simulator.read_marks]
        assert marks == [("wamid.A", False), ("wamid.B", True)]
        assert server.simulator.sent == []


# --- status webhooks ------------------------------------------------------------------------------------


async def test_statuses_arrive_signed_sent_delivered_read(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console)) as server:
        wamids = [wamid_of((await post(http, server, text(body=f"n{i}")))[1]) for i in range(3)]
        await server.simulator.settle()
    assert console.unsigned == 0
    assert len(console.bodies) == 9
    for body in console.bodies:
        batch = parse_webhook(body)
        assert len(batch.statuses) == 1
        assert (batch.messages, batch.errors, batch.other_changes) == ((), (), ())
    updates = console.statuses()
    for wamid in wamids:
        mine = [update for update in updates if update.wa_message_id == wamid]
        assert [update.status for update in mine] == ["sent", "delivered", "read"]
        assert all((u.phone_number_id, u.recipient_id, u.waba_id) == (PNID, CUSTOMER, "102290129340398") for u in mine)
        assert mine[0].conversation is not None
        assert mine[0].pricing == {
            "billable": False,
            "pricing_model": "PMP",
            "category": "service",
            "type": "free_customer_service",
        }
    metadata = [orjson.loads(body)["entry"][0]["changes"][0]["value"]["metadata"] for body in console.bodies]
    assert {item["display_phone_number"] for item in metadata} == {DISPLAY}
    assert [delivery.answer_status for delivery in server.simulator.webhooks] == [200] * 9


async def test_duplicates_and_shuffled_order(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console, duplicate_probability=1.0)) as server:
        wamid = wamid_of((await post(http, server, text()))[1])
        await server.simulator.settle()
    assert len(console.bodies) == 6
    assert console.bodies[0::2] == console.bodies[1::2]  # each one twice, byte for byte
    assert [update.status for update in console.statuses()[0::2]] == ["sent", "delivered", "read"]
    assert {update.wa_message_id for update in console.statuses()} == {wamid}

    console.bodies.clear()
    async with SimulatorServer(config(console, shuffle=True, seed=11)) as server:
        wamids = [wamid_of((await post(http, server, text()))[1]) for _ in range(8)]
        await server.simulator.settle()
    orders = [tuple(u.status for u in console.statuses() if u.wa_message_id == wamid) for wamid in wamids]
    assert all(sorted(order) == ["delivered", "read", "sent"] for order in orders)
    assert any(order != ("sent", "delivered", "read") for order in orders)


async def test_unread_messages_and_delays(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console, read_probability=0.0, status_delays=(0.2, 0.0, 0.0))) as server:
        await post(http, server, text())
        assert console.bodies == []  # not yet: the first status waits 0.2 s
        await server.simulator.settle()
    assert [update.status for update in console.statuses()] == ["sent", "delivered"]


async def test_a_refusing_console_is_retried_a_bounded_number_of_times(
    console: Console, http: aiohttp.ClientSession
) -> None:
    console.answers.extend([500, 503])
    async with SimulatorServer(config(console, read_probability=0.0, webhook_attempts=3)) as server:
        await post(http, server, text())
        await server.simulator.settle()
        first = [(d.status, d.attempt, d.answer_status) for d in server.simulator.webhooks]
        assert first == [("sent", 1, 500), ("sent", 2, 503), ("sent", 3, 200), ("delivered", 1, 200)]

        server.simulator.webhooks.clear()
        console.answers.extend([500] * 10)
        await post(http, server, text())
        await server.simulator.settle()
        assert [(d.status, d.answer_status) for d in server.simulator.webhooks] == [("sent", 500)] * 3 + [
            ("delivered", 500)
        ] * 3
        assert all(delivery.signature == sign(SECRET, delivery.body) for delivery in server.simulator.webhooks)

    async with SimulatorServer(
        config(console, console_url=f"http://127.0.0.1:{free_port()}/", webhook_attempts=2)
    ) as down:
        await post(http, down, text())
        await down.simulator.settle()
        assert [d.answer_status for d in down.simulator.webhooks] == [None] * 6
        assert all(d.error for d in down.simulator.webhooks)


async def test_shutdown_cancels_pending_webhooks(console: Console, http: aiohttp.ClientSession) -> None:
    server = SimulatorServer(config(console, status_delays=(60.0, 60.0, 60.0)))
    await server.start()
    await post(http, server, text())
    async with asyncio.timeout(3):
        await server.close()
    assert console.bodies == []


# --- media ----------------------------------------------------------------------------------------------


async def test_media_upload_metadata_and_download(console: Console, http: aiohttp.ClientSession) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    photo = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    async with SimulatorServer(config(console)) as server:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", "image/png")
        form.add_field("file", photo, filename="photo.png", content_type="image/png")
        async with http.post(f"{server.graph_url}/{PNID}/media", data=form, headers=bearer) as answer:
            assert answer.status == 200
            media_id = (await answer.json())["id"]
        assert media_id.isdigit()
        assert [(u.id, u.data, u.filename, u.phone_number_id) for u in server.simulator.uploads] == [
            (media_id, photo, "photo.png", PNID)
        ]

        async with http.get(f"{server.graph_url}/{media_id}", headers=bearer) as answer:
            info = await answer.json()
        assert info == {
            "messaging_product": "whatsapp",
            "url": info["url"],
            "mime_type": "image/png",
            "sha256": hashlib.sha256(photo).hexdigest(),
            "file_size": len(photo),
            "id": media_id,
        }
        assert info["url"].startswith(server.base_url)
        async with http.get(info["url"], headers=bearer) as download:
            assert (download.status, download.content_type, await download.read()) == (200, "image/png", photo)

        for url in (f"{server.graph_url}/{media_id}", info["url"]):
            async with http.get(url) as unauthorized:
                assert unauthorized.status == 401
        async with http.get(info["url"].replace("hash=", "hash=0"), headers=bearer) as tampered:
            assert tampered.status == 404
        async with http.get(f"{server.graph_url}/999", headers=bearer) as missing:
            assert (missing.status, (await missing.json())["error"]["code"]) == (400, 100)

        # What a customer sent is registered by the test, then fetched the same way.
        voice = server.simulator.add_media(b"OggS-voice", "audio/ogg; codecs=opus")
        async with http.get(f"{server.graph_url}/{voice}", headers=bearer) as answer:
            voice_url = (await answer.json())["url"]
        async with http.get(voice_url, headers=bearer) as download:
            assert download.headers["Content-Type"] == "audio/ogg; codecs=opus"
            assert await download.read() == b"OggS-voice"

        unsupported = aiohttp.FormData()
        unsupported.add_field("messaging_product", "whatsapp")
        unsupported.add_field("file", b"MZ", filename="setup.exe", content_type="application/x-msdownload")
        async with http.post(f"{server.graph_url}/{PNID}/media", data=unsupported, headers=bearer) as answer:
            assert (answer.status, (await answer.json())["error"]["code"]) == (400, 131053)

        # A message naming media that does not exist is accepted, then fails as Meta reports it.
        image = {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image", "image": {"id": "42"}}
        good = {**image, "image": {"id": media_id, "caption": "your receipt"}}
        bad_wamid = wamid_of((await post(http, server, image))[1])
        good_wamid = wamid_of((await post(http, server, good))[1])
        await server.simulator.settle()
    statuses = {(update.wa_message_id, update.status) for update in console.statuses()}
    assert (bad_wamid, "failed") in statuses
    assert (good_wamid, "read") in statuses


# --- bodies and traffic ---------------------------------------------------------------------------------


def test_bodies_are_escaped_and_signed_as_metas() -> None:
    vector = "sha256=02fe0c96d28c59ddb7cf81eff0ca05809b360ba73b63c28210b5906a0a107d1f"
    assert sign(b"app_secret_123", b'{"object":"whatsapp_business_account","entry":[]}') == vector

    body = text_message_envelope(PNID, DISPLAY, CUSTOMER, "Zoë", "café 😀 https://x.example/a", "wamid.T1", 1749416383)
    assert body.isascii()
    assert b"caf\\u00e9 \\ud83d\\ude00 https:\\/\\/x.example\\/a" in body
    assert signature_matches(SECRET, body, sign(SECRET, body))
    (message,) = parse_webhook(body).messages
    assert (message.wa_message_id, message.wa_id, message.profile_name, message.text, message.problem) == (
        "wamid.T1",
        CUSTOMER,
        "Zoë",
        "café 😀 https://x.example/a",
        None,
    )
    assert message.timestamp is not None
    assert int(message.timestamp.timestamp()) == 1749416383


async def test_traffic_posts_signed_messages_on_schedule(console: Console) -> None:
    async with SimulatorServer(config(console)) as server:
        traffic = TrafficConfig(
            webhook_url=console.url,
            app_secret=SECRET,
            phone_number_id=PNID,
            display_number=DISPLAY,
            rate=50,
            customers=8,
            duration=1.0,
            seed=7,
        )
        generator = TrafficGenerator(traffic, counterpart=server.simulator)
        stats = await generator.run()

        assert (stats.sent, stats.acknowledged, len(stats.latencies)) == (50, 50, 50)
        assert not stats.other_statuses
        assert not stats.errors
        assert stats.elapsed >= 49 / 50
        p50, p99 = stats.percentile(50), stats.percentile(99)
        assert p50 is not None
        assert p99 is not None
        assert 0 < p50 <= p99
        assert "50 sent" in stats.summary()

        assert console.unsigned == 0
        assert len(console.bodies) == 50
        messages = []
        renames = 0
        for body in console.bodies:
            batch = parse_webhook(body)
            if batch.groups:  # a group renamed: Meta's group_settings_update, no message
                assert (len(batch.groups), batch.messages) == (1, ())
                renames += 1
                continue
            assert len(batch.messages) == 1
            messages.append(batch.messages[0])
        assert renames == stats.kinds["group_rename"]
        assert all(m.problem is None for m in messages)
        assert len({m.wa_message_id for m in messages}) == 50 - renames
        assert {m.phone_number_id for m in messages} == {PNID}
        # Every customer has a business-scoped id; one who hides their number behind a username comes by it alone.
        customers = {customer.bsuid: customer for customer in generator.customers}
        assert {m.user_id for m in messages} <= set(customers)
        for m in messages:
            assert m.user_id is not None
            assert m.wa_id == (None if customers[m.user_id].hides_number else customers[m.user_id].wa_id)
            assert m.profile_name
        kinds = {m.kind for m in messages}
        assert len(kinds) >= 4, kinds
        assert "text" in kinds
        assert sum(stats.kinds.values()) == 50

        # Media in the traffic is held by the simulator, with the hash Meta would announce.
        media = [m.media for m in messages if m.media is not None]
        assert media
        for item in media:
            stored = server.simulator.media(item.id)
            assert stored is not None
            assert item.sha256 == base64.b64encode(hashlib.sha256(stored.data).digest()).decode()
            assert item.mime_type == stored.mime_type


async def test_traffic_counts_refusals_and_unreachable_consoles(console: Console) -> None:
    console.answers.extend([500, 401])
    base = TrafficConfig(console.url, SECRET, PNID, DISPLAY, rate=100.0, duration=0.05, seed=1)
    refused = await TrafficGenerator(base).run()
    assert (refused.sent, refused.acknowledged, dict(refused.other_statuses)) == (5, 3, {500: 1, 401: 1})

    nowhere = f"http://127.0.0.1:{free_port()}/webhooks/whatsapp"
    down = await TrafficGenerator(dataclasses.replace(base, webhook_url=nowhere, duration=0.03)).run()
    assert (down.sent, down.acknowledged, sum(down.errors.values()), down.latencies) == (3, 0, 3, [])


# --- the command ----------------------------------------------------------------------------------------


async def test_the_command_runs_traffic_for_a_duration(console: Console) -> None:
    lines: list[str] = []
    options = SimulatorOptions(
        app_secret=SECRET, console_url=console.url, port=free_port(), rate=20, customers=3, duration=0.5, seed=5
    )
    stats = await serve_simulator(options, report=lines.append)
    assert stats is not None
    assert (stats.sent, stats.acknowledged) == (10, 10)
    assert len(console.bodies) == 10
    assert f":{options.port}/v23.0" in lines[0]
    assert lines[-1].startswith("traffic: 10 sent")
    assert "simulator: 0 sends" in lines[-1]


async def test_the_command_stops_in_order_on_a_signal(console: Console) -> None:
    script = textwrap.dedent(
        """
        import argparse, sys
        from fiv_console.settings import load_settings
        from fiv_console.cli import add_simulator_arguments
        from fiv_console.simulation.command import run_simulator
        parser = argparse.ArgumentParser()
        add_simulator_arguments(parser)
        args = parser.parse_args(sys.argv[1:])
        sys.exit(run_simulator(load_settings(), args))
        """
    )
    env = {**os.environ, "WHATSAPP_APP_SECRET": SECRET.decode()}
    args = ["--port", str(free_port()), "--console-url", console.url, "--rate", "20", "--seed", "1"]
    pipe = asyncio.subprocess.PIPE
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, env=env, cwd=PROJECT, stdout=pipe, stderr=pipe
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            ready = await process.stdout.readline()
            assert b"WhatsApp simulator at" in ready
            await console.wait_for(3)
            process.send_signal(signal.SIGINT)
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err
    assert b"Traceback" not in err
    summary = out.decode().strip().splitlines()
    assert len(summary) == 1
    assert summary[0].startswith("traffic: ")
    assert console.unsigned == 0


def test_the_command_needs_the_app_secret(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_simulator_arguments(parser)
    assert run_simulator(load_settings(whatsapp_app_secret=None), parser.parse_args([])) == 2
    assert "WHATSAPP_APP_SECRET" in capsys.readouterr().err


def test_the_command_reports_a_taken_port(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_simulator_arguments(parser)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        args = parser.parse_args(["--port", str(taken.getsockname()[1])])
        assert run_simulator(load_settings(whatsapp_app_secret="s3cret"), args) == 1
    assert capsys.readouterr().err.startswith("fiv-console: error: simulator: ")


# --- templates ------------------------------------------------------------------------------------------


def template(name: str, language: str, *components: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components:
        content["components"] = list(components)
    return {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template", "template": content}


async def test_templates_are_listed_in_metas_pages(console: Console, http: aiohttp.ClientSession) -> None:
    async with SimulatorServer(config(console)) as server:
        url = f"{server.graph_url}/102290129340398/message_templates"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        names = []
        async with http.get(url, params={"limit": "5"}, headers=headers) as answer:
            first = await answer.json()
        names += [item["name"] for item in first["data"]]
        assert set(first["paging"]["cursors"]) == {"before", "after"}
        assert first["paging"]["next"].startswith(url)
        async with http.get(first["paging"]["next"], headers=headers) as answer:
            second = await answer.json()
        names += [item["name"] for item in second["data"]]
        assert "next" not in second["paging"]
        assert len(names) == 8
        assert {"order_update", "appointment_reminder", "spring_sale", "payment_due"} <= set(names)
        async with http.get(f"{server.graph_url}/555555555/message_templates", headers=headers) as answer:
            assert (answer.status, (await answer.json())["error"]["code"]) == (400, 100)
        async with http.get(url) as answer:
            assert answer.status == 401


async def test_template_sends_are_checked_as_meta_checks_them(console: Console, http: aiohttp.ClientSession) -> None:
    body = {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#1"}]}
    named = {
        "type": "body",
        "parameters": [
            {"type": "text", "parameter_name": "first_name", "text": "Ana"},
            {"type": "text", "parameter_name": "date", "text": "May 3"},
        ],
    }
    async with SimulatorServer(config(console)) as server:
        refused = [
            (template("no_such_template", "en_US"), 132001),
            (template("order_update", "pt_BR", body), 132001),
            (template("spring_sale", "en_US"), 132001),
            (template("order_update", "en_US"), 132000),
            (template("order_update", "en_US", {**body, "parameters": body["parameters"][:1]}), 132000),
            (template("appointment_reminder", "en_US", body), 132000),
            (template("order_shipped", "en_US", body), 132000),
        ]
        for document, code in refused:
            status, answer = await post(http, server, document)
            assert (status, answer["error"]["code"]) == (400, code), document
        assert server.simulator.sent == []
        assert (await post(http, server, template("appointment_reminder", "en_US", named)))[0] == 200
        assert server.simulator.sent[0].request["template"]["components"] == [named]

    # Without a template list every template is taken, as before templates were simulated.
    async with SimulatorServer(config(console, templates=None)) as server:
        assert (await post(http, server, template("anything", "en")))[0] == 200
