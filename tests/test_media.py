"""Media through the Cloud API simulator: a customer's file streamed to the agent who may see it, with the
headers that keep it inert and cached; an agent's upload checked, sent to Meta and then sent by its id.

The console and the simulator are two real servers on loopback, as in test_whatsapp_round_trip.py: the
customer's media is put in the simulator, the webhook naming it is posted to the console, and the console
fetches it from the simulator's Graph API.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import ClientSession

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.messages import media
from tests.api import Answer, Api, Browsers, TenantPeople
from tests.conftest import TestDatabase
from tests.webhooks import (
    World,
    envelope,
    open_conversation,
    post_webhook,
    simulated_world,
    text_message,
)

CUSTOMER = "5511977776666"
TOKEN = "test-token"
MiB = 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n"
SEVEN_DAYS = 7 * 24 * 3600


@pytest.fixture
async def world(database: TestDatabase, db: Database, tenant: TenantPeople) -> AsyncIterator[World]:
    # Above the app's 4 MiB client_max_size, so an upload past it shows that uploads are streamed.
    async with simulated_world(
        database, db, tenant, seed=11, token=TOKEN, access_tokens=frozenset({TOKEN}), media_max_bytes=6 * MiB
    ) as world:
        yield world


def _media_message(kind: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "from": CUSTOMER,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": kind,
        kind: content,
        "_name": "Customer",
    }


async def _customer_sends(world: World, message: dict[str, Any]) -> None:
    async with ClientSession() as http:
        response = await post_webhook(http, world.webhook_url, envelope(world.phone_number_id, messages=[message]))
    assert response.status == 200


async def _customer_sends_media(
    world: World, kind: str, data: bytes, mime_type: str, *, filename: str | None = None, **extra: str
) -> str:
    """The customer's file, held by the simulator and announced by a webhook; returns Meta's media id."""
    media_id = world.simulator.add_media(data, mime_type, filename)
    stored = world.simulator.media(media_id)
    assert stored is not None
    content = {"id": media_id, "mime_type": mime_type, "sha256": stored.sha256, **extra}
    if filename is not None:
        content["filename"] = filename
    await _customer_sends(world, _media_message(kind, content))
    return media_id


async def _latest_message(api: Api) -> tuple[str, str]:
    """The conversation in sight and its newest message's id."""
    listed = await api.get("/api/conversations")
    [conversation] = listed.data["items"]
    history = await api.get(f"/api/conversations/{conversation['id']}/messages")
    return conversation["id"], history.data["items"][0]["id"]


@dataclass
class Fetched:
    status: int
    headers: Any
    body: bytes


async def _fetch(api: Api, message_id: str, **headers: str) -> Fetched:
    response = await api.client.get(f"/api/messages/{message_id}/media", headers=headers)
    return Fetched(response.status, response.headers, await response.read())


def _envelope_code(fetched: Fetched) -> str:
    assert fetched.headers["Content-Type"].startswith("application/json")
    return str(orjson.loads(fetched.body)["error"]["code"])


async def test_an_agent_gets_a_customers_image_inline_and_cached_for_the_media_lifetime(
    world: World, tenant: TenantPeople, db: Database
) -> None:
    image = PNG + os.urandom(300_000)  # several chunks of the relay
    media_id = await _customer_sends_media(world, "image", image, "image/png", caption="my receipt")
    agent = await world.browsers.signed_in(tenant.agent)
    _, message_id = await _latest_message(agent)

    fetched = await _fetch(agent, message_id)
    assert fetched.status == 200
    assert fetched.body == image
    assert fetched.headers["Content-Type"] == "image/png"
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"
    assert fetched.headers["Content-Disposition"] == "inline; filename=\"image.png\"; filename*=UTF-8''image.png"
    assert fetched.headers["Content-Security-Policy"] == "sandbox"
    cache_control = fetched.headers["Cache-Control"]
    assert cache_control.startswith("private, max-age=")
    assert SEVEN_DAYS - 120 < int(cache_control.removeprefix("private, max-age=")) <= SEVEN_DAYS
    stored = world.simulator.media(media_id)
    assert stored is not None
    etag = fetched.headers["ETag"]
    assert etag == f'"{stored.sha256}"'

    # The copy the browser holds is answered from our database alone: Meta would now refuse the token.
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update channels set access_token = 'revoked' where id = $1", world.channel_id)
    cached = await _fetch(agent, message_id, **{"If-None-Match": f'W/"other", {etag}'})
    assert (cached.status, cached.body) == (304, b"")
    assert cached.headers["ETag"] == etag
    assert cached.headers["Cache-Control"].startswith("private, max-age=")
    refused = await _fetch(agent, message_id)
    assert (refused.status, _envelope_code(refused)) == (409, "CONFLICT")


