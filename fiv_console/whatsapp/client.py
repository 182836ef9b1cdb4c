"""Meta's Graph API for WhatsApp: sending messages, marking them read, fetching and uploading media,
listing a business account's message templates, and reading a WhatsApp group's subject.

`GraphClient` makes every call on one shared `aiohttp.ClientSession` (created and closed by whoever owns
the app's resources), with the access token of the channel passed on each call. It owns what every call
needs alike:
- throughput: a token bucket per phone number id (`TokenBuckets`), taken before each send, mark-as-read
  and typing indicator, since Meta counts those against the number's messages per second;
- retries: with jittered exponential backoff, bounded in attempts and in time (`RetryPolicy`), on Meta's
  rate-limit and transient error codes, on HTTP 5xx answers without a code, and on network errors and
  timeouts. Meta's `error.code` decides, not the HTTP status, and a `Retry-After` header is honoured up to
  a bound. Every attempt at one message carries the caller's `Idempotency-Key` (our simulator answers a
  repeated key with the same wamid; Meta ignores it);
- answers: read with pydantic, so an answer of the wrong shape is a `GraphError` that says so.

A failure is a `GraphError`: Meta's code and texts, whether a later retry can help, and a `reason` an
agent can read; `stored_error()` is the JSON the `messages` table keeps for a failed message.

The payload helpers (`text_payload`, ...) build the bodies of `send_message`. Access tokens and message
contents are never logged.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import random
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fiv_console.observability.metrics import GRAPH_CALLS, GRAPH_ERRORS
from fiv_console.whatsapp.payloads import WaMessageId

log = logging.getLogger(__name__)

RATE_LIMIT_CODES = frozenset({130429, 131056, 80007, 4})
TRANSIENT_CODES = frozenset({131000, 131016, 1, 2})
RETRYABLE_CODES = RATE_LIMIT_CODES | TRANSIENT_CODES

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
# A media file may be tens of megabytes: the whole download gets longer, but a stalled read does not.
DEFAULT_MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=5, sock_read=30)

_CALLBACK_DATA_MAX = 512  # Meta's limit on biz_opaque_callback_data
_CHUNK = 64 * 1024
_jitter = random.SystemRandom()

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Meta's title for each code it documents, and what it means for the agent who sent the message.
_KNOWN_CODES: dict[int, tuple[str, str]] = {
    131047: (
        "Re-engagement message",
        "More than 24 hours have passed since the customer last wrote; only a template can be sent.",
    ),
    131026: ("Message undeliverable", "WhatsApp could not deliver this message to the customer's number."),
    130429: ("Rate limit hit", "Too many messages are being sent from this number right now; try again shortly."),
    131056: (
        "Pair rate limit hit",
        "Too many messages were sent to this customer in a short time; wait a moment before sending again.",
    ),
    80007: ("Rate limit issues", "This WhatsApp Business Account has reached its rate limit; try again shortly."),
    4: ("Too many calls", "The WhatsApp app has reached its API call limit; try again shortly."),
    131000: ("Something went wrong", "WhatsApp had an unexpected error; try again."),
    1: ("API unknown", "WhatsApp had an unexpected error; try again."),
    131016: ("Service unavailable", "WhatsApp is temporarily unavailable; try again shortly."),
    2: ("API service", "WhatsApp is temporarily unavailable; try again shortly."),
    131051: ("Unsupported message type", "WhatsApp does not support this kind of message."),
    100: ("Invalid parameter", "WhatsApp refused the message because one of its parameters is invalid."),
    131008: ("Required parameter is missing", "WhatsApp refused the message because a required part is missing."),
    131009: ("Parameter value is not valid", "WhatsApp refused the message because one of its values is not valid."),
    132000: (
        "Template param count mismatch",
        "The number of values given does not match the template's placeholders.",
    ),
    132001: ("Template does not exist", "This template does not exist in this language, or is not approved yet."),
    190: (
        "Access token has expired",
        "The channel's access token has expired; an administrator must renew it before messages can be sent.",
    ),
    131052: ("Media download error", "WhatsApp could not download the customer's media file."),
    131053: ("Media upload error", "WhatsApp could not upload the media file."),
}


class GraphError(Exception):
    """A Graph API call that failed: refused by Meta, unreadable, or WhatsApp not reached at all.

    `code` is Meta's `error.code` (None when the failure carries none: network, timeout, an HTTP error
    without JSON, an answer of the wrong shape). `retryable` says whether trying again later can help.
    """

    def __init__(
        self,
        *,
        code: int | None,
        message: str,
        retryable: bool,
        http_status: int | None = None,
        title: str | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.http_status = http_status
        known = _KNOWN_CODES.get(code) if code is not None else None
        self.title = title or (known[0] if known else None)
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.retry_after = retry_after
        self._reason = reason

    @property
    def reason(self) -> str:
        """What happened, in a sentence for the agent."""
        if self._reason is not None:
            return self._reason
        if self.code in _KNOWN_CODES:
            return _KNOWN_CODES[self.code][1]
        if self.code is not None:
            said = f": {self.details}" if self.details else ""
            return f"WhatsApp refused the request (error {self.code}){said}."
        if self.http_status is not None and self.http_status >= 500:
            return f"WhatsApp had a server error (HTTP {self.http_status}); try again."
        return f"WhatsApp refused the request (HTTP {self.http_status})."

    def stored_error(self) -> dict[str, Any]:
        """The JSON the `messages` table keeps in `error` for a message that failed."""
        return {
            "code": self.code,
            "title": self.title,
            "message": self.message,
            "details": self.details,
            "reason": self.reason,
        }

    def __str__(self) -> str:
        return f"{self.reason} (code {self.code}, HTTP {self.http_status}, fbtrace_id {self.fbtrace_id})"


class MediaTooLarge(GraphError):
    """A media file over the size the caller accepts: refused from its Content-Length or while streaming."""

    def __init__(self, *, max_bytes: int) -> None:
        super().__init__(
            code=None,
            message=f"media larger than {max_bytes} bytes",
            retryable=False,
            reason=f"The media file is larger than the {max_bytes / 1_000_000:g} MB this console accepts.",
        )
        self.max_bytes = max_bytes


def _unreachable(exc: BaseException) -> GraphError:
    if isinstance(exc, TimeoutError):
        return GraphError(
            code=None, message="timed out", retryable=True, reason="WhatsApp did not answer in time; try again."
        )
    return GraphError(
        code=None,
        message=f"network error: {type(exc).__name__}",
        retryable=True,
        reason="WhatsApp could not be reached; try again.",
    )


class _Model(BaseModel):
    """Read from Meta's JSON: fields Meta adds are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class _ErrorData(_Model):
    details: str | None = None


