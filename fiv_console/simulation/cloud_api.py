"""A stand-in for Meta's WhatsApp Cloud API (the Graph API) that tests, benchmarks and the demo run for real.

`create_simulator_app(config)` builds the aiohttp app (its `GraphSimulator` is `app[SIMULATOR]`);
`SimulatorServer` runs one on a loopback port and says its `graph_url`, the console's WHATSAPP_GRAPH_URL.
Routes, under any version prefix (`/v23.0/...`), each needing `Authorization: Bearer <token>` (a missing
or refused token is Meta's 401, code 190):
- `POST /v{N}/{phone_number_id}/messages`: a send, validated as Meta does (error 100 with HTTP 400), and
  answered with Meta's success shape and a new wamid. An `Idempotency-Key` header seen before gets the
  first answer again and records nothing. The same route takes read marks (`"status":"read"`).
- `POST /v{N}/{phone_number_id}/media`: a multipart upload (`messaging_product`, `type`, `file`) → `{"id"}`.
- `GET /v{N}/{media_id}`: the media's metadata, with a download URL on this server valid for 5 minutes;
  `GET` that URL: the bytes.
- `GET /v{N}/{waba_id}/message_templates`: the account's templates (`config.templates`, by default the
  realistic set of `simulation.templates`) in Meta's pages (`limit`, `after`); another account's id is
  Meta's error 100. Template sends are checked against them as Meta does (132001, 132000).
- `GET /v{N}/{group_id}?fields=...`: a group the business is in (`groups`, see `simulation.groups`), as
  Meta's "Get group info" answers; an unknown group is Meta's error 100.

Errors by recipient, for the console's client to meet Meta's answers (the rules are in `graph_rules`). A
`to` whose digits end in `0` and a code of `REJECTED_RECIPIENTS` is refused at once with that error
(131047, the 24-hour window, spares templates); one ending in `0` and a code of `FAILED_RECIPIENTS` is
accepted and then gets a `failed` status webhook with that error, as Meta reports undeliverable messages
(131026) only after accepting them.
A media `id` the simulator does not hold fails the same way, with 131053. Tests can also script the next
answers of a route with `fail_next`.

After each accepted send, signed status webhooks go to `config.console_url`: `sent`, `delivered` and
(by `read_probability`) `read`, one per POST in Meta's statuses envelope, each after its delay of
`status_delays`, maybe twice (`duplicate_probability`) or in shuffled order (`shuffle`). A console that
answers anything but 200 gets the same bytes again, `webhook_attempts` times at most, with doubling
delays. The app's cleanup cancels the deliveries still pending.

Everything received and delivered is kept for inspection: `sent` (each request's body as received, a
template's `components` included), `read_marks`, `uploads`, `template_listings`, `rejections`, `webhooks`
(every attempt, with the console's answer).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import orjson
from aiohttp import web
from pydantic import ValidationError

from fiv_console.simulation.envelopes import (
    DEFAULT_WABA_ID,
    contact_object,
    new_wamid,
    status_object,
    statuses_envelope,
    webhook_headers,
)
from fiv_console.simulation.graph_rules import (
    FAILED_RECIPIENTS,
    INVALID_TOKEN,
    MAX_UPLOAD,
    MB,
    MEDIA_LIMITS,
    REJECTED_RECIPIENTS,
    MetaError,
    ReadMarkRequest,
    SendRequest,
    convention,
    describe,
    meta_error,
)
from fiv_console.simulation.groups import Groups
from fiv_console.simulation.templates import DEFAULT_TEMPLATES, listing, refusal, views
from fiv_console.whatsapp.signature import SIGNATURE_HEADER

log = logging.getLogger(__name__)

DEFAULT_VERSION = "v23.0"
MEDIA_URL_LIFETIME_SECONDS = 300
DOWNLOAD_PATH = "/whatsapp_business/attachments/"
_VERSION = r"{version:v[0-9]+(?:\.[0-9]+)?}"

Target = Literal["send", "read", "upload", "templates", "group"]
"""What a scripted failure answers: a send, a read mark, a media upload, a template listing, or a group's info."""


