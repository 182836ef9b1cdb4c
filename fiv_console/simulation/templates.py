"""The simulated business account's message templates, listed in Meta's pages and checked at send as Meta does.

`DEFAULT_TEMPLATES` is a realistic account, as `GET /{waba-id}/message_templates` shows it: a positional
utility template (`order_update`), a named one in two languages (`appointment_reminder`, en_US and pt_BR),
one with an image header and a URL button taking a value (`order_shipped`), one with a text header taking a
value and a copy-code button (`welcome_offer`), one with a document header (`invoice_ready`), and two that
may not be sent (`spring_sale` REJECTED, `payment_due` PENDING).

`listing` answers one page of them in Meta's shape (`data`, `paging.cursors`, `paging.next` while more
follow). `refusal` checks a send's `template` as Meta does: a name and language the account has not
approved is error 132001; a header, body or button whose values are not as many as the template's
placeholders (or, in a named template, not the same names) is error 132000.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from fiv_console.simulation.graph_rules import MetaError, meta_error
from fiv_console.whatsapp.templates import TemplateView, describe, parse_templates

_FOOTER = {"type": "FOOTER", "text": "Fi.V Demo Shop"}

DEFAULT_TEMPLATES: tuple[Mapping[str, Any], ...] = (
    {
        "id": "1001",
        "name": "order_update",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} is on its way.",
                "example": {"body_text": [["Ana", "#1234"]]},
            },
            _FOOTER,
        ],
    },
    {
        "id": "1002",
        "name": "appointment_reminder",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Appointment reminder"},
            {
                "type": "BODY",
                "text": "Hi {{first_name}}, this is a reminder of your appointment on {{date}}.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Ana"},
                        {"param_name": "date", "example": "May 3 at 10:00"},
                    ]
                },
            },
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Confirm"}]},
        ],
    },
    {
        "id": "1003",
        "name": "appointment_reminder",
        "language": "pt_BR",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Lembrete de consulta"},
            {
                "type": "BODY",
                "text": "Olá {{first_name}}, lembramos da sua consulta em {{date}}.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Ana"},
                        {"param_name": "date", "example": "3 de maio às 10:00"},
                    ]
                },
            },
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Confirmar"}]},
        ],
    },
    {
        "id": "1004",
        "name": "order_shipped",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "HEADER",
                "format": "IMAGE",
                "example": {"header_handle": ["https://scontent.whatsapp.net/v/t61/parcel.jpg"]},
            },
            {
                "type": "BODY",
                "text": "Good news, {{1}}! Order {{2}} has shipped.",
                "example": {"body_text": [["Ana", "#1234"]]},
            },
            _FOOTER,
            {
                "type": "BUTTONS",
                "buttons": [
                    {
                        "type": "URL",
                        "text": "Track it",
                        "url": "https://shop.example.com/track/{{1}}",
                        "example": ["https://shop.example.com/track/A1234"],
                    },
                    {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+15550100"},
                ],
            },
        ],
    },
    {
        "id": "1005",
        "name": "welcome_offer",
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "parameter_format": "POSITIONAL",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Welcome, {{1}}!", "example": {"header_text": ["Ana"]}},
            {
                "type": "BODY",
                "text": "Use the code below for {{1}} off your first order.",
                "example": {"body_text": [["10%"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "COPY_CODE", "text": "Copy offer code", "example": "WELCOME10"},
                    {"type": "QUICK_REPLY", "text": "Not interested"},
                ],
            },
        ],
    },
    {
        "id": "1006",
        "name": "invoice_ready",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {"type": "HEADER", "format": "DOCUMENT", "example": {"header_handle": ["https://example.com/i.pdf"]}},
            {"type": "BODY", "text": "Your invoice {{1}} is attached.", "example": {"body_text": [["INV-7"]]}},
        ],
    },
    {
        "id": "1007",
        "name": "spring_sale",
        "language": "en_US",
        "status": "REJECTED",
        "category": "MARKETING",
        "parameter_format": "POSITIONAL",
        "components": [{"type": "BODY", "text": "Everything must go: {{1}} off today only!"}],
    },
    {
        "id": "1008",
        "name": "payment_due",
        "language": "en_US",
        "status": "PENDING",
        "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [{"type": "BODY", "text": "Hi {{first_name}}, a payment of {{amount}} is due tomorrow."}],
    },
)


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"index:{index}".encode()).decode().rstrip("=")


def _index(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    kind, _, number = text.partition(":")
    return int(number) if kind == "index" and number.isdigit() else None


def listing(templates: Sequence[Mapping[str, Any]], *, limit: int, after: str | None, url: str) -> dict[str, Any]:
    """One page, as Meta answers it; `url` is this request's, without its query (for `paging.next`).
    An `after` cursor that cannot be read starts from the first template, as Meta ignores one."""
    start = 0
    if after is not None and (index := _index(after)) is not None:
        start = index + 1
    page = list(templates[start : start + limit])
    answer: dict[str, Any] = {"data": page}
    if page:
        last = start + len(page) - 1
        paging: dict[str, Any] = {"cursors": {"before": _cursor(start), "after": _cursor(last)}}
        if last + 1 < len(templates):
            paging["next"] = f"{url}?limit={limit}&after={_cursor(last)}"
        answer["paging"] = paging
    return answer


def views(templates: Sequence[Mapping[str, Any]]) -> list[TemplateView]:
    return [describe(template) for template in parse_templates(templates)]


def _count_mismatch(where: str, expected: int, given: int) -> MetaError:
    details = f"{where}: number of localizable_params ({given}) does not match the expected ({expected})"
    return meta_error(132000, details)


def _parameters(components: Sequence[Any], kind: str, index: int | None = None) -> list[Any]:
    for component in components:
        if not isinstance(component, Mapping) or str(component.get("type", "")).lower() != kind:
            continue
        if index is not None and str(component.get("index")) != str(index):
            continue
        parameters = component.get("parameters")
        return parameters if isinstance(parameters, list) else []
    return []


def _names(parameters: Sequence[Any]) -> set[str]:
    return {str(p.get("parameter_name")) for p in parameters if isinstance(p, Mapping) and "parameter_name" in p}


def refusal(templates: Sequence[TemplateView], name: str, language: str, components: Sequence[Any]) -> MetaError | None:
    """Meta's error for a template send the account's templates do not allow, or None."""
    found = next((t for t in templates if (t.name, t.language) == (name, language) and t.status == "APPROVED"), None)
    if found is None:
        return meta_error(132001, f"template name ({name}) does not exist in {language}")
    header = found.header
    if header is not None and header.kind is not None and (header.kind != "text" or header.parameters):
        given = _parameters(components, "header")
        if len(given) != 1:
            return _count_mismatch("header", 1, len(given))
    body = found.body.parameters if found.body is not None else []
    given = _parameters(components, "body")
    if len(given) != len(body):
        return _count_mismatch("body", len(body), len(given))
    if found.parameter_format == "NAMED" and _names(given) != {parameter.name for parameter in body}:
        return meta_error(132000, "body: the parameter names do not match the template's")
    for button in found.buttons:
        if button.parameter is not None and len(_parameters(components, "button", button.index)) != 1:
            return _count_mismatch(f"button {button.index}", 1, 0)
    return None