class _ErrorBody(_Model):
    code: int | None = None
    message: str | None = None
    error_user_title: str | None = None
    error_data: _ErrorData | None = None
    fbtrace_id: str | None = None


class _ErrorAnswer(_Model):
    error: _ErrorBody


class _Contact(_Model):
    wa_id: str | None = None


class _MessageId(_Model):
    id: WaMessageId


class _SendAnswer(_Model):
    contacts: list[_Contact] = []
    messages: list[_MessageId] = Field(min_length=1)


class _SuccessAnswer(_Model):
    success: Literal[True]


class _UploadAnswer(_Model):
    id: str = Field(min_length=1)


class _Cursors(_Model):
    after: str | None = None


class _Paging(_Model):
    cursors: _Cursors | None = None
    next: str | None = None


class _TemplatesPage(_Model):
    # Items stay raw here: `whatsapp.templates` reads each on its own, so one odd template spoils nothing.
    data: list[dict[str, Any]]
    paging: _Paging | None = None


class MediaInfo(_Model):
    """Where a media file can be fetched (for 5 minutes, with the same bearer token) and what it is."""

    id: str
    url: str = Field(min_length=1)
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | None = None


class PhoneNumberInfo(_Model):
    """A business phone number as the Graph API shows it to a token that may use it."""

    id: str
    display_phone_number: str | None = None
    verified_name: str | None = None


