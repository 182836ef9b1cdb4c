"""The Graph API client against a local server playing Meta: what it sends, what it retries and what it
refuses to, the throughput per number, media both ways, and the reasons an agent is shown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpServer

from fiv_console.serving import free_port
from fiv_console.whatsapp.client import (
    GraphClient,
    GraphError,
    MediaInfo,
    MediaTooLarge,
    RetryPolicy,
    SentMessage,
    TokenBuckets,
    media_payload,
    reaction_payload,
    template_payload,
    text_payload,
)

PNID = "106540352242922"
TOKEN = "EAAGsecret-access-token-0123456789"
WA_ID = "5511999990000"
BODY = "my secret order number is 4242"
FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.01, total_time=5.0, max_retry_after=1.0)
MEDIA = bytes(range(256)) * 1000  # 256,000 bytes

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, Any]
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


def meta_error(code: int, *, status: int = 400, details: str | None = None, **headers: str) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        error: dict[str, Any] = {
            "message": f"(#{code}) something",
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "AbCdEf123",
        }
        if details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": details}
        return _json({"error": error}, status=status, headers=headers)

    return answer


def plain(status: int, text: str = "<html>Bad gateway</html>", **headers: str) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=text, content_type="text/html", headers=headers)

    return answer


def body(payload: Any) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return _json(payload)

    return answer


async def drop(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()


def stall(seconds: float) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response()

    return answer


def _json(payload: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers)


class FakeMeta:
    """Meta as scripted: each request is recorded and takes the next scripted answer, else the route's own."""

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.received: list[Received] = []
        self.base_url = ""
        self.files_url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v23.0/{number}/messages", self._scripted(self._messages))
        app.router.add_post("/v23.0/{number}/media", self._scripted(self._upload))
        app.router.add_get("/v23.0/{media_id}", self._scripted(self._media_info))
        app.router.add_get("/files/{name}", self._scripted(self._file))
        return app

    def _scripted(self, default: Answer) -> Answer:
        async def handler(request: web.Request) -> web.StreamResponse:
            form: dict[str, Any] = {}
            raw = b""
            if request.content_type == "multipart/form-data":
                for name, value in (await request.post()).items():
                    is_file = isinstance(value, web.FileField)
                    form[name] = (value.filename, value.content_type, value.file.read()) if is_file else value
            else:
                raw = await request.read()
            self.received.append(
                Received(request.method, request.path, dict(request.headers), raw, form, time.monotonic())
            )
            return await (self.script.pop(0) if self.script else default)(request)

        return handler

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        sent = orjson.loads(await request.read())
        if sent.get("status") == "read":
            return _json({"success": True})
        # Like our simulator: a repeated Idempotency-Key gets the same wamid.
        wamid = f"wamid.{request.headers.get('Idempotency-Key', 'none')}"
        contacts = [{"input": sent["to"], "wa_id": WA_ID}]
        return _json({"messaging_product": "whatsapp", "contacts": contacts, "messages": [{"id": wamid}]})

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        return _json({"id": "4490709327384033"})

    async def _media_info(self, request: web.Request) -> web.StreamResponse:
        media_id = request.match_info["media_id"]
        url = f"{self.files_url}/{media_id}"
        return _json(
            {"url": url, "mime_type": "image/jpeg", "sha256": "abc123", "file_size": len(MEDIA), "id": media_id}
        )

    async def _file(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        if "chunked" in request.query:
            response.enable_chunked_encoding()  # no Content-Length: only counting the bytes can stop it
        else:
            response.content_length = len(MEDIA)
        await response.prepare(request)
        for start in range(0, len(MEDIA), 50_000):
            await response.write(MEDIA[start : start + 50_000])
        await response.write_eof()
        return response


@pytest.fixture
async def meta(aiohttp_server: AiohttpServer) -> FakeMeta:
    fake = FakeMeta()
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("/v23.0"))
    fake.files_url = str(server.make_url("/files"))
    return fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


def client(session: aiohttp.ClientSession, meta: FakeMeta, **options: Any) -> GraphClient:
    options.setdefault("retry", FAST)
    return GraphClient(session, meta.base_url, **options)


