"""Customer traffic: simulated customers writing to one business number, as Meta would post it.

`TrafficGenerator` plays customers writing to one business number: R messages a second for S seconds
(or until cancelled), one signed POST per message (bodies from `simulation.envelopes`), mostly text with
some media, voice notes, locations, replies, reactions and button replies, edits and deletions of their
own texts, echoes of what the business sent them from the WhatsApp Business app, messages in the
WhatsApp groups the business is in and, now and then, a group renamed (`group_settings_update`; with a
counterpart, its groups are the simulator's, which answers their info). Each customer has a
business-scoped user id, as Meta gives every user since 2026, and some a username; of those, some hide
their number, so their messages come without one. Sends follow a fixed schedule
(message i is due at start + i/R, so pacing never drifts) with a bound on POSTs in flight; `TrafficStats`
counts the answers and keeps each POST's latency for percentiles.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import math
import random
import struct
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from fiv_console.simulation.envelopes import (
    DEFAULT_WABA_ID,
    group_settings_envelope,
    message_object,
    messages_envelope,
    new_wamid,
    simulated_user_id,
    webhook_headers,
)
from fiv_console.simulation.groups import Groups
from fiv_console.whatsapp.payloads import ECHOES_FIELD

# --- customers ------------------------------------------------------------------------------------------


class GraphCounterpart(Protocol):
    """The Graph API side the traffic plays against (the simulator): where inbound media lives, what the
    business sent each customer, for replies and reactions to quote, and the groups the business is in."""

    groups: Groups

    def add_media(self, data: bytes, mime_type: str, filename: str | None = None) -> str: ...

    def wamids_sent_to(self, wa_id: str) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class Customer:
    wa_id: str
    name: str
    user_id: str = ""  # their business-scoped user id (BSUID); by default the simulator's for the number
    username: str | None = None
    hides_number: bool = False  # a user with a username whose number WhatsApp leaves out of webhooks

    @property
    def bsuid(self) -> str:
        return self.user_id or simulated_user_id(self.wa_id)

    @property
    def shown_number(self) -> str | None:
        """The number as webhooks give it: none for a customer who hides it."""
        return None if self.hides_number else self.wa_id

    @property
    def address(self) -> str:
        """What the business sends to: their number, or their BSUID when it does not know the number."""
        return self.bsuid if self.hides_number else self.wa_id


_FIRST_NAMES = (
    "Ana", "João", "María José", "Luis", "Priya", "Chloé", "Mehmet", "Olumide", "Sofía", "Đức", "Aiko",
    "Fatima", "Liam", "Bia 🌻", "Zoë", "Rahul", "Camila", "Kwame", "Ingrid", "Thiago",
)  # fmt: skip
_LAST_NAMES = (
    "Souza", "Pereira", "García", "Hernández", "Sharma", "Martin", "Y\u0131lmaz", "Adeyemi", "Nguyễn", "Tanaka",
    "Al-Farsi", "O'Brien", "Müller", "Silva", "Okafor", "Kowalski", "",
)  # fmt: skip
# (country code, digits after it): mobile numbers of the kind WhatsApp users have.
_NUMBER_PLANS = (("55", 11), ("52", 11), ("91", 10), ("1", 10), ("34", 9), ("62", 11), ("234", 10), ("44", 10))
_TEXTS = (
    "Hi, I need help with my order",
    "Olá! Meu pedido ainda não chegou 😕",
    "¿Cuál es el horario de atención?",
    "Bonjour, je voudrais changer mon adresse de livraison",
    "My order number is #48213",
    "thanks!! 🙏",
    "Is anyone there?",
    "The app says the payment failed, but the money left my account",
    "Quero cancelar minha assinatura",
    "Can I pay by card on delivery?",
    "ok",
    "I got the wrong size.\nCan I exchange it?\nThe receipt is attached below",
    'It says "address not found" at checkout',
    "Tracking: https://track.example.com/p/93X1-22/status?lang=en",
    "Danke, das hat geholfen 👍",
    "नमस्ते, मुझे रिफंड चाहिए",
    "お世話になります。請求書の再発行をお願いします。",
    "Can you call me back after 6pm? My number is +55 11 91234-5678",
)
_CAPTIONS = ("", "", "this one", "The box arrived like this 📦", "screenshot of the error", "receipt")
_EMOJI = ("👍", "❤️", "😂", "🙏", "😮", "😢", "")  # "": the customer takes a reaction back
_PLACES = (
    (-23.5617, -46.6559, "Avenida Paulista, 1578", "Bela Vista, São Paulo - SP, 01310-200"),
    (19.4326, -99.1332, "Zócalo", "Plaza de la Constitución, Centro, CDMX"),
    (40.4168, -3.7038, None, None),  # a shared current location has no name
    (12.9716, 77.5946, None, None),
)
_BUTTONS = (("yes", "Yes"), ("no", "No"), ("talk_to_agent", "Talk to an agent"), ("track", "Track my order"))


def _png(rng: random.Random) -> bytes:
    """A valid 1x1 PNG of a random colour (every image differs, so do their hashes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixel = b"\x00" + bytes(rng.randrange(256) for _ in range(3))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixel)) + chunk(b"IEND", b"")