class GroupInfo(_Model):
    """A WhatsApp group's name as `GET /<GROUP_ID>?fields=subject,description` answers it (Meta's "Get group
    info", Groups API)."""

    id: str
    subject: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class SentMessage:
    """Meta accepted the message (not yet delivered): its wamid, and the customer's wa_id when given."""

    wamid: str
    wa_id: str | None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _error_from_answer(status: int, raw: bytes, retry_after: str | None) -> GraphError:
    try:
        error = _ErrorAnswer.model_validate_json(raw).error
    except ValidationError:
        error = _ErrorBody()
    # Meta's code decides; only an answer without one falls back on the HTTP status.
    retryable = error.code in RETRYABLE_CODES if error.code is not None else status >= 500 or status == 429
    return GraphError(
        code=error.code,
        message=error.message or f"HTTP {status}",
        retryable=retryable,
        http_status=status,
        title=error.error_user_title,
        details=error.error_data.details if error.error_data else None,
        fbtrace_id=error.fbtrace_id,
        retry_after=_retry_after(retry_after),
    )


def _parse(model: type[M], status: int, raw: bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise GraphError(
            code=None,
            message=f"unexpected answer from the Graph API: {where}: {first['msg']}",
            retryable=False,
            http_status=status,
            reason="WhatsApp gave an answer this console does not understand.",
        ) from None


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `attempts` in all, waits doubling from `base_delay` up to `max_delay`.

    Each wait is jittered down to as little as half, so senders that failed together do not retry
    together; a Retry-After header lengthens it, up to `max_retry_after`; and no attempt starts once
    `total_time` seconds would have passed since the first.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    total_time: float = 30.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.total_time, self.max_retry_after) < 0:
            raise ValueError("delays and times cannot be negative")

    def delay(self, error: GraphError, attempt: int, elapsed: float) -> float | None:
        """Seconds to wait before the attempt after `attempt` (counted from 1), or None to give up."""
        if not error.retryable or attempt >= self.attempts:
            return None
        wait = min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * _jitter.uniform(0.5, 1.0)
        if error.retry_after is not None:
            wait = max(wait, min(error.retry_after, self.max_retry_after))
        return wait if elapsed + wait <= self.total_time else None


DEFAULT_RETRY = RetryPolicy()