async def test_a_text_is_sent_to_the_number_s_path_with_the_channel_s_token(
    session: aiohttp.ClientSession, meta: FakeMeta
) -> None:
    payload = text_payload(WA_ID, BODY)
    sent = await client(session, meta).send_message(PNID, TOKEN, payload, "msg-1")
    assert sent == SentMessage(wamid="wamid.msg-1", wa_id=WA_ID)
    [request] = meta.received
    assert (request.method, request.path) == ("POST", f"/v23.0/{PNID}/messages")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "msg-1"
    assert request.json() == payload


async def test_without_contacts_the_wa_id_is_none(session: aiohttp.ClientSession, meta: FakeMeta) -> None:
    meta.script = [body({"messaging_product": "whatsapp", "messages": [{"id": "wamid.X"}]})]
    sent = await client(session, meta).send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "k")
    assert sent == SentMessage(wamid="wamid.X", wa_id=None)


async def test_the_callback_data_goes_in_the_payload(session: aiohttp.ClientSession, meta: FakeMeta) -> None:
    payload = text_payload(WA_ID, "hi")
    await client(session, meta).send_message(PNID, TOKEN, payload, "msg-7", callback_data="msg-7")
    assert meta.received[0].json() == {**payload, "biz_opaque_callback_data": "msg-7"}
    assert "biz_opaque_callback_data" not in payload
    with pytest.raises(ValueError, match="512"):
        await client(session, meta).send_message(PNID, TOKEN, payload, "k", callback_data="x" * 513)


@pytest.mark.parametrize("code", [130429, 131056, 80007, 4, 131000, 131016, 1, 2])
async def test_rate_limits_and_transient_errors_are_retried_with_the_same_key(
    session: aiohttp.ClientSession, meta: FakeMeta, code: int
) -> None:
    meta.script = [meta_error(code), meta_error(code)]
    sent = await client(session, meta).send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "msg-2")
    assert sent.wamid == "wamid.msg-2"
    assert [r.headers["Idempotency-Key"] for r in meta.received] == ["msg-2"] * 3
    assert len({r.body for r in meta.received}) == 1


@pytest.mark.parametrize(
    ("code", "status"),
    [
        *((code, 400) for code in (131047, 131026, 131051, 100, 131008, 131009, 132000, 131052, 131053, 131031)),
        (132001, 404),
        (190, 401),
        (131026, 500),
        (100, 503),
    ],
)
async def test_other_codes_are_not_retried_whatever_the_http_status(
    session: aiohttp.ClientSession, meta: FakeMeta, code: int, status: int
) -> None:
    meta.script = [meta_error(code, status=status, details="what Meta says")]
    with pytest.raises(GraphError) as caught:
        await client(session, meta).send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "k")
    error = caught.value
    assert len(meta.received) == 1
    assert (error.code, error.http_status, error.retryable) == (code, status, False)
    assert (error.message, error.details, error.fbtrace_id) == (f"(#{code}) something", "what Meta says", "AbCdEf123")
    assert error.reason.endswith(".")


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (131047, "24 hours"),
        (131026, "could not deliver"),
        (130429, "Too many messages"),
        (190, "access token has expired"),
        (131031, "(error 131031): what Meta says"),
    ],
)
async def test_the_reason_tells_the_agent_what_happened(
    session: aiohttp.ClientSession, meta: FakeMeta, code: int, words: str
) -> None:
    meta.script = [meta_error(code, details="what Meta says")] * FAST.attempts
    with pytest.raises(GraphError) as caught:
        await client(session, meta).send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "k")
    assert words in caught.value.reason
    assert words in str(caught.value)


async def test_a_failure_is_stored_as_code_title_message_details_and_reason(
    session: aiohttp.ClientSession, meta: FakeMeta
) -> None:
    meta.script = [meta_error(131047, details="Message failed to send because more than 24 hours have passed")]
    with pytest.raises(GraphError) as caught:
        await client(session, meta).send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "k")
    assert caught.value.stored_error() == {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "(#131047) something",
        "details": "Message failed to send because more than 24 hours have passed",
        "reason": "More than 24 hours have passed since the customer last wrote; only a template can be sent.",
    }