# --- what the simulator keeps ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    app_secret: bytes  # signs the status webhooks (the console's WHATSAPP_APP_SECRET)
    console_url: str | None = None  # the console's webhook URL; None: no status webhooks
    display_numbers: Mapping[str, str] = field(default_factory=dict)  # phone_number_id -> digits, for webhooks
    waba_id: str = DEFAULT_WABA_ID
    access_tokens: frozenset[str] | None = None  # None: any non-empty bearer token is accepted
    # The account's templates as Meta lists them; None: any template is taken, and none is listed.
    templates: tuple[Mapping[str, Any], ...] | None = DEFAULT_TEMPLATES
    template_page_limit: int = 100  # the most templates one page holds, whatever `limit` asks
    status_delays: tuple[float, float, float] = (0.1, 0.5, 2.0)  # accepted->sent, sent->delivered, ->read
    read_probability: float = 1.0
    duplicate_probability: float = 0.0  # each status webhook is delivered a second time with this chance
    shuffle: bool = False  # deliver a message's statuses in random order
    seed: int | None = None
    webhook_attempts: int = 4
    webhook_retry_delay: float = 0.5  # before the second attempt; doubled for each further one
    webhook_timeout: float = 10.0

    def display_number(self, phone_number_id: str) -> str:
        return self.display_numbers.get(phone_number_id, "15550000000")


@dataclass(frozen=True, slots=True)
class SentMessage:
    wamid: str
    phone_number_id: str
    to: str  # as the client wrote it (`to`, or `recipient`)
    wa_id: str  # its digits, or the BSUID it was sent to
    type: str
    request: dict[str, Any]  # the JSON body as received
    token: str
    idempotency_key: str | None
    received_at: float  # Unix seconds


@dataclass(frozen=True, slots=True)
class ReadMark:
    phone_number_id: str
    message_id: str
    typing_indicator: bool
    token: str
    received_at: float


@dataclass(frozen=True, slots=True)
class TemplateListing:
    waba_id: str
    limit: int
    after: str | None
    token: str


