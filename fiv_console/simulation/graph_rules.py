"""What Meta's Graph API accepts and how it refuses: the simulator's rules, apart from its server.

Meta's error catalogue (`meta_error`: the codes, titles and HTTP statuses the console's client must meet),
the recipients that fail by convention (`REJECTED_RECIPIENTS`, `FAILED_RECIPIENTS`), the send, read-mark
and typing bodies validated as Meta validates them (`SendRequest`, `ReadMarkRequest`), and the media
types with their size limits (`MEDIA_LIMITS`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from fiv_console.simulation.envelopes import ERROR_CODES_HREF

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
INVALID_TOKEN = 190
MB = 1024 * 1024
MAX_UPLOAD = 100 * MB


# --- Meta's errors --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetaError:
    code: int
    title: str
    details: str
    http_status: int = 400

    @property
    def message(self) -> str:
        # Graph API errors other than the token's name their code in the message.
        return self.title if self.code == INVALID_TOKEN else f"(#{self.code}) {self.title}"

    def answer_body(self) -> dict[str, Any]:
        """The body of the HTTP answer to a refused request."""
        error: dict[str, Any] = {"message": self.message, "type": "OAuthException", "code": self.code}
        if self.code != INVALID_TOKEN:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(17)[:22]
        return {"error": error}

    def status_error(self) -> dict[str, Any]:
        """The item of a `failed` status's `errors[]`."""
        return {
            "code": self.code,
            "title": self.title,
            "message": self.title,
            "error_data": {"details": self.details},
            "href": ERROR_CODES_HREF,
        }