@pytest.mark.parametrize(
    "failure",
    [plain(502), plain(500, "{}"), plain(503, **{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), drop, stall(0.5)],
    ids=["502", "500-not-meta-json", "503-retry-after-date", "dropped", "timed-out"],
)
async def test_server_errors_dropped_connections_and_timeouts_are_retried(
    session: aiohttp.ClientSession, meta: FakeMeta, failure: Answer
) -> None:
    meta.script = [failure]
    graph = client(session, meta, timeout=aiohttp.ClientTimeout(total=0.1))
    sent = await graph.send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "msg-3")
    assert sent.wamid == "wamid.msg-3"
    assert [r.headers["Idempotency-Key"] for r in meta.received] == ["msg-3", "msg-3"]


async def test_retries_stop_after_the_last_attempt(session: aiohttp.ClientSession, meta: FakeMeta) -> None:
    meta.script = [meta_error(130429)] * 10
    with pytest.raises(GraphError) as caught:
        await client(session, meta).send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "k")
    assert len(meta.received) == FAST.attempts
    assert (caught.value.code, caught.value.retryable) == (130429, True)


async def test_retries_stop_when_the_total_time_is_spent(session: aiohttp.ClientSession, meta: FakeMeta) -> None:
    meta.script = [plain(503)] * 20
    retry = RetryPolicy(attempts=20, base_delay=0.05, max_delay=0.05, total_time=0.2)
    started = time.monotonic()
    with pytest.raises(GraphError) as caught:
        await client(session, meta, retry=retry).send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "k")
    assert 2 <= len(meta.received) < 20
    assert time.monotonic() - started < 1.0
    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (None, 503, True)
    assert "HTTP 503" in caught.value.reason


async def test_retry_after_is_honoured_up_to_its_bound(session: aiohttp.ClientSession, meta: FakeMeta) -> None:
    meta.script = [plain(503, **{"Retry-After": "0.3"}), meta_error(4, **{"Retry-After": "3600"})]
    retry = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.001, total_time=5.0, max_retry_after=0.4)
    await client(session, meta, retry=retry).send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "k")
    first, second, third = (r.at for r in meta.received)
    assert second - first >= 0.25
    assert 0.35 <= third - second < 2.0


async def test_an_unreachable_graph_is_retried_then_reported(session: aiohttp.ClientSession) -> None:
    graph = GraphClient(session, f"http://127.0.0.1:{free_port()}/v23.0", retry=FAST)
    with pytest.raises(GraphError) as caught:
        await graph.send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "k")
    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (None, None, True)
    assert caught.value.reason == "WhatsApp could not be reached; try again."


@pytest.mark.parametrize(
    "answer",
    [
        {"messaging_product": "whatsapp", "contacts": [{"wa_id": WA_ID}]},
        {"messaging_product": "whatsapp", "messages": []},
        {"messages": [{"id": ""}]},
        {"messages": [{"id": "w" * 257}]},
        ["not", "an", "object"],
    ],
)
async def test_a_success_without_a_wamid_is_an_error_not_retried(
    session: aiohttp.ClientSession, meta: FakeMeta, answer: Any
) -> None:
    meta.script = [body(answer)]
    with pytest.raises(GraphError) as caught:
        await client(session, meta).send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), "k")
    assert len(meta.received) == 1
    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (None, 200, False)
    assert "does not understand" in caught.value.reason