@dataclass(frozen=True, slots=True)
class StoredMedia:
    id: str
    data: bytes
    mime_type: str
    filename: str | None
    phone_number_id: str | None  # None for media registered by a test (a customer's upload)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class Rejection:
    target: Target
    phone_number_id: str
    error: MetaError
    scripted: bool  # from `fail_next` rather than the request itself


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One attempt at delivering one status webhook, and what the console answered."""

    wamid: str
    status: str
    body: bytes
    signature: str
    attempt: int
    answer_status: int | None  # None when there was no answer (`error` says why)
    answer_body: bytes
    error: str | None


@dataclass(frozen=True, slots=True)
class _PlannedStatus:
    wamid: str
    status: str
    delay: float
    body: bytes
    duplicate: bool


class GraphSimulator:
    """The state and behaviour behind the routes; tests inspect and script it."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.sent: list[SentMessage] = []
        self.read_marks: list[ReadMark] = []
        self.uploads: list[StoredMedia] = []
        self.template_listings: list[TemplateListing] = []
        self.groups = Groups()
        self.group_lookups: list[str] = []  # the group ids asked about, in order
        self._templates = views(config.templates) if config.templates is not None else None
        self.rejections: list[Rejection] = []
        self.webhooks: list[WebhookDelivery] = []
        self._media: dict[str, StoredMedia] = {}
        self._answers: dict[tuple[str, str], dict[str, Any]] = {}  # by (phone_number_id, Idempotency-Key)
        self._sent_to: dict[str, list[str]] = {}
        self._conversations: dict[tuple[str, str], tuple[str, int]] = {}
        self._scripted: dict[Target, deque[MetaError]] = {
            "send": deque(),
            "read": deque(),
            "upload": deque(),
            "templates": deque(),
            "group": deque(),
        }
        # Picks duplicates, shuffles and unread messages, reproducibly; nothing secret comes from it.
        self._random = random.Random(config.seed)  # noqa: S311
        self._url_key = secrets.token_bytes(16)  # signs download URLs
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    # --- for tests ---

    def fail_next(
        self,
        code: int,
        *,
        times: int = 1,
        target: Target = "send",
        details: str | None = None,
        http_status: int | None = None,
    ) -> None:
        """Answer the next `times` requests of `target` with Meta's error `code` (after the token check)."""
        self._scripted[target].extend([meta_error(code, details, http_status=http_status)] * times)

    def add_media(self, data: bytes, mime_type: str, filename: str | None = None) -> str:
        """Hold media a customer sent; its id can go in an inbound message, and the console can fetch it."""
        return self._store(data, mime_type, filename, None).id

    def media(self, media_id: str) -> StoredMedia | None:
        return self._media.get(media_id)

    def wamids_sent_to(self, wa_id: str) -> Sequence[str]:
        """The wamids of the messages accepted for `wa_id`, oldest first."""
        return self._sent_to.get(wa_id, [])

    async def settle(self) -> None:
        """Wait until every status webhook due so far has been delivered or given up on (bound it with
        `asyncio.timeout`: slow `status_delays` take as long as they say)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # --- the app ---

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: the client session for webhooks; pending deliveries are cancelled at shutdown."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.webhook_timeout))
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()
            self._session = None

    async def handle_messages(self, request: web.Request) -> web.Response:
        phone_number_id = request.match_info["phone_number_id"]
        token = _bearer(request, self.config.access_tokens)
        if token is None:
            return self._reject("send", phone_number_id, meta_error(INVALID_TOKEN))
        try:
            document = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            return self._reject("send", phone_number_id, meta_error(100, "The body must be a JSON object."))
        if "status" in document:
            return self._mark_read(phone_number_id, token, document)
        return self._send(phone_number_id, token, request.headers.get("Idempotency-Key"), document)

    def _send(self, phone_number_id: str, token: str, key: str | None, document: dict[str, Any]) -> web.Response:
        # No await from here on: an Idempotency-Key is checked and stored in one step.
        if key and (earlier := self._answers.get((phone_number_id, key))) is not None:
            return _json(earlier)
        if self._scripted["send"]:
            return self._reject("send", phone_number_id, self._scripted["send"].popleft(), scripted=True)
        try:
            message = SendRequest.model_validate(document)
        except ValidationError as exc:
            return self._reject("send", phone_number_id, meta_error(100, describe(exc)))
        template = message.template
        if template is not None and self._templates is not None:
            refused = refusal(self._templates, template.name, template.language.code, template.components)
            if refused is not None:
                return self._reject("send", phone_number_id, refused)
        number, wa_id = message.customer()
        code = convention(wa_id, REJECTED_RECIPIENTS)
        if code is not None and not (code == 131047 and message.type == "template"):
            return self._reject("send", phone_number_id, meta_error(code))

        wamid = new_wamid(wa_id)
        # Sent to a number, Meta names the number; sent to a BSUID, the BSUID (and not the number); to a
        # group, the group as given.
        given = message.to if message.to is not None else message.recipient
        group = message.recipient_type == "group"
        named = {} if group else {"wa_id": number} if number is not None else {"user_id": wa_id}
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": given, **named}],
            "messages": [{"id": wamid}],
        }
        if key:
            self._answers[(phone_number_id, key)] = answer
        self.sent.append(
            SentMessage(wamid, phone_number_id, given or "", wa_id, message.type, document, token, key, time.time())
        )
        self._sent_to.setdefault(wa_id, []).append(wamid)

        failure = convention(wa_id, FAILED_RECIPIENTS)
        media = message.media()
        if failure is None and media is not None and media.id is not None and media.id not in self._media:
            failure = 131053
        category = "utility" if message.type == "template" else "service"
        failed = None if failure is None else meta_error(failure)
        if not group:  # a group's receipts come per participant, whom the simulator does not know
            self._schedule_statuses(phone_number_id, wamid, number, wa_id, category, failed)
        return _json(answer)

    def _mark_read(self, phone_number_id: str, token: str, document: dict[str, Any]) -> web.Response:
        if self._scripted["read"]:
            return self._reject("read", phone_number_id, self._scripted["read"].popleft(), scripted=True)
        try:
            mark = ReadMarkRequest.model_validate(document)
        except ValidationError as exc:
            return self._reject("read", phone_number_id, meta_error(100, describe(exc)))
        self.read_marks.append(
            ReadMark(phone_number_id, mark.message_id, mark.typing_indicator is not None, token, time.time())
        )
        return _json({"success": True})

    async def handle_upload(self, request: web.Request) -> web.Response:
        phone_number_id = request.match_info["phone_number_id"]
        if _bearer(request, self.config.access_tokens) is None:
            return self._reject("upload", phone_number_id, meta_error(INVALID_TOKEN))
        if self._scripted["upload"]:
            return self._reject("upload", phone_number_id, self._scripted["upload"].popleft(), scripted=True)
        if request.content_type != "multipart/form-data":
            return self._reject("upload", phone_number_id, meta_error(100, "The upload must be multipart/form-data."))
        form = await request.post()
        upload = form.get("file")
        if form.get("messaging_product") != "whatsapp":
            return self._reject("upload", phone_number_id, meta_error(100, "messaging_product must be whatsapp."))
        if not isinstance(upload, web.FileField):
            return self._reject("upload", phone_number_id, meta_error(100, "The parameter file is required."))
        declared = form.get("type")
        mime_type = declared if isinstance(declared, str) and declared else upload.content_type
        data = upload.file.read()
        limit = MEDIA_LIMITS.get(mime_type.split(";")[0].strip().lower())
        if limit is None:
            return self._reject("upload", phone_number_id, meta_error(131053, f"Unsupported file type {mime_type}."))
        if len(data) > limit:
            return self._reject("upload", phone_number_id, meta_error(131053, f"The file is over {limit} bytes."))
        stored = self._store(data, mime_type, upload.filename, phone_number_id)
        self.uploads.append(stored)
        return _json({"id": stored.id})

    async def handle_templates(self, request: web.Request) -> web.Response:
        waba_id = request.match_info["waba_id"]
        token = _bearer(request, self.config.access_tokens)
        if token is None:
            return self._reject("templates", waba_id, meta_error(INVALID_TOKEN))
        if self._scripted["templates"]:
            return self._reject("templates", waba_id, self._scripted["templates"].popleft(), scripted=True)
        if waba_id != self.config.waba_id or self.config.templates is None:
            return self._reject("templates", waba_id, meta_error(100, f"Object with ID '{waba_id}' does not exist."))
        asked = request.query.get("limit", "25")
        limit = min(int(asked) if asked.isdigit() and int(asked) > 0 else 25, self.config.template_page_limit)
        after = request.query.get("after")
        self.template_listings.append(TemplateListing(waba_id, limit, after, token))
        url = str(request.url.with_query(None))
        return _json(listing(self.config.templates, limit=limit, after=after, url=url))

    async def handle_group_info(self, request: web.Request) -> web.Response:
        group_id = request.match_info["group_id"]
        if _bearer(request, self.config.access_tokens) is None:
            return self._reject("group", group_id, meta_error(INVALID_TOKEN))
        self.group_lookups.append(group_id)
        if self._scripted["group"]:
            return self._reject("group", group_id, self._scripted["group"].popleft(), scripted=True)
        group = self.groups.get(group_id)
        if group is None:
            return self._reject("group", group_id, meta_error(100, f"Object with ID '{group_id}' does not exist."))
        return _json(group.info(request.query.get("fields", "").split(",")))

    async def handle_media_info(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        if _bearer(request, self.config.access_tokens) is None:
            return _json(meta_error(INVALID_TOKEN).answer_body(), status=401)
        stored = self._media.get(media_id)
        if stored is None and media_id in self.config.display_numbers:
            # The same node path names a business number: Meta shows it to a token that may use it.
            number = {"id": media_id, "display_phone_number": self.config.display_numbers[media_id]}
            return _json({**number, "verified_name": "Simulated Business"})
        if stored is None:
            missing = meta_error(
                100,
                f"Unsupported get request. Object with ID '{media_id}' does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation.",
            )
            return _json(missing.answer_body(), status=400)
        expires = int(time.time()) + MEDIA_URL_LIFETIME_SECONDS
        query = {"mid": media_id, "ext": str(expires), "hash": self._url_hash(media_id, expires)}
        url = request.url.origin().with_path(DOWNLOAD_PATH).with_query(query)
        return _json(
            {
                "messaging_product": "whatsapp",
                "url": str(url),
                "mime_type": stored.mime_type,
                "sha256": stored.sha256,
                "file_size": len(stored.data),
                "id": stored.id,
            }
        )

    async def handle_download(self, request: web.Request) -> web.Response:
        if _bearer(request, self.config.access_tokens) is None:
            return _json(meta_error(INVALID_TOKEN).answer_body(), status=401)
        media_id, expires = request.query.get("mid", ""), request.query.get("ext", "")
        stored = self._media.get(media_id)
        valid = (
            stored is not None
            and expires.isdigit()
            and int(expires) >= time.time()
            and hmac.compare_digest(self._url_hash(media_id, int(expires)), request.query.get("hash", ""))
        )
        if stored is None or not valid:
            raise web.HTTPNotFound(text="URL signature mismatch or expired")
        return web.Response(body=stored.data, headers={"Content-Type": stored.mime_type})

    # --- internals ---

    def _reject(
        self, target: Target, phone_number_id: str, error: MetaError, *, scripted: bool = False
    ) -> web.Response:
        self.rejections.append(Rejection(target, phone_number_id, error, scripted))
        headers = {}
        if error.code == INVALID_TOKEN:
            headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{error.title}"'
        return _json(error.answer_body(), status=error.http_status, headers=headers)

    def _store(self, data: bytes, mime_type: str, filename: str | None, phone_number_id: str | None) -> StoredMedia:
        media_id = str(10**15 + secrets.randbelow(9 * 10**15))
        while media_id in self._media:
            media_id = str(10**15 + secrets.randbelow(9 * 10**15))
        stored = StoredMedia(media_id, data, mime_type, filename, phone_number_id)
        self._media[media_id] = stored
        return stored

    def _url_hash(self, media_id: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{media_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def _schedule_statuses(
        self,
        phone_number_id: str,
        wamid: str,
        number: str | None,
        wa_id: str,
        category: str,
        failure: MetaError | None,
    ) -> None:
        """Plan the status webhooks of an accepted message now, so the seeded choices follow request order."""
        config = self.config
        if config.console_url is None or self._session is None:
            return
        now = int(time.time())
        conversation_id, expiration = self._conversations.setdefault(
            (phone_number_id, wa_id), (secrets.token_hex(15), now + 24 * 3600)
        )
        statuses = ["failed"] if failure is not None else ["sent", "delivered", "read"]
        if failure is None and not self._random.random() < config.read_probability:
            statuses.pop()
        happened = now
        bodies: list[tuple[str, bytes]] = []
        for status, delay in zip(statuses, config.status_delays, strict=False):
            happened += round(delay)  # the timestamps tell the true order even when delivery shuffles it
            item = status_object(
                wamid,
                status,
                number,
                recipient_user_id=wa_id if number is None else None,
                timestamp=happened,
                conversation_id=conversation_id,
                expiration_timestamp=expiration if status == "sent" else None,
                category=category,
                errors=[failure.status_error()] if failure is not None else (),
            )
            body = statuses_envelope(
                phone_number_id,
                config.display_number(phone_number_id),
                [item],
                waba_id=config.waba_id,
                contacts=[contact_object(number, None, user_id=item["recipient_user_id"])],
            )
            bodies.append((status, body))
        if config.shuffle:
            self._random.shuffle(bodies)
        plan = [
            _PlannedStatus(wamid, status, delay, body, self._random.random() < config.duplicate_probability)
            for (status, body), delay in zip(bodies, config.status_delays, strict=False)
        ]
        task = asyncio.create_task(self._deliver_plan(self._session, config.console_url, plan))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("status webhook delivery failed", exc_info=exc)

    async def _deliver_plan(self, session: aiohttp.ClientSession, url: str, plan: list[_PlannedStatus]) -> None:
        for planned in plan:
            if planned.delay > 0:
                await asyncio.sleep(planned.delay)
            for _ in range(2 if planned.duplicate else 1):
                await self._deliver(session, url, planned)

    async def _deliver(self, session: aiohttp.ClientSession, url: str, planned: _PlannedStatus) -> None:
        """POST one status webhook until the console answers 200, as Meta does, but a bounded number of times."""
        config = self.config
        headers = webhook_headers(config.app_secret, planned.body)
        retry_delay = config.webhook_retry_delay
        for attempt in range(1, config.webhook_attempts + 1):
            answer_status: int | None = None
            answer_body = b""
            error: str | None = None
            try:
                async with session.post(url, data=planned.body, headers=headers) as answer:
                    answer_status, answer_body = answer.status, await answer.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.webhooks.append(
                WebhookDelivery(
                    planned.wamid,
                    planned.status,
                    planned.body,
                    headers[SIGNATURE_HEADER],
                    attempt,
                    answer_status,
                    answer_body,
                    error,
                )
            )
            if answer_status == 200:
                return
            if attempt < config.webhook_attempts:
                await asyncio.sleep(retry_delay)
                retry_delay *= 2


def _bearer(request: web.Request, allowed: frozenset[str] | None) -> str | None:
    """The request's bearer token if it is accepted."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or (allowed is not None and token not in allowed):
        return None
    return token