@pytest.mark.parametrize(
    ("kind", "declared", "served", "disposition"),
    [
        ("audio", "audio/ogg; codecs=opus", "audio/ogg", "inline"),
        ("video", "video/mp4", "video/mp4", "inline"),
        # An "image" that can carry script, and an HTML page passed off as an image, are downloads.
        ("image", "image/svg+xml", "image/svg+xml", "attachment"),
        ("image", "text/html", "text/html", "attachment"),
        ("document", "not a type", "application/octet-stream", "attachment"),
    ],
)
async def test_only_images_audio_and_video_show_inline(
    kind: str, declared: str, served: str, disposition: str, world: World, tenant: TenantPeople
) -> None:
    data = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    await _customer_sends_media(world, kind, data, declared)
    agent = await world.browsers.signed_in(tenant.agent)
    _, message_id = await _latest_message(agent)
    fetched = await _fetch(agent, message_id)
    assert fetched.status == 200
    assert fetched.body == data
    assert fetched.headers["Content-Type"] == served
    assert fetched.headers["Content-Disposition"].split(";")[0] == disposition
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_document_is_a_download_under_its_own_name(world: World, tenant: TenantPeople) -> None:
    pdf = b"%PDF-1.7\n" + os.urandom(5000)
    await _customer_sends_media(world, "document", pdf, "application/pdf", filename='../Fatura "março".pdf')
    agent = await world.browsers.signed_in(tenant.agent)
    _, message_id = await _latest_message(agent)
    fetched = await _fetch(agent, message_id)
    assert fetched.status == 200
    assert fetched.body == pdf
    assert fetched.headers["Content-Type"] == "application/pdf"
    assert fetched.headers["Content-Disposition"] == (
        "attachment; filename=\"Fatura _mar_o_.pdf\"; filename*=UTF-8''Fatura%20%22mar%C3%A7o%22.pdf"
    )


async def test_media_out_of_sight_is_not_found(
    world: World, tenant: TenantPeople, other_tenant: TenantPeople, db: Database
) -> None:
    await _customer_sends_media(world, "image", PNG + b"x" * 100, "image/png")
    agent = await world.browsers.signed_in(tenant.agent)
    _, message_id = await _latest_message(agent)

    # Not in the queue, not assigned: as if the message did not exist; likewise for another tenant's admin.
    outsider = await world.browsers.signed_in(tenant.other_agent)
    stranger = await world.browsers.signed_in(other_tenant.admin)
    for api in (outsider, stranger):
        fetched = await _fetch(api, message_id)
        assert (fetched.status, _envelope_code(fetched)) == (404, "NOT_FOUND")

    # A message without media is not found either.
    await _customer_sends(world, text_message(CUSTOMER, "and some words"))
    _, text_id = await _latest_message(agent)
    fetched = await _fetch(agent, text_id)
    assert (fetched.status, _envelope_code(fetched)) == (404, "NOT_FOUND")

    anonymous = await world.browsers.new()
    fetched = await _fetch(anonymous, message_id)
    assert (fetched.status, _envelope_code(fetched)) == (401, "UNAUTHENTICATED")