class TokenBuckets:
    """A token bucket per phone number id: `burst` requests at once, then `rate` per second.

    Kept as the time each bucket is full again (the GCRA form of a token bucket): a request takes its slot
    at once and then sleeps until that slot, so concurrent senders are served in order without a lock. A
    request whose slot is more than `max_wait` seconds away takes none and fails as retryable.

    Buckets are kept in the order they were last used; a full bucket is the same as none, so full ones
    are dropped from the front as requests arrive, and at most `max_numbers` are kept (the oldest goes).
    """

    def __init__(
        self,
        *,
        rate: float = 80.0,
        burst: int = 10,
        max_wait: float = 5.0,
        max_numbers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1 or max_wait < 0 or max_numbers < 1:
            raise ValueError("rate must be positive, burst and max_numbers at least 1, max_wait not negative")
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._max_wait = max_wait
        self._max_numbers = max_numbers
        self._clock = clock
        self._sleep = sleep
        self._full_at: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        """How many numbers have a bucket kept (used lately, not yet seen full again)."""
        return len(self._full_at)

    async def take(self, phone_number_id: str) -> None:
        """Wait for this number's next token; GraphError (retryable) if that is more than `max_wait` away."""
        now = self._clock()
        while self._full_at and next(iter(self._full_at.values())) <= now:
            self._full_at.popitem(last=False)
        full_at = max(self._full_at.get(phone_number_id, now), now)
        wait = full_at - self._tolerance - now
        if wait > self._max_wait:
            raise GraphError(
                code=None,
                message=f"local throughput limit: next slot in {wait:.1f} s",
                retryable=True,
                reason="Too many messages are waiting to be sent from this number; try again shortly.",
            )
        self._full_at.pop(phone_number_id, None)
        self._full_at[phone_number_id] = full_at + self._interval
        while len(self._full_at) > self._max_numbers:
            self._full_at.popitem(last=False)
        if wait > 0:
            await self._sleep(wait)


class MediaDownload:
    """An open media download: its type and announced length, and its bytes as chunks (`async for`).

    Iterating raises `MediaTooLarge` as soon as more than `max_bytes` have come.
    """

    def __init__(self, response: aiohttp.ClientResponse, max_bytes: int) -> None:
        self._response = response
        self._max_bytes = max_bytes
        self.content_type: str = response.content_type
        self.content_length: int | None = response.content_length

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        while True:
            try:
                chunk = await self._response.content.read(_CHUNK)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _unreachable(exc) from exc
            if not chunk:
                return
            received += len(chunk)
            if received > self._max_bytes:
                raise MediaTooLarge(max_bytes=self._max_bytes)
            yield chunk


def _with_callback_data(payload: dict[str, Any], callback_data: str | None) -> dict[str, Any]:
    if callback_data is None:
        return payload
    if len(callback_data) > _CALLBACK_DATA_MAX:
        raise ValueError(f"callback data is limited to {_CALLBACK_DATA_MAX} characters")
    return {**payload, "biz_opaque_callback_data": callback_data}


class GraphClient:
    """Calls to the Graph API at `base_url` (its version included, e.g. https://graph.facebook.com/v23.0)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        media_timeout: aiohttp.ClientTimeout = DEFAULT_MEDIA_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        buckets: TokenBuckets | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._media_timeout = media_timeout
        self._retry = retry
        self._buckets = buckets if buckets is not None else TokenBuckets()

    async def send_message(
        self,
        phone_number_id: str,
        access_token: str,
        payload: dict[str, Any],
        idempotency_key: str,
        *,
        callback_data: str | None = None,
    ) -> SentMessage:
        """Send one message; `idempotency_key` (our message id) goes with every attempt at it.

        `callback_data` (at most 512 characters; our message id, say) comes back in its status webhooks.
        """
        body = orjson.dumps(_with_callback_data(payload, callback_data))
        answer = await self._call(
            "send",
            _SendAnswer,
            "POST",
            self._url(phone_number_id, "messages"),
            access_token,
            json_body=body,
            headers={"Idempotency-Key": idempotency_key},
            throttle=phone_number_id,
        )
        wa_id = answer.contacts[0].wa_id if answer.contacts else None
        return SentMessage(wamid=answer.messages[0].id, wa_id=wa_id)

    async def mark_read(self, phone_number_id: str, access_token: str, wamid: str, *, typing: bool = False) -> None:
        """Mark an inbound message read (blue ticks), and show the customer a typing indicator if asked."""
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        await self._call(
            "mark_read",
            _SuccessAnswer,
            "POST",
            self._url(phone_number_id, "messages"),
            access_token,
            json_body=orjson.dumps(body),
            throttle=phone_number_id,
        )

    async def phone_number_info(self, phone_number_id: str, access_token: str) -> PhoneNumberInfo:
        """The number as this token sees it: Meta answers only a token that may use the number."""
        url = f"{self._url(phone_number_id)}?fields=id,display_phone_number,verified_name"
        return await self._call("phone_number_info", PhoneNumberInfo, "GET", url, access_token)

    async def group_info(self, group_id: str, access_token: str) -> GroupInfo:
        """A group's subject and description, by a token of the number that is in it."""
        url = f"{self._url(group_id)}?fields=subject,description"
        return await self._call("group_info", GroupInfo, "GET", url, access_token)

    async def message_templates(
        self, waba_id: str, access_token: str, *, page_size: int = 100, max_pages: int = 50
    ) -> list[dict[str, Any]]:
        """Every template of the business account, all pages, as Meta lists them (raw items).

        Pages follow `paging.cursors.after` on our own URL while Meta says there is a `next`; the `next` URL
        itself is not fetched, since it may carry the token and points wherever the answer says."""
        fields = "id,name,language,status,category,parameter_format,components"
        items: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(max_pages):
            query = f"?fields={fields}&limit={page_size}" + (f"&after={quote(after, safe='')}" if after else "")
            url = self._url(waba_id, "message_templates") + query
            page = await self._call("message_templates", _TemplatesPage, "GET", url, access_token)
            items.extend(page.data)
            paging = page.paging
            following = paging.cursors.after if paging is not None and paging.cursors is not None else None
            if paging is None or paging.next is None or not following or following == after:
                return items
            after = following
        raise GraphError(
            code=None,
            message=f"more than {max_pages} pages of templates",
            retryable=False,
            reason=f"This WhatsApp Business Account lists more than {max_pages * page_size} templates.",
        )

    async def media_info(self, media_id: str, access_token: str) -> MediaInfo:
        """Where to download a media file (the URL lives 5 minutes) and what it is."""
        return await self._call("media_info", MediaInfo, "GET", self._url(media_id), access_token)

    async def upload_media(
        self, phone_number_id: str, access_token: str, data: bytes, mime_type: str, filename: str
    ) -> str:
        """Upload a file to send by id; returns its media id."""

        def form() -> aiohttp.FormData:
            fields = aiohttp.FormData()
            fields.add_field("messaging_product", "whatsapp")
            fields.add_field("type", mime_type)
            # A stream, not bytes: aiohttp would block the loop (and warn) writing a large bytes field.
            fields.add_field("file", io.BytesIO(data), filename=filename, content_type=mime_type)
            return fields

        url = self._url(phone_number_id, "media")
        answer = await self._call(
            "upload_media", _UploadAnswer, "POST", url, access_token, form=form, limits=self._media_timeout
        )
        return answer.id

    @asynccontextmanager
    async def download_media(self, url: str, access_token: str, max_bytes: int) -> AsyncIterator[MediaDownload]:
        """Open a media URL from `media_info`; refused with `MediaTooLarge` beyond `max_bytes`."""

        async def attempt() -> aiohttp.ClientResponse:
            try:
                response = await self._session.get(url, headers=_bearer(access_token), timeout=self._media_timeout)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _unreachable(exc) from exc
            if response.ok:
                return response
            try:
                raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _unreachable(exc) from exc
            finally:
                response.release()
            raise _error_from_answer(response.status, raw, response.headers.get(aiohttp.hdrs.RETRY_AFTER))

        response = await self._retrying("download_media", attempt)
        try:
            if response.content_length is not None and response.content_length > max_bytes:
                raise MediaTooLarge(max_bytes=max_bytes)
            yield MediaDownload(response, max_bytes)
        finally:
            response.release()

    def _url(self, *segments: str) -> str:
        return "/".join([self._base, *(quote(segment, safe="") for segment in segments)])

    async def _call(
        self,
        operation: str,
        answer: type[M],
        method: str,
        url: str,
        access_token: str,
        *,
        json_body: bytes | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        headers: Mapping[str, str] | None = None,
        throttle: str | None = None,
        limits: aiohttp.ClientTimeout | None = None,
    ) -> M:
        """One Graph call, retried by the policy; its 2xx answer read as `answer`."""
        request_headers = {**_bearer(access_token), **(headers or {})}
        if json_body is not None:
            request_headers[aiohttp.hdrs.CONTENT_TYPE] = "application/json"

        async def attempt() -> M:
            if throttle is not None:
                await self._buckets.take(throttle)
            data = form() if form is not None else json_body
            try:
                async with self._session.request(
                    method, url, headers=request_headers, data=data, timeout=limits or self._timeout
                ) as response:
                    raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _unreachable(exc) from exc
            if response.ok:
                return _parse(answer, response.status, raw)
            raise _error_from_answer(response.status, raw, response.headers.get(aiohttp.hdrs.RETRY_AFTER))

        return await self._retrying(operation, attempt)

    async def _retrying(self, operation: str, attempt: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        number = 1
        while True:
            try:
                answer = await attempt()
            except GraphError as error:
                GRAPH_ERRORS.labels(operation, str(error.code) if error.code is not None else "none").inc()
                delay = self._retry.delay(error, number, time.monotonic() - started)
                if delay is None:
                    GRAPH_CALLS.labels(operation, "failed").inc()
                    raise
                log.warning(
                    "Graph API call failed; retrying",
                    extra={
                        "operation": operation,
                        "attempt": number,
                        "code": error.code,
                        "http_status": error.http_status,
                        "fbtrace_id": error.fbtrace_id,
                        "delay": round(delay, 3),
                    },
                )
                await asyncio.sleep(delay)
                number += 1
            else:
                GRAPH_CALLS.labels(operation, "ok").inc()
                return answer


def _bearer(access_token: str) -> dict[str, str]:
    return {aiohttp.hdrs.AUTHORIZATION: f"Bearer {access_token}"}


# A business-scoped user id (BSUID): a country code, a period, letters and digits; a parent BSUID has `ENT.`
# after the country (Meta's "Business-scoped user IDs", 2026). A phone number never has a period.
_BSUID = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]+$")


_PHONE_PUNCTUATION = re.compile(r"[\s()+.-]")


def is_business_scoped_id(value: str) -> bool:
    return _BSUID.match(value) is not None


def _message(to: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
    """The common part of a send: to a phone number as `to`; to a user known only by their BSUID as
    `recipient`, which Meta takes since 2026 (`to` would take precedence, so it is left out then); to a
    WhatsApp group (neither a number nor a BSUID: its id) as `to` with `recipient_type` group."""
    common = {"messaging_product": "whatsapp"}
    if is_business_scoped_id(to):
        return {**common, "recipient_type": "individual", "recipient": to, "type": kind, kind: content}
    group = not _PHONE_PUNCTUATION.sub("", to).isdigit()
    return {**common, "recipient_type": "group" if group else "individual", "to": to, "type": kind, kind: content}


def text_payload(to: str, body: str, reply_to: str | None = None, preview_url: bool = False) -> dict[str, Any]:
    """A text to the customer `to` (their wa_id, or BSUID), as a reply to the wamid `reply_to` if given."""
    payload = _message(to, "text", {"body": body, "preview_url": preview_url})
    if reply_to is not None:
        payload["context"] = {"message_id": reply_to}
    return payload


def template_payload(
    to: str,
    name: str,
    language: str,
    parameters: list[str] | None = None,
    *,
    components: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An approved template: its `components` as built (`whatsapp.template_messages.compose`), or only its
    body's placeholders filled in order with `parameters`."""
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components is None and parameters:
        components = [{"type": "body", "parameters": [{"type": "text", "text": value} for value in parameters]}]
    if components:
        template["components"] = components
    return _message(to, "template", template)


MediaKind = Literal["image", "document", "audio", "video"]


def media_payload(
    to: str,
    kind: MediaKind,
    media_id: str | None,
    caption: str | None = None,
    filename: str | None = None,
    *,
    link: str | None = None,
) -> dict[str, Any]:
    """A media file by the id of an upload, or by a `link` WhatsApp downloads it from (exactly one); WhatsApp
    shows no caption on audio and a file name on documents only."""
    if caption is not None and kind == "audio":
        raise ValueError("audio cannot have a caption")
    if filename is not None and kind != "document":
        raise ValueError("only a document has a file name")
    if (media_id is None) == (link is None):
        raise ValueError("give exactly one of a media id and a link")
    media: dict[str, Any] = {"id": media_id} if media_id is not None else {"link": link}
    if caption is not None:
        media["caption"] = caption
    if filename is not None:
        media["filename"] = filename
    return _message(to, kind, media)


def interactive_payload(to: str, interactive: dict[str, Any]) -> dict[str, Any]:
    """An interactive message (reply buttons, a list): `interactive` is Meta's object, built and checked by
    `messages.interactive`."""
    return _message(to, "interactive", interactive)


def reaction_payload(to: str, message_id: str, emoji: str) -> dict[str, Any]:
    """A reaction to the wamid `message_id`; an empty `emoji` removes ours."""
    return _message(to, "reaction", {"message_id": message_id, "emoji": emoji})