def _pdf(rng: random.Random) -> bytes:
    header = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\n%"
    return header + rng.randbytes(16).hex().encode() + b"\n%%EOF\n"


def _voice_note(rng: random.Random) -> bytes:
    """An Ogg page header and random payload: the magic number is right, the sound is not."""
    return b"OggS\x00\x02" + rng.randbytes(8) + b"OpusHead" + rng.randbytes(64)


@dataclass(frozen=True, slots=True)
class _MediaKind:
    meta_type: str
    mime_type: str
    make: Callable[[random.Random], bytes]
    filenames: tuple[str, ...] = ()


_IMAGE = _MediaKind("image", "image/png", _png)
_DOCUMENT = _MediaKind("document", "application/pdf", _pdf, ("invoice-2291.pdf", "receipt.pdf", "contract.pdf"))
_VOICE = _MediaKind("audio", "audio/ogg; codecs=opus", _voice_note)

# The mix, by weight: what customers of a support line send.
_KINDS: tuple[tuple[str, int], ...] = (
    ("text", 60),
    ("reply", 8),
    ("image", 8),
    ("voice", 6),
    ("document", 4),
    ("reaction", 5),
    ("location", 3),
    ("button", 3),
    ("edit", 3),
    ("revoke", 2),
    ("echo", 3),
    ("group", 4),
    ("group_rename", 1),
)
# Groups the business is in (Groups API): their ids as Meta shapes them, base64 of an opaque key, and subjects.
_GROUPS = (
    ("Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD", "Order 4471: delivery"),
    ("Y2FwaV9ncm91cDoxNzA1NTU1MDEzOTo5OTkwMDAxMjM0NTY3ODkZD", "Casamento de Ana & Léo"),
)
_GROUP_SUBJECTS = ("Order 4471: returns", "VIP customers", "Store opening 🎉", "Wedding list (final)")
_ECHOES = ("Hi! We're on it.", "Your order left the warehouse today 🚚", "Sent you the invoice by email.")
_USERNAMES = ("sunflower.bia", "kwame_o", "zoe.m", "liam.ships", "priya_s", "camila.r")


@dataclass(slots=True)
class _History:
    own: list[str] = field(default_factory=list)  # this customer's own recent wamids
    texts: list[str] = field(default_factory=list)  # those of them that are texts: what they may edit

    def remember(self, wamid: str, kind: str) -> None:
        self.own.append(wamid)
        del self.own[:-20]
        if kind in ("text", "reply"):
            self.texts.append(wamid)
            del self.texts[:-20]

    def forget(self, wamid: str) -> None:
        """A message deleted for everyone: not to be edited or deleted again."""
        if wamid in self.texts:
            self.texts.remove(wamid)