async def test_media_whatsapp_no_longer_has_is_not_found(world: World, tenant: TenantPeople) -> None:
    await _customer_sends(world, _media_message("image", {"id": "1234567890123", "mime_type": "image/jpeg"}))
    agent = await world.browsers.signed_in(tenant.agent)
    _, message_id = await _latest_message(agent)
    fetched = await _fetch(agent, message_id)
    assert (fetched.status, _envelope_code(fetched)) == (404, "NOT_FOUND")


async def test_media_over_the_size_limit_is_refused(world: World, tenant: TenantPeople) -> None:
    await _customer_sends_media(world, "video", b"\0" * (6 * MiB + 1), "video/mp4")
    agent = await world.browsers.signed_in(tenant.agent)
    _, message_id = await _latest_message(agent)
    fetched = await _fetch(agent, message_id)
    assert (fetched.status, _envelope_code(fetched)) == (413, "PAYLOAD_TOO_LARGE")


async def test_whatsapp_out_of_reach_is_unavailable(browsers: Browsers, tenant: TenantPeople, db: Database) -> None:
    # The plain test server's Graph API URL leads nowhere.
    channel_id, _, conversation_id = await open_conversation(db, tenant, wa_id=CUSTOMER)
    async with tenant_tx(db, tenant.id) as conn:
        message_id = await conn.fetchval(
            "insert into messages (tenant_id, conversation_id, channel_id, direction, kind, media, status) "
            "values ($1, $2, $3, 'inbound', 'image', $4, 'received') returning id",
            tenant.id,
            conversation_id,
            channel_id,
            {"id": "1234567890123", "mime_type": "image/jpeg"},
        )
    admin = await browsers.signed_in(tenant.admin)
    fetched = await _fetch(admin, str(message_id))
    assert (fetched.status, _envelope_code(fetched)) == (503, "UNAVAILABLE")
    assert "Retry-After" in fetched.headers


def _form(data: bytes, content_type: str, filename: str = "photo.png", *, name: str = "file") -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)  # the file name as a browser sends it
    # A stream: aiohttp warns about large raw-bytes fields, and sends the same bytes either way.
    form.add_field(name, io.BytesIO(data), filename=filename, content_type=content_type)
    return form


async def _upload(api: Api, conversation_id: str, form: aiohttp.FormData) -> Answer:
    return await api.call("POST", f"/api/conversations/{conversation_id}/media", data=form)


# GraphClient.upload_media hands aiohttp the file as bytes, which it warns about past 1 MiB.
async def test_an_agent_uploads_an_image_and_sends_it_by_its_media_id(world: World, tenant: TenantPeople) -> None:
    await _customer_sends(world, text_message(CUSTOMER, "can you send me the photo?"))
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id, _ = await _latest_message(agent)
    assert (await agent.post(f"/api/conversations/{conversation_id}/assign", {})).status == 200

    image = PNG + os.urandom(int(4.5 * MiB))  # more than the app's client_max_size
    uploaded = await _upload(agent, conversation_id, _form(image, "image/png", "../../home/me/photo.png"))
    assert uploaded.status == 201, uploaded.body
    media = uploaded.data
    assert media == {
        "media_id": media["media_id"],
        "kind": "image",
        "mime_type": "image/png",
        "filename": "photo.png",
        "size": len(image),
    }
    [held] = world.simulator.uploads
    assert (held.id, held.sha256, held.mime_type, held.phone_number_id) == (
        media["media_id"],
        hashlib.sha256(image).hexdigest(),
        "image/png",
        world.phone_number_id,
    )

    sent = await agent.post(
        f"/api/conversations/{conversation_id}/messages",
        {"media": {"id": media["media_id"], "kind": "image", "caption": "here it is"}},
    )
    assert sent.status == 201, sent.body
    assert sent.data["status"] == "sent"
    [delivered] = [s for s in world.simulator.sent if s.wamid == sent.data["wa_message_id"]]
    assert delivered.type == "image"
    assert delivered.request["image"] == {"id": media["media_id"], "caption": "here it is"}

    # What the agent sent can be seen again like any media.
    fetched = await _fetch(agent, sent.data["id"])
    assert (fetched.status, fetched.headers["Content-Type"]) == (200, "image/png")
    assert hashlib.sha256(fetched.body).digest() == hashlib.sha256(image).digest()