async def test_tokens_and_message_bodies_are_never_logged(
    session: aiohttp.ClientSession, meta: FakeMeta, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    meta.script = [meta_error(131000), plain(502), drop]
    await client(session, meta).send_message(PNID, TOKEN, text_payload(WA_ID, BODY), "k")
    retries = [r for r in caplog.records if r.name == "fiv_console.whatsapp.client"]
    assert [r.levelno for r in retries] == [logging.WARNING] * 3
    for record in caplog.records:
        everything = repr(record.__dict__)
        assert TOKEN not in everything
        assert BODY not in everything


async def test_a_read_receipt_and_the_typing_indicator(session: aiohttp.ClientSession, meta: FakeMeta) -> None:
    graph = client(session, meta)
    await graph.mark_read(PNID, TOKEN, "wamid.IN1")
    await graph.mark_read(PNID, TOKEN, "wamid.IN2", typing=True)
    assert [(r.path, r.headers["Authorization"]) for r in meta.received] == [
        (f"/v23.0/{PNID}/messages", f"Bearer {TOKEN}")
    ] * 2
    assert [r.json() for r in meta.received] == [
        {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1"},
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.IN2",
            "typing_indicator": {"type": "text"},
        },
    ]
    meta.script = [body({"success": False})]
    with pytest.raises(GraphError, match="does not understand"):
        await graph.mark_read(PNID, TOKEN, "wamid.IN3")


async def test_media_info_and_download_carry_the_bearer_token(session: aiohttp.ClientSession, meta: FakeMeta) -> None:
    graph = client(session, meta)
    info = await graph.media_info("1234567890", TOKEN)
    assert info == MediaInfo(
        id="1234567890",
        url=f"{meta.files_url}/1234567890",
        mime_type="image/jpeg",
        sha256="abc123",
        file_size=len(MEDIA),
    )
    async with graph.download_media(info.url, TOKEN, max_bytes=len(MEDIA)) as download:
        assert (download.content_type, download.content_length) == ("image/jpeg", len(MEDIA))
        received = b"".join([chunk async for chunk in download])
    assert received == MEDIA
    assert [(r.method, r.path, r.headers["Authorization"]) for r in meta.received] == [
        ("GET", "/v23.0/1234567890", f"Bearer {TOKEN}"),
        ("GET", "/files/1234567890", f"Bearer {TOKEN}"),
    ]


async def test_a_download_over_the_limit_is_refused_from_its_length(
    session: aiohttp.ClientSession, meta: FakeMeta
) -> None:
    with pytest.raises(MediaTooLarge) as caught:
        async with client(session, meta).download_media(f"{meta.files_url}/big", TOKEN, max_bytes=len(MEDIA) - 1):
            pytest.fail("the download was opened")
    assert (caught.value.retryable, caught.value.code) == (False, None)
    assert "larger than" in caught.value.reason


async def test_a_download_without_a_length_is_stopped_at_the_limit(
    session: aiohttp.ClientSession, meta: FakeMeta
) -> None:
    chunks: list[bytes] = []

    async def download_into_chunks() -> None:
        async with client(session, meta).download_media(f"{meta.files_url}/big?chunked", TOKEN, 100_000) as download:
            assert download.content_length is None
            async for chunk in download:
                chunks.append(chunk)

    with pytest.raises(MediaTooLarge):
        await download_into_chunks()
    assert 0 < sum(len(chunk) for chunk in chunks) <= 100_000


async def test_a_download_is_retried_on_a_server_error_and_not_on_a_missing_file(
    session: aiohttp.ClientSession, meta: FakeMeta
) -> None:
    graph = client(session, meta)
    meta.script = [plain(503)]
    async with graph.download_media(f"{meta.files_url}/x", TOKEN, max_bytes=len(MEDIA)) as download:
        assert len(b"".join([chunk async for chunk in download])) == len(MEDIA)
    meta.script = [plain(404, "gone")]
    with pytest.raises(GraphError) as caught:
        async with graph.download_media(f"{meta.files_url}/x", TOKEN, max_bytes=len(MEDIA)):
            pytest.fail("the download was opened")
    assert (caught.value.http_status, caught.value.retryable) == (404, False)
    assert len(meta.received) == 3


async def test_an_upload_is_a_multipart_post_of_the_file_sent_whole_on_each_attempt(
    session: aiohttp.ClientSession, meta: FakeMeta
) -> None:
    meta.script = [plain(502)]
    media_id = await client(session, meta).upload_media(PNID, TOKEN, b"%PDF-1.7 ...", "application/pdf", "bill.pdf")
    assert media_id == "4490709327384033"
    assert len(meta.received) == 2
    for request in meta.received:
        assert (request.method, request.path, request.headers["Authorization"]) == (
            "POST",
            f"/v23.0/{PNID}/media",
            f"Bearer {TOKEN}",
        )
        assert request.form == {
            "messaging_product": "whatsapp",
            "type": "application/pdf",
            "file": ("bill.pdf", "application/pdf", b"%PDF-1.7 ..."),
        }


class FakeTime:
    """A clock that moves only when a sleeper on it is done (sequential takes), or not at all (concurrent
    ones, which all ask at the same instant). Rates are powers of two so that slots add up exactly."""

    def __init__(self, *, advances: bool = True) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._advances = advances

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._advances:
            self.now += seconds
        await asyncio.sleep(0)


async def test_a_bucket_spaces_requests_at_its_rate_after_its_burst() -> None:
    fake = FakeTime()
    buckets = TokenBuckets(rate=16, burst=4, clock=fake.clock, sleep=fake.sleep)
    for _ in range(30):
        await buckets.take(PNID)
    assert fake.sleeps == [1 / 16] * 26
    assert fake.now == 26 / 16
    await buckets.take("another number")
    assert len(fake.sleeps) == 26


async def test_concurrent_requests_get_successive_slots_and_the_far_ones_are_refused() -> None:
    fake = FakeTime(advances=False)
    buckets = TokenBuckets(rate=16, burst=1, max_wait=1.0, clock=fake.clock, sleep=fake.sleep)
    outcomes = await asyncio.gather(*(buckets.take(PNID) for _ in range(30)), return_exceptions=True)
    refused = [outcome for outcome in outcomes if isinstance(outcome, GraphError)]
    assert outcomes[:17] == [None] * 17
    assert len(refused) == 13
    assert all(error.retryable and "waiting to be sent" in error.reason for error in refused)
    assert fake.sleeps == [n / 16 for n in range(1, 17)]


async def test_buckets_are_forgotten_once_full_and_bounded_in_number() -> None:
    fake = FakeTime()
    buckets = TokenBuckets(rate=16, burst=1, max_numbers=2, clock=fake.clock, sleep=fake.sleep)
    for number in ("a", "b", "c"):
        await buckets.take(number)
    assert len(buckets) == 2
    await buckets.take("a")  # "a" was the oldest and evicted, so its bucket starts full
    assert fake.sleeps == []
    fake.now += 1.0
    await buckets.take("d")
    assert len(buckets) == 1


async def test_sends_and_read_receipts_are_limited_per_number(session: aiohttp.ClientSession, meta: FakeMeta) -> None:
    graph = client(session, meta, buckets=TokenBuckets(rate=20, burst=1))
    started = time.monotonic()
    await asyncio.gather(
        *(graph.send_message(PNID, TOKEN, text_payload(WA_ID, "hi"), f"k{n}") for n in range(8)),
        *(graph.mark_read(PNID, TOKEN, f"wamid.{n}") for n in range(3)),
    )
    assert time.monotonic() - started >= 0.4  # 11 requests at 20 a second: 10 waits of 50 ms
    started = time.monotonic()
    await graph.send_message("another number", TOKEN, text_payload(WA_ID, "hi"), "k")
    assert time.monotonic() - started < 0.4


def test_payload_builders() -> None:
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID}
    assert text_payload(WA_ID, "Olá", reply_to="wamid.IN", preview_url=True) == {
        **base,
        "type": "text",
        "text": {"body": "Olá", "preview_url": True},
        "context": {"message_id": "wamid.IN"},
    }
    assert template_payload(WA_ID, "order_ready", "pt_BR", ["Ana", "42"]) == {
        **base,
        "type": "template",
        "template": {
            "name": "order_ready",
            "language": {"code": "pt_BR"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "42"}]}
            ],
        },
    }
    assert template_payload(WA_ID, "hello_world", "en_US", []) == {
        **base,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    assert media_payload(WA_ID, "document", "123", caption="Your bill", filename="bill.pdf") == {
        **base,
        "type": "document",
        "document": {"id": "123", "caption": "Your bill", "filename": "bill.pdf"},
    }
    assert media_payload(WA_ID, "audio", "456") == {**base, "type": "audio", "audio": {"id": "456"}}
    assert reaction_payload(WA_ID, "wamid.IN", "👍") == {
        **base,
        "type": "reaction",
        "reaction": {"message_id": "wamid.IN", "emoji": "👍"},
    }
    with pytest.raises(ValueError, match="caption"):
        media_payload(WA_ID, "audio", "456", caption="no")
    with pytest.raises(ValueError, match="file name"):
        media_payload(WA_ID, "image", "456", filename="a.jpg")