# --- traffic --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    webhook_url: str
    app_secret: bytes
    phone_number_id: str
    display_number: str  # as Meta writes it in webhooks: digits only
    rate: float  # messages per second
    customers: int = 20
    duration: float | None = None  # seconds; None: until cancelled
    max_in_flight: int = 32
    seed: int | None = None  # picks customers and the mix; message ids stay unique regardless
    waba_id: str = DEFAULT_WABA_ID
    timeout: float = 10.0  # seconds per POST

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError("rate must be positive")
        if self.customers < 1 or self.max_in_flight < 1:
            raise ValueError("customers and max_in_flight must be at least 1")
        if self.duration is not None and not self.duration >= 0:
            raise ValueError("duration must not be negative")


@dataclass(slots=True)
class TrafficStats:
    sent: int = 0  # POSTs started
    acknowledged: int = 0  # answered 200
    other_statuses: Counter[int] = field(default_factory=Counter)  # answers other than 200, by status
    errors: Counter[str] = field(default_factory=Counter)  # POSTs with no answer, by exception name
    kinds: Counter[str] = field(default_factory=Counter)  # messages started, by kind of the mix
    latencies: list[float] = field(default_factory=list)  # seconds, of every answered POST
    # How late after its due time the worst POST started: above zero when the in-flight bound held sends
    # back, and then the latencies alone understate what customers would see.
    max_lag: float = 0.0
    elapsed: float = 0.0  # seconds from the first due time to the last answer

    def percentile(self, percent: float) -> float | None:
        """The latency below which `percent` % of answered POSTs fall (nearest rank), None if none was."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(percent / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    def summary(self) -> str:
        """One line: counts, achieved rate and latency percentiles."""
        rate = self.sent / self.elapsed if self.elapsed > 0 else 0.0
        other = sum(self.other_statuses.values())
        line = (
            f"traffic: {self.sent} sent in {self.elapsed:.1f} s ({rate:.1f}/s), {self.acknowledged} acknowledged, "
            f"{other} other answers, {sum(self.errors.values())} errors"
        )
        p50, p99 = self.percentile(50), self.percentile(99)
        if p50 is not None and p99 is not None:
            line += f"; latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
        if self.max_lag > 0.05:
            line += f"; fell up to {self.max_lag:.2f} s behind schedule"
        return line


class TrafficGenerator:
    """Customers writing to one business number, each message one signed POST of Meta's envelope.

    With a `counterpart` (the simulator), media is registered there so the console can download it, and
    replies, reactions and button replies quote what the business really sent the customer; without one,
    media ids are made up and quotes point at the customer's own earlier messages.
    """

    def __init__(self, config: TrafficConfig, *, counterpart: GraphCounterpart | None = None) -> None:
        self.config = config
        self.stats = TrafficStats()
        self._counterpart = counterpart
        # Picks the traffic's shape, reproducibly; nothing secret comes from it.
        self._random = random.Random(config.seed)  # noqa: S311
        self.customers = self._new_customers(config.customers)
        self._history = {customer.wa_id: _History() for customer in self.customers}
        self._kinds = [kind for kind, _ in _KINDS]
        self._weights = [weight for _, weight in _KINDS]
        if counterpart is not None:
            for group_id, subject in _GROUPS:
                if counterpart.groups.get(group_id) is None:
                    members = [c.wa_id for c in self._random.sample(self.customers, min(3, len(self.customers)))]
                    counterpart.groups.create(subject, group_id=group_id, participants=members)

    def _new_customers(self, count: int) -> tuple[Customer, ...]:
        customers: dict[str, Customer] = {}
        while len(customers) < count:
            country, length = self._random.choice(_NUMBER_PLANS)
            digits = [str(self._random.randrange(10)) for _ in range(length)]
            digits[0] = str(self._random.randrange(1, 10))
            # The simulator's error conventions are numbers ending in 0 and a six-digit code (see
            # graph_rules.py): no customer of ours has a 0 seven digits from the end.
            digits[-7] = str(self._random.randrange(1, 10))
            wa_id = country + "".join(digits)
            last = self._random.choice(_LAST_NAMES)
            name = f"{self._random.choice(_FIRST_NAMES)} {last}".strip()
            username = self._random.choice(_USERNAMES) + wa_id[-3:] if self._random.random() < 0.3 else None
            hides = username is not None and self._random.random() < 0.5
            customers.setdefault(wa_id, Customer(wa_id, name, username=username, hides_number=hides))
        return tuple(customers.values())

    async def run(self) -> TrafficStats:
        """Post on schedule until `duration` is over (or the task is cancelled), then wait for the answers."""
        config = self.config
        total = None if config.duration is None else math.floor(config.duration * config.rate + 1e-9)
        in_flight = asyncio.Semaphore(config.max_in_flight)
        pending: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=config.max_in_flight)
        timeout = aiohttp.ClientTimeout(total=config.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            start = loop.time()
            try:
                for index in itertools.count() if total is None else range(total):
                    due = start + index / config.rate
                    if (wait := due - loop.time()) > 0:
                        await asyncio.sleep(wait)
                    await in_flight.acquire()
                    self.stats.max_lag = max(self.stats.max_lag, loop.time() - due)
                    body = self._next_body()
                    task = asyncio.create_task(self._post(session, body, in_flight))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                await asyncio.gather(*pending)
            finally:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                self.stats.elapsed = loop.time() - start
        return self.stats

    async def _post(self, session: aiohttp.ClientSession, body: bytes, in_flight: asyncio.Semaphore) -> None:
        self.stats.sent += 1
        started = time.perf_counter()
        try:
            async with session.post(
                self.config.webhook_url, data=body, headers=webhook_headers(self.config.app_secret, body)
            ) as answer:
                await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.errors[type(exc).__name__] += 1
            return
        finally:
            in_flight.release()
        self.stats.latencies.append(time.perf_counter() - started)
        if answer.status == 200:
            self.stats.acknowledged += 1
        else:
            self.stats.other_statuses[answer.status] += 1

    def _next_body(self) -> bytes:
        customer = self._random.choice(self.customers)
        kind = self._random.choices(self._kinds, self._weights)[0]
        config = self.config
        if kind == "group_rename":
            # Someone renamed a group: Meta tells of the group's new subject, not of who changed it.
            self.stats.kinds[kind] += 1
            group_id, subject = self._random.choice(_GROUPS)[0], self._random.choice(_GROUP_SUBJECTS)
            if self._counterpart is not None:
                self._counterpart.groups.rename(group_id, subject)
            return group_settings_envelope(
                config.phone_number_id, config.display_number, group_id, subject=subject, waba_id=config.waba_id
            )
        wamid = new_wamid(customer.wa_id)
        kind, message = self._message(kind, customer, wamid)
        self.stats.kinds[kind] += 1
        echo = kind == "echo"
        if not echo:
            self._history[customer.wa_id].remember(wamid, kind)
        return messages_envelope(
            config.phone_number_id,
            config.display_number,
            customer.shown_number,
            customer.name,
            message,
            waba_id=config.waba_id,
            user_id=customer.bsuid,
            username=customer.username,
            **({"field": ECHOES_FIELD, "key": "message_echoes"} if echo else {}),
        )

    def _message(self, kind: str, customer: Customer, wamid: str) -> tuple[str, dict[str, Any]]:
        """The message of `kind`, or a text when there is nothing for a reply, reaction, edit or deletion to
        name, or (an echo) no number to echo to."""
        rng = self._random
        history = self._history[customer.wa_id]
        if kind == "echo" and customer.shown_number is not None:
            # smb_message_echoes: from the business's display number to the customer's, as the app sent it.
            echo = {
                "from": self.config.display_number,
                "to": customer.wa_id,
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": rng.choice(_ECHOES)},
            }
            return kind, echo
        if kind == "group":
            message = self._from(customer, "text", {"body": rng.choice(_TEXTS)}, wamid)
            return kind, {**message, "group_id": rng.choice(_GROUPS)[0]}
        if kind in ("edit", "revoke") and history.texts:
            original = rng.choice(history.texts)
            if kind == "revoke":
                history.forget(original)
                content: dict[str, Any] = {"original_message_id": original}
            else:
                edited = {"type": "text", "text": {"body": rng.choice(_TEXTS) + " (edited)"}}
                content = {"original_message_id": original, "message": edited}
            return kind, self._from(customer, kind, content, wamid)
        match kind:
            case "image":
                return kind, self._from(customer, "image", self._media(_IMAGE, rng.choice(_CAPTIONS)), wamid)
            case "document":
                return kind, self._from(customer, "document", self._media(_DOCUMENT, ""), wamid)
            case "voice":
                return kind, self._from(customer, "audio", self._media(_VOICE, ""), wamid)
            case "location":
                latitude, longitude, name, address = rng.choice(_PLACES)
                place: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
                if name is not None:
                    place.update({"name": name, "address": address})
                return kind, self._from(customer, "location", place, wamid)
            case "button":
                button_id, title = rng.choice(_BUTTONS)
                answer = {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}
                context = {"from": self.config.display_number, "id": self._business_wamid(customer.address)}
                return kind, self._from(customer, "interactive", answer, wamid, context=context)
        quoted = self._quotable(customer)
        if kind == "reaction" and quoted is not None:
            reaction = {"message_id": quoted[1], "emoji": rng.choice(_EMOJI)}
            return kind, self._from(customer, "reaction", reaction, wamid)
        text = {"body": rng.choice(_TEXTS)}
        if kind == "reply" and quoted is not None:
            context = {"from": quoted[0], "id": quoted[1]}
            return kind, self._from(customer, "text", text, wamid, context=context)
        return "text", self._from(customer, "text", text, wamid)

    @staticmethod
    def _from(
        customer: Customer, kind: str, content: Any, wamid: str, *, context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A message of the customer's, with their number (unless they hide it) and BSUID."""
        return message_object(
            customer.shown_number, kind, content, wamid=wamid, context=context, user_id=customer.bsuid
        )

    def _business_wamid(self, wa_id: str) -> str:
        """What the business last sent this customer, or a made-up id of a message from before our time."""
        sent = self._counterpart.wamids_sent_to(wa_id) if self._counterpart is not None else ()
        return sent[-1] if sent else new_wamid(wa_id)

    def _quotable(self, customer: Customer) -> tuple[str, str] | None:
        """(sender, wamid) of an earlier message: the business's when there is one, else the customer's own."""
        sent = self._counterpart.wamids_sent_to(customer.address) if self._counterpart is not None else ()
        if sent:
            return self.config.display_number, self._random.choice(sent[-5:])
        own = self._history[customer.wa_id].own
        return (customer.address, self._random.choice(own)) if own else None

    def _media(self, kind: _MediaKind, caption: str) -> dict[str, Any]:
        data = kind.make(self._random)
        filename = self._random.choice(kind.filenames) if kind.filenames else None
        if self._counterpart is not None:
            media_id = self._counterpart.add_media(data, kind.mime_type, filename)
        else:
            media_id = str(self._random.randrange(10**15, 10**16))
        media: dict[str, Any] = {}
        if caption:
            media["caption"] = caption
        if filename is not None:
            media["filename"] = filename
        media.update({"mime_type": kind.mime_type, "sha256": base64.b64encode(hashlib.sha256(data).digest()).decode()})
        media["id"] = media_id
        if kind is _VOICE:
            media["voice"] = True
        return media