async def test_a_voice_note_is_uploaded_and_sent_as_audio(world: World, tenant: TenantPeople) -> None:
    await _customer_sends(world, text_message(CUSTOMER, "please send a voice note"))
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id, _ = await _latest_message(agent)
    assert (await agent.post(f"/api/conversations/{conversation_id}/assign", {})).status == 200

    voice = b"OggS" + os.urandom(2048)
    uploaded = await _upload(agent, conversation_id, _form(voice, "audio/ogg", "note.ogg"))
    assert uploaded.status == 201, uploaded.body
    assert (uploaded.data["kind"], uploaded.data["mime_type"]) == ("audio", "audio/ogg")
    sent = await agent.post(
        f"/api/conversations/{conversation_id}/messages",
        {"media": {"id": uploaded.data["media_id"], "kind": "audio"}},
    )
    assert sent.data["status"] == "sent"
    [delivered] = [s for s in world.simulator.sent if s.wamid == sent.data["wa_message_id"]]
    assert delivered.request["audio"] == {"id": uploaded.data["media_id"]}
    # An "audio" file whose bytes are something else is refused before WhatsApp.
    fake = await _upload(agent, conversation_id, _form(PNG + b"x" * 64, "audio/mpeg", "song.mp3"))
    assert fake.status == 400


async def test_an_upload_is_checked_before_it_goes_to_whatsapp(world: World, tenant: TenantPeople) -> None:
    await _customer_sends(world, text_message(CUSTOMER, "hello"))
    agent = await world.browsers.signed_in(tenant.agent)
    conversation_id, _ = await _latest_message(agent)

    # Replying needs the conversation; so does uploading.
    early = await _upload(agent, conversation_id, _form(PNG + b"x", "image/png"))
    assert (early.status, early.code) == (403, "FORBIDDEN")
    assert (await agent.post(f"/api/conversations/{conversation_id}/assign", {})).status == 200

    refusals: list[tuple[aiohttp.FormData | None, int, str]] = [
        (_form(b"<html><script>alert(1)</script></html>", "image/png"), 400, "VALIDATION_ERROR"),
        (_form(b"GIF89a" + b"\0" * 10, "image/jpeg", "a.jpg"), 400, "VALIDATION_ERROR"),
        (_form(b"%PDF-1.4\0", "text/plain", "a.txt"), 400, "VALIDATION_ERROR"),
        (_form(b"<html></html>", "text/html", "a.html"), 400, "VALIDATION_ERROR"),
        (_form(b"", "application/pdf", "a.pdf"), 400, "VALIDATION_ERROR"),
        (_form(PNG + b"x", "image/png", name="picture"), 400, "VALIDATION_ERROR"),
        (_form(PNG + b"\0" * (5 * MiB), "image/png"), 413, "PAYLOAD_TOO_LARGE"),
        # Meta takes documents up to 100 MB; this console is set to 6 MiB.
        (_form(b"%PDF-1.4\n" + b"\0" * (6 * MiB), "application/pdf", "big.pdf"), 413, "PAYLOAD_TOO_LARGE"),
        (None, 400, "VALIDATION_ERROR"),
    ]
    for form, status, code in refusals:
        answer = (
            await _upload(agent, conversation_id, form)
            if form is not None
            else await agent.post(f"/api/conversations/{conversation_id}/media", {"file": "x"})
        )
        assert (answer.status, answer.code) == (status, code), answer.body
    two_files = _form(PNG + b"x", "image/png")
    two_files.add_field("file", io.BytesIO(PNG + b"y"), filename="again.png", content_type="image/png")
    answer = await _upload(agent, conversation_id, two_files)
    assert (answer.status, answer.code) == (400, "VALIDATION_ERROR")
    assert world.simulator.uploads == []

    text = await _upload(agent, conversation_id, _form("Olá, segue o orçamento.".encode(), "text/plain", "o.txt"))
    assert text.status == 201, text.body
    assert (text.data["kind"], text.data["mime_type"], text.data["filename"]) == ("document", "text/plain", "o.txt")

    missing = await _upload(agent, str(uuid.uuid4()), _form(PNG + b"x", "image/png"))
    assert (missing.status, missing.code) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("given", "served"),
    [
        ("IMAGE/JPEG", "image/jpeg"),
        ("audio/ogg; codecs=opus", "audio/ogg"),
        ("text/html;\r\nSet-Cookie: a=b", "text/html"),
        ("text/html\r\nSet-Cookie: a=b", "application/octet-stream"),
        ("image/", "application/octet-stream"),
        ("", "application/octet-stream"),
    ],
)
def test_a_served_type_is_a_bare_type_and_subtype(given: str, served: str) -> None:
    assert media.served_type(given) == served


