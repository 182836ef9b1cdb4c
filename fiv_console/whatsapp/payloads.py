"""Webhook bodies of the WhatsApp Cloud API, parsed into normalized, frozen records.

`parse_webhook(raw)` takes the raw bytes of a POST (once its signature has been checked) and returns a
`WebhookBatch`: an `InboundMessage` per entry x change x message, a `StatusUpdate` per status, a
`WebhookError` per error Meta reports on a whole change, a `GroupChange` per group whose subject or
description a group webhook (`group_lifecycle_update`, `group_settings_update`) says, and an `OtherChange`
per change that is not about these (template status, account updates) or cannot be read as one.

Tolerance is the rule, because Meta retries a refused webhook for 7 days and that gains nothing:
- fields Meta adds are ignored by the models and kept in each record's `raw`; an unknown message kind or
  status is a record with the kind or status as given;
- in a message, a field that cannot be read (a placeholder where a number belongs, a timestamp that is
  not one) is left out, and `problem` says which and why: the rest of the message, its content, is kept.
  Only a message whose id or kind is wrong, or a status or error with wrong types, is a record of its own
  with `problem` set (kind or status "invalid") and its raw JSON; the rest of the batch is read as usual;
- a change whose value does not have the shape of a messages change becomes an `OtherChange` with
  `problem` set, so none of its items is silently dropped.
Only a body that is not JSON, or not a business-account envelope (`object`, the `entry` list, each entry's
`id` and `changes` list), raises `WebhookPayloadError`.

An item nested too deeply to be written back out as JSON (orjson reads 1024 levels but writes 254; Meta's
items are a few levels deep) could never be stored with its raw JSON: it becomes an invalid record with no
ids and no `raw`, for the intake to keep the whole body as a dead letter.

The models use pydantic's lax mode: a number is never taken for a string, but a number or a boolean that
comes as a string is read. Lengths that the `messages` table checks (kind 1 to 64 characters, message ids
up to 256) are checked here, so an item that could not be stored is an invalid record instead of a failed
transaction that Meta would retry forever.

Before anything else, every string of the decoded tree, keys included, is made storable, so that the
records and the raw JSON stored with them agree: NUL (U+0000) is removed, and what is not a Unicode
character is replaced with U+FFFD: a lone surrogate (`"\\ud800"`, half an emoji) or bytes that are not
UTF-8. PostgreSQL's text and jsonb can hold neither NUL nor those, and orjson refuses the latter when it
reads or writes JSON: kept, one bad character in one message would lose the whole body. orjson reads
every body first; only a body it refuses is read again by the standard library's parser, which takes
lone surrogates (and reads the bytes as UTF-8, replacing what is not), while refusing what orjson refuses
besides (NaN, infinite numbers) so both readings accept the same documents. That second reading nests
at most as deep as Python's recursion limit (about 1000 levels, orjson's is 1024): a body deeper than that
with a bad character in it is not JSON. `WebhookBatch.repaired` says characters were replaced. Nothing
else is changed.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, field_validator, model_validator

BUSINESS_ACCOUNT = "whatsapp_business_account"
INVALID = "invalid"
"""The kind of a message, or status of a status, whose JSON could not be read; `problem` says why."""

MESSAGES_FIELD = "messages"
# Fields that carry messages of a business number that uses the WhatsApp Business app as well (Meta's
# "coexistence"): what the business sent from the app, and the chats of the app before onboarding.
ECHOES_FIELD = "smb_message_echoes"
HISTORY_FIELD = "history"
# Fields that say a WhatsApp group's subject and description (Meta's "Webhooks for Groups API"): the group the
# business created, and a change of its settings.
GROUP_LIFECYCLE_FIELD = "group_lifecycle_update"
GROUP_SETTINGS_FIELD = "group_settings_update"
GROUP_FIELDS = (GROUP_LIFECYCLE_FIELD, GROUP_SETTINGS_FIELD)
GROUP_SUBJECT_MAX = 500  # the `contacts.profile_name` column; Meta allows 128
GROUP_DESCRIPTION_MAX = 2048  # Meta's limit, and the `contacts.group_description` column

# Limits of the `messages` table's columns (sql/0001_core_schema.sql).
_KIND_MAX = 64
_WAMID_MAX = 256


class WebhookPayloadError(ValueError):
    """The body is not a WhatsApp webhook at all: not JSON, or not a business-account envelope.

    What the intake should answer: the signature has been checked by then, so the bytes did come from
    Meta, and Meta would retry any answer but 200 with the same bytes, and the same outcome, for 7 days.
    So the intake keeps the raw body as a dead letter an operator can see and answers 200; only when it
    cannot keep it (database down) does it answer 503, so that Meta tries again later.
    """


def _from_epoch_seconds(value: object) -> datetime:
    # Meta's own samples sometimes give the seconds as a JSON number: the same instant, so it is read too.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise ValueError("must be a string of Unix seconds")
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("Unix seconds out of range") from None


# Meta sends times as strings of Unix seconds.
EpochSeconds = Annotated[datetime, PlainValidator(_from_epoch_seconds)]
WaMessageId = Annotated[str, Field(min_length=1, max_length=_WAMID_MAX)]


class _Model(BaseModel):
    """Read from Meta's JSON: fields Meta adds are ignored here (the record's `raw` keeps them)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class _Record(BaseModel):
    """Built by this module from what the models read."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class WhatsAppError(_Model):
    """An error Meta reports: on a message it could not render, on a failed status, or on a whole change."""

    code: int
    title: str | None = None
    message: str | None = None
    details: str | None = None  # Meta's `error_data.details`, the part that says what happened
    href: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten_error_data(cls, data: Any) -> Any:
        if isinstance(data, dict) and "error_data" in data:
            data = dict(data)
            error_data = data.pop("error_data")
            if isinstance(error_data, dict):
                data["details"] = error_data.get("details")
            elif error_data is not None:
                raise ValueError("error_data must be an object")
        return data


class Media(_Model):
    """An image, audio, video, document or sticker, by Meta's media id (fetched later, within 7 days)."""

    id: str
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None  # documents
    voice: bool | None = None  # audio: a voice note recorded in WhatsApp rather than a file
    animated: bool | None = None  # stickers
    url: str | None = None