_CATALOGUE = {
    error.code: error
    for error in (
        MetaError(1, "An unknown error occurred", "An unknown error occurred.", 500),
        MetaError(2, "Service temporarily unavailable", "Temporary due to downtime or due to being overloaded.", 503),
        MetaError(4, "Application request limit reached", "The app has reached its API call rate limit."),
        MetaError(80007, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
        MetaError(100, "Invalid parameter", "The request included invalid or misspelled parameters."),
        MetaError(
            INVALID_TOKEN,
            "Invalid OAuth access token - Cannot parse access token",
            "The access token is missing, expired or invalid.",
            401,
        ),
        MetaError(130429, "Rate limit hit", "Cloud API message throughput has been reached."),
        MetaError(
            130472,
            "User's number is part of an experiment",
            "Failed to send message because this user's phone number is part of an experiment",
        ),
        MetaError(131000, "Something went wrong", "Message failed to send due to an unknown error.", 500),
        MetaError(131008, "Required parameter is missing", "The request is missing a required parameter."),
        MetaError(131009, "Parameter value is not valid", "One or more parameter values are invalid."),
        MetaError(
            131026,
            "Message undeliverable",
            "Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp "
            "phone number; the recipient has not accepted the new Terms of Service; the recipient is using an "
            "old WhatsApp version.",
        ),
        MetaError(
            131047,
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied "
            "to this number.",
        ),
        MetaError(
            131049,
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        ),
        MetaError(131051, "Unsupported message type", "Message type is not currently supported."),
        MetaError(131052, "Media download error", "Unable to download the media sent by the user."),
        MetaError(131053, "Media upload error", "Unable to upload the media used in the message."),
        MetaError(
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient phone number in a "
            "short period of time.",
        ),
        MetaError(
            132000,
            "Number of parameters does not match the expected number of params",
            "The number of variable parameter values does not match the template's.",
        ),
        MetaError(
            132001,
            "Template name does not exist in the translation",
            "The template does not exist in the specified language or has not been approved.",
        ),
    )
}


def meta_error(code: int, details: str | None = None, *, http_status: int | None = None) -> MetaError:
    """Meta's error `code` with its title; `details` and `http_status` override the usual ones."""
    known = _CATALOGUE.get(code, MetaError(code, "Simulated error", "A failure scripted in the simulator."))
    return MetaError(
        code,
        known.title,
        known.details if details is None else details,
        known.http_status if http_status is None else http_status,
    )


# Recipients (their digits) that meet an error: `to` ending in "0131047" is refused with 131047, and so on.
REJECTED_RECIPIENTS: Mapping[str, int] = {
    "0131047": 131047,  # refused unless the message is a template
    "0130429": 130429,
    "0131056": 131056,
    "0131000": 131000,
}
FAILED_RECIPIENTS: Mapping[str, int] = {"0131026": 131026, "0131049": 131049, "0130472": 130472}


def convention(wa_id: str, table: Mapping[str, int]) -> int | None:
    return next((code for suffix, code in table.items() if wa_id.endswith(suffix)), None)


# --- requests, as Meta validates them -------------------------------------------------------------------


class _Strict(BaseModel):
    # Unknown keys are refused, as Meta does, so a misspelt field in a client fails here, not in production.
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Text(_Strict):
    body: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    preview_url: bool = False


class _Media(_Strict):
    id: str | None = Field(default=None, min_length=1)
    link: str | None = Field(default=None, min_length=1)
    caption: str | None = Field(default=None, max_length=MAX_CAPTION_LENGTH)
    filename: str | None = None

    @model_validator(mode="after")
    def _id_or_link(self) -> Self:
        if (self.id is None) == (self.link is None):
            raise ValueError("exactly one of id and link is required")
        return self


class _Reaction(_Strict):
    message_id: str = Field(min_length=1)
    emoji: str = ""  # empty takes the reaction back


class _Language(_Strict):
    code: str = Field(min_length=1)
    policy: str | None = None


class _Template(_Strict):
    name: str = Field(min_length=1, max_length=512)
    language: _Language
    components: list[dict[str, Any]] = []


class _Location(_Strict):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class _Interactive(BaseModel):
    """Checked for its type, and reply buttons and lists for Meta's limits (1 to 3 buttons of titles up to 20
    characters; 1 to 10 rows in all); flows and the rest are deep and not what the simulator tests."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str = Field(min_length=1)
    action: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _within_limits(self) -> Self:
        action = self.action or {}
        if self.type == "button":
            buttons = action.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
                raise ValueError("a button message has 1 to 3 buttons")
            if any(len(str((b.get("reply") or {}).get("title", ""))) > 20 for b in buttons if isinstance(b, dict)):
                raise ValueError("a button title has at most 20 characters")
        if self.type == "list":
            sections = action.get("sections")
            rows = [r for s in sections or [] if isinstance(s, dict) for r in s.get("rows") or []]
            if not isinstance(sections, list) or not 1 <= len(rows) <= 10:
                raise ValueError("a list has 1 to 10 rows")
        return self


class _Context(_Strict):
    message_id: str = Field(min_length=1)


_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]*$")
# A business-scoped user id or a parent one ("US.13491208655302741918", "US.ENT.11815799212886844830"):
# a country code, a period, up to 128 letters and digits (Meta's "Business-scoped user IDs", 2026).
_GROUP_ID = re.compile(r"^[A-Za-z0-9_=-]{1,256}$")
_BSUID = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")


class SendRequest(_Strict):
    messaging_product: Literal["whatsapp"]
    # "group": `to` is a WhatsApp group's id (Groups API, 2025).
    recipient_type: Literal["individual", "group"] = "individual"
    # A phone number as `to`, or, since 2026, a user's BSUID as `recipient`; `to` wins when both are given.
    to: str | None = None
    recipient: str | None = None
    type: Literal[
        "text", "template", "image", "document", "audio", "video", "sticker", "reaction", "location", "contacts",
        "interactive",
    ] = "text"  # fmt: skip
    context: _Context | None = None
    biz_opaque_callback_data: str | None = Field(default=None, max_length=512)
    text: _Text | None = None
    template: _Template | None = None
    image: _Media | None = None
    document: _Media | None = None
    audio: _Media | None = None
    video: _Media | None = None
    sticker: _Media | None = None
    reaction: _Reaction | None = None
    location: _Location | None = None
    contacts: list[dict[str, Any]] | None = None
    interactive: _Interactive | None = None

    @field_validator("to")
    @classmethod
    def _phone_number_or_group(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("recipient_type") == "group":
            if not _GROUP_ID.match(value):
                raise ValueError("must be a group ID")
        elif not _PHONE.match(value) or not 5 <= len(digits(value)) <= 20:
            raise ValueError("must be a phone number")
        return value

    @field_validator("recipient")
    @classmethod
    def _business_scoped_id(cls, value: str | None) -> str | None:
        if value is not None and not _BSUID.match(value):
            raise ValueError("must be a business-scoped user ID")
        return value

    @model_validator(mode="after")
    def _addressed(self) -> Self:
        if self.to is None and self.recipient is None:
            raise ValueError("the parameter to (a phone number) or recipient (a business-scoped user ID) is required")
        return self

    def customer(self) -> tuple[str | None, str]:
        """Whom it goes to: their number's digits (None when sent to a BSUID or a group), and their BSUID,
        the group's id or the digits."""
        if self.recipient_type == "group" and self.to is not None:
            return None, self.to
        if self.to is not None:
            return digits(self.to), digits(self.to)
        assert self.recipient is not None, "_addressed checked it"
        return None, self.recipient

    @model_validator(mode="after")
    def _content_of_type(self) -> Self:
        if getattr(self, self.type) is None:
            raise ValueError(f"the parameter {self.type} is required for a message of type {self.type}")
        return self

    def media(self) -> _Media | None:
        return {
            "image": self.image,
            "document": self.document,
            "audio": self.audio,
            "video": self.video,
            "sticker": self.sticker,
        }.get(self.type)


class _TypingIndicator(_Strict):
    type: Literal["text"]


class ReadMarkRequest(_Strict):
    messaging_product: Literal["whatsapp"]
    status: Literal["read"]
    message_id: str = Field(min_length=1)
    typing_indicator: _TypingIndicator | None = None


def digits(value: str) -> str:
    return "".join(character for character in value if character.isdigit())


def describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(body)'}: {error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors()
    )


# Meta's media types and size limits; anything else is refused with 131053.
MEDIA_LIMITS = {
    "audio/aac": 16 * MB,
    "audio/amr": 16 * MB,
    "audio/mpeg": 16 * MB,
    "audio/mp4": 16 * MB,
    "audio/ogg": 16 * MB,
    "image/jpeg": 5 * MB,
    "image/png": 5 * MB,
    "image/webp": 500 * 1024,
    "video/mp4": 16 * MB,
    "video/3gpp": 16 * MB,
    "text/plain": MAX_UPLOAD,
    "application/pdf": MAX_UPLOAD,
    "application/msword": MAX_UPLOAD,
    "application/vnd.ms-excel": MAX_UPLOAD,
    "application/vnd.ms-powerpoint": MAX_UPLOAD,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": MAX_UPLOAD,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": MAX_UPLOAD,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": MAX_UPLOAD,
}