def test_a_file_name_loses_folders_and_invisible_characters() -> None:
    assert media.clean_filename("..\\..\\evil\u202efdp.exe", fallback="x") == "evilfdp.exe"
    assert media.clean_filename("\x00\n", fallback="image.jpg") == "image.jpg"
    assert len(media.clean_filename("a" * 1000, fallback="x")) == media.MAX_FILENAME
    header = media.content_disposition("image/svg+xml", 'a";b\r\n.svg')
    assert header == "attachment; filename=\"a__b__.svg\"; filename*=UTF-8''a%22%3Bb%0D%0A.svg"


_PART = b'--b0\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", _PART + PNG + b"\r\n--b0--\r\n"),  # no boundary named
        ("multipart/form-data; boundary=b0", b"no boundary anywhere"),
        ("multipart/form-data; boundary=b0", _PART + PNG + b"x" * 100_000),  # never closed
        ("multipart/form-data; boundary=b0", _PART.replace(b"Content-Type: image/png\r\n", b"") + PNG + b"\r\n--b0--"),
        ("multipart/form-data; boundary=b0", b"--b0\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b0--\r\n"),
        ("multipart/form-data; boundary=b0", b"--b0--\r\n"),
    ],
)
async def test_a_malformed_upload_is_refused_as_invalid(
    content_type: str, body: bytes, world: World, tenant: TenantPeople
) -> None:
    await _customer_sends(world, text_message(CUSTOMER, "hello"))
    admin = await world.browsers.signed_in(tenant.admin)
    conversation_id, _ = await _latest_message(admin)
    answer = await admin.call(
        "POST", f"/api/conversations/{conversation_id}/media", data=body, headers={"Content-Type": content_type}
    )
    assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), answer.body
    assert world.simulator.uploads == []


async def test_an_upload_is_cut_off_when_it_stops_sending_but_not_while_it_keeps_sending(
    database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(
        database, db, tenant, seed=12, token=TOKEN, access_tokens=frozenset({TOKEN}), upload_idle_timeout_seconds=1.0
    ) as world:
        await _customer_sends(world, text_message(CUSTOMER, "hello"))
        agent = await world.browsers.signed_in(tenant.agent)
        conversation_id, _ = await _latest_message(agent)
        assert (await agent.post(f"/api/conversations/{conversation_id}/assign", {})).status == 200
        path = f"/api/conversations/{conversation_id}/media"
        headers = {"Content-Type": "multipart/form-data; boundary=b0"}

        async def slow_but_steady() -> AsyncIterator[bytes]:
            # Longer in all than the idle deadline, never idle as long: a slow link, which must not be cut off.
            yield _PART + PNG
            for _ in range(8):
                await asyncio.sleep(0.3)
                yield b"x" * 1000
            yield b"\r\n--b0--\r\n"

        answer = await agent.call("POST", path, data=slow_but_steady(), headers=headers)
        assert answer.status == 201, answer.body

        async def stalls() -> AsyncIterator[bytes]:
            yield _PART + PNG
            await asyncio.sleep(3600)
            yield b""

        async with asyncio.timeout(15):
            answer = await agent.call("POST", path, data=stalls(), headers=headers)
        assert (answer.status, answer.code) == (408, "REQUEST_TIMEOUT"), answer.body