def _json(document: Mapping[str, Any], *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, content_type="application/json", headers=headers)


SIMULATOR = web.AppKey("simulator", GraphSimulator)


def create_simulator_app(config: SimulatorConfig) -> web.Application:
    """The Graph API simulator as an aiohttp app; `app[SIMULATOR]` is its state."""
    simulator = GraphSimulator(config)
    app = web.Application(client_max_size=MAX_UPLOAD + MB)
    app[SIMULATOR] = simulator
    app.cleanup_ctx.append(simulator.lifecycle)
    app.router.add_post(f"/{_VERSION}/{{phone_number_id}}/messages", simulator.handle_messages)
    app.router.add_post(f"/{_VERSION}/{{phone_number_id}}/media", simulator.handle_upload)
    app.router.add_get(f"/{_VERSION}/{{media_id:[0-9]+}}", simulator.handle_media_info)
    app.router.add_get(f"/{_VERSION}/{{waba_id:[0-9]+}}/message_templates", simulator.handle_templates)
    # After the media route: an id of digits only is a media file's (or a number's), never a group's.
    app.router.add_get(f"/{_VERSION}/{{group_id:[A-Za-z0-9_=-]+}}", simulator.handle_group_info)
    app.router.add_get(DOWNLOAD_PATH, simulator.handle_download)
    return app


class SimulatorServer:
    """The simulator served on `host`:`port` (0: a free port), as an async context manager."""

    def __init__(self, config: SimulatorConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = create_simulator_app(config)
        self.simulator = self.app[SIMULATOR]
        self.host = host
        self.port = port
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def graph_url(self) -> str:
        """What the console takes as WHATSAPP_GRAPH_URL."""
        return f"{self.base_url}/{DEFAULT_VERSION}"

    async def start(self) -> None:
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()