class Location(_Model):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class Interactive(_Model):
    """The customer's answer to an interactive message: a reply button, a list row or a flow (nfm_reply).

    Meta nests the answer under a key named after its type; it is lifted up here, so `id` and `title` are
    those of the button or row, and a flow's `response_json` (a JSON document in a string), `body` and
    `name` are those of the flow. The answers of other kinds (`payment_method`, `call_permission_reply`...)
    keep their own fields as sent: they are extra fields of the record, stored in the message's details.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    id: str | None = None
    title: str | None = None
    description: str | None = None
    response_json: str | None = None
    body: str | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _lift_answer(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("type"), str) and data["type"] in data:
            answer = data[data["type"]]
            if not isinstance(answer, dict):
                raise ValueError(f"{data['type']} must be an object")
            return {**answer, "type": data["type"]}
        return data


class Button(_Model):
    """A tap on a quick-reply button of a template message."""

    payload: str | None = None
    text: str | None = None


class Reaction(_Model):
    message_id: WaMessageId
    emoji: str | None = None  # None when the reaction is removed: Meta sends no emoji, or an empty one

    @field_validator("emoji")
    @classmethod
    def _removed_is_none(cls, value: str | None) -> str | None:
        return value or None


class ProductItem(_Model):
    product_retailer_id: str
    quantity: int
    item_price: float
    currency: str


class Order(_Model):
    catalog_id: str | None = None
    text: str | None = None
    product_items: tuple[ProductItem, ...] = ()


class System(_Model):
    """Something WhatsApp announces about the customer: a new number (`user_changed_number`), identity..."""

    type: str | None = None
    body: str | None = None
    wa_id: str | None = None  # the customer's new number, for user_changed_number
    user_id: str | None = None  # their new business-scoped id (a new number brings a new one)


class _Text(_Model):
    body: str


class _Unsupported(_Model):
    type: str | None = None


class _EditedMessage(_Model):
    """What an edited message says now: its text, or its media with the new caption."""

    type: str | None = None
    text: _Text | None = None
    image: Media | None = None
    video: Media | None = None
    document: Media | None = None

    def media(self) -> Media | None:
        return {"image": self.image, "video": self.video, "document": self.document}.get(self.type or "")


class _Edit(_Model):
    """`type: edit`: the customer changed a message they sent (Meta's webhooks reference, messages/edit)."""

    original_message_id: WaMessageId
    message: _EditedMessage | None = None


class _Revoke(_Model):
    """`type: revoke`: the customer deleted a message for everyone (messages/revoke)."""

    original_message_id: WaMessageId


class _Context(_Model):
    from_: str | None = Field(default=None, alias="from")
    id: WaMessageId | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: dict[str, Any] | None = None


class _Message(_Model):
    # Optional: Meta may leave out the number of a user who has a username (`from_user_id` is there then).
    from_: str | None = Field(default=None, alias="from")
    from_user_id: str | None = None
    id: WaMessageId
    group_id: str | None = None  # a message in a WhatsApp group: `from` is the participant who wrote it
    # Optional here so that a bad one costs only itself (`_read_message`); the intake takes the arrival time.
    timestamp: EpochSeconds | None = None
    type: str = Field(min_length=1, max_length=_KIND_MAX)
    context: _Context | None = None
    referral: dict[str, Any] | None = None
    errors: tuple[WhatsAppError, ...] = ()
    text: _Text | None = None
    image: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: tuple[dict[str, Any], ...] = ()
    interactive: Interactive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    order: Order | None = None
    system: System | None = None
    unsupported: _Unsupported | None = None
    edit: _Edit | None = None
    revoke: _Revoke | None = None

    def media(self) -> Media | None:
        if self.type == "edit":
            return self.edit.message.media() if self.edit and self.edit.message else None
        return {
            "image": self.image,
            "audio": self.audio,
            "video": self.video,
            "document": self.document,
            "sticker": self.sticker,
        }.get(self.type)

    def text_to_show(self) -> str | None:
        """The words an agent sees for this message in a list or a notification, when it has some."""
        media = self.media()
        match self.type:
            case "text":
                return self.text.body if self.text else None
            case "image" | "video" | "document":
                return media.caption if media else None
            case "location":
                return self.location.name if self.location else None
            case "reaction":
                return self.reaction.emoji if self.reaction else None
            case "interactive":
                if self.interactive is None:
                    return None
                return self.interactive.title if self.interactive.title is not None else self.interactive.body
            case "button":
                return self.button.text if self.button else None
            case "order":
                return self.order.text if self.order else None
            case "system":
                return self.system.body if self.system else None
            case "edit":
                edited = self.edit.message if self.edit else None
                if edited is None:
                    return None
                if edited.text is not None:
                    return edited.text.body
                return media.caption if media else None
        return None

    def original_message_id(self) -> str | None:
        """The message an edit or a revoke changes."""
        if self.type == "edit" and self.edit:
            return self.edit.original_message_id
        if self.type == "revoke" and self.revoke:
            return self.revoke.original_message_id
        return None


class _Status(_Model):
    id: WaMessageId
    status: str = Field(min_length=1)
    timestamp: EpochSeconds
    recipient_id: str | None = None
    errors: tuple[WhatsAppError, ...] = ()
    conversation: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None


class _Profile(_Model):
    name: str | None = None
    username: str | None = None  # a user who adopted a username (2026): Meta may then leave the number out


class _Contact(_Model):
    wa_id: str | None = None
    user_id: str | None = None  # the business-scoped user id (BSUID), in every messages webhook since 2026
    country_code: str | None = None
    profile: _Profile | None = None

    def country(self) -> str | None:
        """The user's country: as given, else the ISO 3166 code a BSUID starts with (`US.1349...`)."""
        if self.country_code:
            return self.country_code
        prefix = (self.user_id or "").partition(".")[0]
        return prefix if len(prefix) == 2 and prefix.isalpha() else None


class _Metadata(_Model):
    display_phone_number: str | None = None
    phone_number_id: str = Field(min_length=1)


class _Value(_Model):
    """The value of a `messages` change; its items are read one by one, so one bad item stays alone."""

    messaging_product: str | None = None
    metadata: _Metadata
    contacts: tuple[Any, ...] = ()
    messages: tuple[Any, ...] = ()
    statuses: tuple[Any, ...] = ()
    errors: tuple[Any, ...] = ()
    message_echoes: tuple[Any, ...] = ()  # smb_message_echoes
    history: tuple[Any, ...] = ()  # history: chunks of threads


class _Thread(_Model):
    id: str  # the customer's number
    messages: tuple[Any, ...] = ()


class _HistoryChunk(_Model):
    threads: tuple[_Thread, ...] = ()
    errors: tuple[Any, ...] = ()  # the business declined to share its history (2593109)


class _Change(_Model):
    field: str
    value: Any = None


class _GroupValue(_Model):
    """The value of a group change: its items are read one by one, so one bad item stays alone."""

    metadata: _Metadata
    groups: tuple[Any, ...] = ()


class _GroupSetting(_Model):
    text: str | None = None
    update_successful: bool = False


class _Group(_Model):
    group_id: str = Field(min_length=1, max_length=_WAMID_MAX)
    type: str = Field(min_length=1)
    timestamp: EpochSeconds
    subject: str | None = None  # group_create
    description: str | None = None
    errors: tuple[Any, ...] = ()  # the operation failed
    group_subject: _GroupSetting | None = None  # group_settings_update
    group_description: _GroupSetting | None = None


class _Entry(_Model):
    id: str
    changes: tuple[Any, ...]


class _Envelope(_Model):
    object: str
    entry: tuple[_Entry, ...]


class InboundMessage(_Record):
    """A message from a customer, normalized; `raw` is the message's own JSON object, for storage."""

    waba_id: str
    phone_number_id: str
    # None only when the message is invalid and had no usable id.
    wa_message_id: str | None
    wa_id: str | None  # the customer's number (`from`; an echo's `to`, a history thread's id)
    user_id: str | None  # the customer's business-scoped id (`from_user_id`, or their contact's `user_id`)
    profile_name: str | None
    username: str | None = None
    country_code: str | None = None
    timestamp: datetime | None  # None only when the message is invalid
    kind: str  # Meta's `type` as given, or "invalid"
    text: str | None = None
    media: Media | None = None
    location: Location | None = None
    contacts: tuple[dict[str, Any], ...] = ()  # shared contact cards, as sent
    interactive: Interactive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    order: Order | None = None
    system: System | None = None
    unsupported_type: str | None = None  # what Meta could not render, when it says ("edit", "poll_update")
    # The message an edit or revoke changes (for an edit, `text` and `media` are what it says now).
    original_message_id: str | None = None
    reply_to: str | None = None  # the wamid this message answers (`context.id`)
    reply_to_from: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: dict[str, Any] | None = None  # an enquiry about a catalogue product
    referral: dict[str, Any] | None = None  # a click-to-WhatsApp ad or post the customer came from
    errors: tuple[WhatsAppError, ...] = ()
    raw: Any
    problem: str | None = None  # why the message is invalid, or which fields of it were left out and why
    group_id: str | None = None  # written in this WhatsApp group (the sender is the participant)
    # "outbound": the business sent it from the WhatsApp Business app (an echo, or an app chat's history).
    direction: Literal["inbound", "outbound"] = "inbound"
    from_history: bool = False  # from the app's chats before onboarding (the `history` field)
    delivery: str | None = None  # a history message's delivery as the app knew it, lower case


class StatusUpdate(_Record):
    """Where one of our outgoing messages stands: sent, delivered, read, failed (with errors), played..."""

    waba_id: str
    phone_number_id: str
    wa_message_id: str | None  # None only when the status is invalid and had no usable id
    status: str  # as given, or "invalid"
    timestamp: datetime | None  # None only when the status is invalid
    recipient_id: str | None = None
    errors: tuple[WhatsAppError, ...] = ()
    conversation: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None
    raw: Any
    problem: str | None = None


class WebhookError(_Record):
    """An error Meta reports on a whole change (a value-level `errors[]` item), maybe with no message."""

    waba_id: str
    phone_number_id: str
    error: WhatsAppError | None  # None only when the item is invalid
    raw: Any
    problem: str | None = None


class OtherChange(_Record):
    """A change that is not about messages (template status, account update), or one that cannot be read.

    `raw` is the change object as sent (with its `field` and `value`); `problem` says why a `messages`
    change, or a change without a `field`, could not be read, and is None for changes of other fields.
    """

    waba_id: str
    field: str | None
    raw: Any
    problem: str | None = None


class GroupChange(_Record):
    """A WhatsApp group's subject and description as a group webhook says they now are (None: not said):
    the group the business created (`group_create`), or the settings it changed (`group_settings_update`,
    only those Meta says were updated)."""

    waba_id: str
    phone_number_id: str
    group_id: str
    kind: str  # Meta's `type`
    timestamp: datetime
    subject: str | None
    description: str | None
    raw: Any


class WebhookBatch(_Record):
    """Everything one POST carried, in the order Meta sent it."""

    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    errors: tuple[WebhookError, ...] = ()
    groups: tuple[GroupChange, ...] = ()
    other_changes: tuple[OtherChange, ...] = ()
    # Characters that are not Unicode (lone surrogates, bytes that are not UTF-8) were replaced with U+FFFD.
    repaired: bool = False


def parse_webhook(raw: bytes) -> WebhookBatch:
    """Every message, status and error of a webhook body; `WebhookPayloadError` if it is not a webhook."""
    repaired = False
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        document = _read_leniently(raw, exc)
        repaired = True
    # JSON can carry a NUL only as the escape `\u0000`, so without it in the bytes there is none to remove;
    # and orjson reads neither lone surrogates nor bytes that are not UTF-8.
    if repaired or b"\\u0000" in raw:
        document = _cleaned(document)
    if not isinstance(document, dict) or document.get("object") != BUSINESS_ACCOUNT:
        raise WebhookPayloadError(f'not a WhatsApp webhook: "object" is not "{BUSINESS_ACCOUNT}"')
    try:
        envelope = _Envelope.model_validate(document)
    except ValidationError as exc:
        raise WebhookPayloadError(f"not a WhatsApp webhook envelope: {_describe(exc)}") from None

    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    errors: list[WebhookError] = []
    other_changes: list[OtherChange] = []
    groups: list[GroupChange] = []
    for entry in envelope.entry:
        for item in entry.changes:
            try:
                change = _Change.model_validate(item)
            except ValidationError as exc:
                other_changes.append(OtherChange(waba_id=entry.id, field=None, raw=item, problem=_describe(exc)))
                continue
            if change.field in GROUP_FIELDS:
                _read_groups(entry.id, change.field, item, change.value, groups, other_changes)
                continue
            if change.field not in (MESSAGES_FIELD, ECHOES_FIELD, HISTORY_FIELD):
                other_changes.append(OtherChange(waba_id=entry.id, field=change.field, raw=item))
                continue
            try:
                value = _Value.model_validate(change.value)
            except ValidationError as exc:
                other_changes.append(
                    OtherChange(waba_id=entry.id, field=change.field, raw=item, problem=_describe(exc))
                )
                continue
            phone_number_id = value.metadata.phone_number_id
            people = _contacts_by_key(value.contacts)
            messages.extend(_message(entry.id, phone_number_id, people, message) for message in value.messages)
            messages.extend(_echo(entry.id, phone_number_id, people, echo) for echo in value.message_echoes)
            statuses.extend(_status(entry.id, phone_number_id, status) for status in value.statuses)
            errors.extend(_error(entry.id, phone_number_id, error) for error in value.errors)
            for chunk in value.history:
                try:
                    history = _HistoryChunk.model_validate(chunk)
                except ValidationError as exc:
                    other_changes.append(
                        OtherChange(waba_id=entry.id, field=change.field, raw=chunk, problem=_describe(exc))
                    )
                    continue
                errors.extend(_error(entry.id, phone_number_id, error) for error in history.errors)
                for thread in history.threads:
                    messages.extend(
                        _from_history(entry.id, phone_number_id, people, thread, m) for m in thread.messages
                    )
    return WebhookBatch(
        messages=tuple(messages),
        statuses=tuple(statuses),
        errors=tuple(errors),
        groups=tuple(groups),
        other_changes=tuple(other_changes),
        repaired=repaired,
    )


def _read_groups(
    waba_id: str, field: str, item: Any, value: Any, groups: list[GroupChange], other_changes: list[OtherChange]
) -> None:
    """The group changes of one change; what cannot be read becomes an `OtherChange` with its problem."""
    try:
        group_value = _GroupValue.model_validate(value)
    except ValidationError as exc:
        other_changes.append(OtherChange(waba_id=waba_id, field=field, raw=item, problem=_describe(exc)))
        return
    for raw in group_value.groups:
        try:
            group = _Group.model_validate(raw)
        except ValidationError as exc:
            other_changes.append(OtherChange(waba_id=waba_id, field=field, raw=raw, problem=_describe(exc)))
            continue
        subject, description = _group_names(group)
        if subject is None and description is None:
            continue  # a deletion, a failure, or a change of the picture only: nothing to show
        groups.append(
            GroupChange(
                waba_id=waba_id,
                phone_number_id=group_value.metadata.phone_number_id,
                group_id=group.group_id,
                kind=group.type,
                timestamp=group.timestamp,
                subject=subject[:GROUP_SUBJECT_MAX] if subject else None,
                description=description[:GROUP_DESCRIPTION_MAX] if description is not None else None,
                raw=raw,
            )
        )


def _group_names(group: _Group) -> tuple[str | None, str | None]:
    """The subject and description the group now has, by this item; None for what it does not say."""
    if group.type == "group_create":
        return (None, None) if group.errors else (group.subject, group.description)
    if group.type == "group_settings_update":
        subject, description = group.group_subject, group.group_description
        return (
            subject.text if subject is not None and subject.update_successful else None,
            description.text if description is not None and description.update_successful else None,
        )
    return None, None


# What orjson reads as an integer; beyond it, a float (as orjson does).
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _int(text: str) -> int | float:
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else float(text)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number is infinite")
    return value


def _refused_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _read_leniently(raw: bytes, refusal: orjson.JSONDecodeError) -> Any:
    """A body orjson refused, read again taking lone surrogates and bytes that are not UTF-8 (left for
    `_cleaned` to replace); `WebhookPayloadError`, with orjson's reason, if it is not JSON even so."""
    try:
        return json.loads(
            raw.decode("utf-8", errors="replace"),
            parse_int=_int,
            parse_float=_finite,
            parse_constant=_refused_constant,
        )
    except (ValueError, RecursionError):
        raise WebhookPayloadError(f"the body is not JSON: {refusal}") from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable_text(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def _cleaned(document: Any) -> Any:
    """The decoded document with every string and key made storable (`_storable_text`), in place, keys kept
    in order.

    A loop rather than recursion: orjson accepts 1024 levels of nesting, more than Python's recursion limit.
    """
    if isinstance(document, str):
        return _storable_text(document)
    pending: list[Any] = [document]
    while pending:
        container = pending.pop()
        if isinstance(container, list):
            for index, item in enumerate(container):
                if isinstance(item, str):
                    container[index] = _storable_text(item)
                elif isinstance(item, list | dict):
                    pending.append(item)
        elif isinstance(container, dict):
            items = list(container.items())
            container.clear()
            for key, item in items:
                if isinstance(item, list | dict):
                    pending.append(item)
                container[_storable_text(key)] = _storable_text(item) if isinstance(item, str) else item
    return document


def _describe(exc: ValidationError) -> str:
    """Where and what, without the offending values (they can be long, and are in `raw` anyway)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(item)'}: {error['msg']}" for error in exc.errors()
    )


def _string(item: Any, key: str, max_length: int) -> str | None:
    """A field of an item that failed to parse, if it is usable as it stands."""
    value = item.get(key) if isinstance(item, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= max_length else None


def _contacts_by_key(contacts: tuple[Any, ...]) -> dict[str, _Contact]:
    """The change's contacts, by wa_id and by business-scoped user id."""
    people: dict[str, _Contact] = {}
    for item in contacts:
        try:
            contact = _Contact.model_validate(item)
        except ValidationError:
            # Only a display name is lost: the message itself is read, and Meta sends the name again.
            continue
        for key in (contact.wa_id, contact.user_id):
            if key is not None:
                people[key] = contact
    return people


def _storable(item: Any) -> bool:
    try:
        orjson.dumps(item)
    except TypeError:
        return False
    return True


_TOO_DEEP = "nested too deeply to be stored"


# What a message cannot be stored without: anything else that is wrong costs only itself (`_read_message`).
_ESSENTIAL = frozenset({"id", "type"})
# Fields dropped, one round per level of nesting, before a message is given up as invalid.
_DROP_ROUNDS = 8


def _read_message(item: Any) -> tuple[_Message, str | None]:
    """The message, with each field that could not be read left out, and what was left out and why; raises
    the ValidationError when an essential field (its id, its kind) or the item itself is wrong."""
    data = item
    dropped: list[str] = []
    for _ in range(_DROP_ROUNDS):
        try:
            return _Message.model_validate(data), "; ".join(dropped) or None
        except ValidationError as exc:
            paths = [_field_path(error) for error in exc.errors()]
            if not isinstance(data, dict) or any(not path or path[0] in _ESSENTIAL for path in paths):
                raise
            dropped.append(_describe(exc))
            data = _without(data, paths)
    return _Message.model_validate(data), "; ".join(dropped)


def _field_path(error: Any) -> tuple[str | int, ...]:
    """The value to leave out for one error: the field itself, or the object missing a field it needs."""
    loc = tuple(error["loc"])
    return loc[:-1] if error["type"] == "missing" else loc


def _without(data: Any, paths: list[tuple[str | int, ...]]) -> Any:
    """A copy of `data` without the values at `paths` (a list item left out shifts none of the others)."""
    removed = object()

    def strip(value: Any, path: tuple[str | int, ...]) -> Any:
        if not path:
            return removed
        head, rest = path[0], path[1:]
        if isinstance(value, dict) and head in value:
            return {
                k: v for k, v in ((k, strip(v, rest) if k == head else v) for k, v in value.items()) if v is not removed
            }
        if isinstance(value, list) and isinstance(head, int) and 0 <= head < len(value):
            return [v for v in (strip(v, rest) if i == head else v for i, v in enumerate(value)) if v is not removed]
        return value

    for path in sorted(set(paths), key=len, reverse=True):
        data = strip(data, path)
    return data


def _message(waba_id: str, phone_number_id: str, people: dict[str, _Contact], item: Any) -> InboundMessage:
    if not _storable(item):
        return InboundMessage(
            waba_id=waba_id,
            phone_number_id=phone_number_id,
            wa_message_id=None,
            wa_id=None,
            user_id=None,
            profile_name=None,
            timestamp=None,
            kind=INVALID,
            raw=None,
            problem=_TOO_DEEP,
        )
    try:
        message, problem = _read_message(item)
    except ValidationError as exc:
        wa_id = _string(item, "from", _WAMID_MAX)
        user_id = _string(item, "from_user_id", _WAMID_MAX)
        contact = _contact_of(people, wa_id, user_id)
        return InboundMessage(
            waba_id=waba_id,
            phone_number_id=phone_number_id,
            wa_message_id=_string(item, "id", _WAMID_MAX),
            wa_id=wa_id,
            user_id=user_id or (contact.user_id if contact else None),
            profile_name=contact.profile.name if contact and contact.profile else None,
            timestamp=None,
            kind=INVALID,
            raw=item,
            problem=_describe(exc),
        )
    context = message.context or _Context()
    contact = _contact_of(people, message.from_, message.from_user_id)
    profile = contact.profile if contact and contact.profile else _Profile()
    return InboundMessage(
        waba_id=waba_id,
        phone_number_id=phone_number_id,
        wa_message_id=message.id,
        group_id=message.group_id,
        wa_id=message.from_,
        user_id=message.from_user_id or (contact.user_id if contact else None),
        profile_name=profile.name,
        username=profile.username,
        country_code=contact.country() if contact else None,
        timestamp=message.timestamp,
        kind=message.type,
        text=message.text_to_show(),
        media=message.media(),
        location=message.location,
        contacts=message.contacts,
        interactive=message.interactive,
        button=message.button,
        reaction=message.reaction,
        order=message.order,
        system=message.system,
        unsupported_type=message.unsupported.type if message.unsupported else None,
        original_message_id=message.original_message_id(),
        reply_to=context.id,
        reply_to_from=context.from_,
        forwarded=context.forwarded,
        frequently_forwarded=context.frequently_forwarded,
        referred_product=context.referred_product,
        referral=message.referral,
        errors=message.errors,
        raw=item,
        problem=problem,
    )


def _echo(waba_id: str, phone_number_id: str, people: dict[str, _Contact], item: Any) -> InboundMessage:
    """A message the business sent from the WhatsApp Business app: outbound, to its `to`."""
    customer = _customer_number(item.get("to") if isinstance(item, dict) else None)
    user_id = _string(item, "to_user_id", _WAMID_MAX)
    message = _message(waba_id, phone_number_id, people, item)
    contact = _contact_of(people, customer, user_id)
    return message.model_copy(
        update={
            "direction": "outbound",
            "wa_id": customer,
            "user_id": user_id or (contact.user_id if contact else None),
            "profile_name": contact.profile.name if contact and contact.profile else None,
            "username": contact.profile.username if contact and contact.profile else None,
            "country_code": contact.country() if contact else None,
        }
    )


def _from_history(
    waba_id: str, phone_number_id: str, people: dict[str, _Contact], thread: _Thread, item: Any
) -> InboundMessage:
    """A message of a chat the business had in the app: the customer's (its `from` is the thread's), or the
    business's own."""
    message = _message(waba_id, phone_number_id, people, item)
    customer = _customer_number(thread.id)
    own = _customer_number(message.wa_id) != customer
    context = item.get("history_context") if isinstance(item, dict) else None
    delivery = context.get("status") if isinstance(context, dict) else None
    return message.model_copy(
        update={
            "direction": "outbound" if own else "inbound",
            "wa_id": customer,
            "from_history": True,
            "delivery": delivery.lower() if isinstance(delivery, str) else None,
        }
    )


def _customer_number(value: Any) -> str | None:
    """A number as the customer's key: Meta writes an echo's `to` as it was given, maybe with a `+`."""
    return value.removeprefix("+") if isinstance(value, str) and value else None


def _contact_of(people: dict[str, _Contact], wa_id: str | None, user_id: str | None) -> _Contact | None:
    """The contact the change gives for the sender, by number or business-scoped id."""
    for key in (wa_id, user_id):
        if key is not None and key in people:
            return people[key]
    return None


def _status(waba_id: str, phone_number_id: str, item: Any) -> StatusUpdate:
    if not _storable(item):
        return StatusUpdate(
            waba_id=waba_id,
            phone_number_id=phone_number_id,
            wa_message_id=None,
            status=INVALID,
            timestamp=None,
            raw=None,
            problem=_TOO_DEEP,
        )
    try:
        status = _Status.model_validate(item)
    except ValidationError as exc:
        return StatusUpdate(
            waba_id=waba_id,
            phone_number_id=phone_number_id,
            wa_message_id=_string(item, "id", _WAMID_MAX),
            status=INVALID,
            timestamp=None,
            raw=item,
            problem=_describe(exc),
        )
    return StatusUpdate(
        waba_id=waba_id,
        phone_number_id=phone_number_id,
        wa_message_id=status.id,
        status=status.status,
        timestamp=status.timestamp,
        recipient_id=status.recipient_id,
        errors=status.errors,
        conversation=status.conversation,
        pricing=status.pricing,
        biz_opaque_callback_data=status.biz_opaque_callback_data,
        raw=item,
    )


def _error(waba_id: str, phone_number_id: str, item: Any) -> WebhookError:
    try:
        error = WhatsAppError.model_validate(item)
    except ValidationError as exc:
        return WebhookError(
            waba_id=waba_id, phone_number_id=phone_number_id, error=None, raw=item, problem=_describe(exc)
        )
    return WebhookError(waba_id=waba_id, phone_number_id=phone_number_id, error=error, raw=item)
