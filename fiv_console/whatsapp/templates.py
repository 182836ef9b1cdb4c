"""Message templates as the Graph API lists them (`GET /{waba-id}/message_templates`), and what a picker needs.

`MessageTemplate` reads one item of Meta's list: name, language, status, category, `parameter_format` and
the components. Meta adds fields and component kinds over time, so anything not known here is ignored, and
one template that cannot be read at all is left out of the list (`parse_templates`) rather than failing it.

`describe` turns a template into a `TemplateView`, what a person choosing and filling one needs: the header
(its text with its parameter, or the media it needs), the body's text with its parameters in order (`1`,
`2`, ... for positional templates, `{{first_name}}` for named ones) with Meta's examples, the footer, and
the buttons, with the ones that take a value at send time (a URL ending in `{{1}}`, a coupon's code). A
template using something this console cannot fill in (a carousel, a one-time-password or flow button) is
shown with `sendable: false` and says what, so it is never sent half filled.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

# `{{1}}` or `{{first_name}}`; Meta allows lower-case letters, digits and underscores in names.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")

ParameterFormat = Literal["POSITIONAL", "NAMED"]
HeaderKind = Literal["text", "image", "video", "document", "location"]
_HEADER_KINDS: dict[str, HeaderKind] = {
    "TEXT": "text",
    "IMAGE": "image",
    "VIDEO": "video",
    "DOCUMENT": "document",
    "LOCATION": "location",
}
# Buttons that need nothing at send time, and those whose value this console asks for.
_PLAIN_BUTTONS = frozenset({"QUICK_REPLY", "PHONE_NUMBER"})
_VALUE_BUTTONS = frozenset({"URL", "COPY_CODE"})


# --- as Meta lists them ---------------------------------------------------------------------------------


class _Meta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TemplateButton(_Meta):
    type: str
    text: str | None = None
    url: str | None = None
    phone_number: str | None = None
    # A URL button's example is a list of full URLs, a copy-code button's the code itself.
    example: Any = None


class TemplateComponent(_Meta):
    type: str
    format: str | None = None
    text: str | None = None
    # `header_text`, `header_text_named_params`, `body_text`, `body_text_named_params`, `header_handle`;
    # read leniently (`_examples`), since a malformed example must not hide the template.
    example: Any = None
    buttons: list[TemplateButton] = []


class MessageTemplate(_Meta):
    id: str | None = None
    name: str = Field(min_length=1)
    language: str = Field(min_length=1)
    status: str = Field(min_length=1)
    category: str | None = None
    parameter_format: str | None = None
    components: list[TemplateComponent] = []


def parse_templates(items: Iterable[Any]) -> list[MessageTemplate]:
    """Meta's list items as templates; an item that cannot be read is logged (by name, if it has one) and left
    out, so one odd template never hides the others."""
    parsed = []
    for item in items:
        try:
            parsed.append(MessageTemplate.model_validate(item))
        except ValidationError as exc:
            name = item.get("name") if isinstance(item, Mapping) else None
            log.warning("a message template could not be read", extra={"template": name, "errors": exc.error_count()})
    return parsed


# --- what a picker needs --------------------------------------------------------------------------------


class Parameter(BaseModel):
    name: str = Field(description="`1`, `2`, ... in a positional template; the placeholder's name in a named one.")
    example: str | None = Field(description="Meta's example value, from the template's submission.")


class HeaderView(BaseModel):
    format: str = Field(description="Meta's header format: TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION.")
    kind: HeaderKind | None = Field(description="The `header.kind` a send gives (null: a format not supported).")
    text: str | None = Field(description="A TEXT header's text, placeholders as written.")
    parameters: list[Parameter] = Field(description="A TEXT header's parameter (at most one): `header.text`.")


class BodyView(BaseModel):
    text: str
    parameters: list[Parameter] = Field(description="In order; positional ones are sent as a list, named as an object.")


class ButtonView(BaseModel):
    index: int = Field(description="Its position among the buttons (from 0): the `index` of a send's button value.")
    type: str = Field(description="QUICK_REPLY, URL, PHONE_NUMBER, COPY_CODE, ...")
    text: str | None
    url: str | None = Field(description="A URL button's address; a trailing `{{1}}` is filled at send time.")
    parameter: Parameter | None = Field(description="The value it takes at send time (a URL's suffix, a coupon code).")


class TemplateView(BaseModel):
    id: str | None
    name: str
    language: str
    status: str = Field(description="APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ...: only APPROVED ones are sent.")
    category: str | None
    parameter_format: ParameterFormat
    header: HeaderView | None
    body: BodyView | None
    footer: str | None
    buttons: list[ButtonView]
    sendable: bool = Field(description="Whether this console can fill and send it (approved or not).")
    unsupported: list[str] = Field(description="What it uses that this console cannot fill in, if anything.")


def placeholders(text: str | None) -> list[str]:
    """The distinct placeholder names of a text, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text or "")))


def render(text: str, values: Mapping[str, str]) -> str:
    """The text with each placeholder replaced by its value (one without a value is left as written)."""
    return PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), text)


def _format_of(template: MessageTemplate) -> ParameterFormat:
    declared = (template.parameter_format or "").upper()
    if declared in ("POSITIONAL", "NAMED"):
        return declared  # type: ignore[return-value]
    # Templates listed before Meta said so are positional unless a placeholder is a name.
    texts = [component.text for component in template.components]
    names = [name for text in texts for name in placeholders(text)]
    return "NAMED" if any(not name.isdigit() for name in names) else "POSITIONAL"


def _examples(example: Any, positional_key: str, named_key: str) -> dict[str, str]:
    """Meta's examples of a header or body by parameter name, whatever of them can be read."""
    found: dict[str, str] = {}
    if not isinstance(example, Mapping):
        return found
    named = example.get(named_key)
    if isinstance(named, list):
        for item in named:
            if isinstance(item, Mapping) and isinstance(item.get("param_name"), str):
                value = item.get("example")
                found[item["param_name"]] = value if isinstance(value, str) else str(value)
    positional = example.get(positional_key)
    # `body_text` is a list holding one list of values; `header_text` a flat list.
    if isinstance(positional, list) and positional and isinstance(positional[0], list):
        positional = positional[0]
    if isinstance(positional, list):
        for number, value in enumerate(positional, start=1):
            found.setdefault(str(number), value if isinstance(value, str) else str(value))
    return found


def _parameters(text: str | None, examples: Mapping[str, str], parameter_format: ParameterFormat) -> list[Parameter]:
    names = placeholders(text)
    if parameter_format == "POSITIONAL":
        names = sorted(names, key=lambda name: int(name) if name.isdigit() else 0)
    return [Parameter(name=name, example=examples.get(name)) for name in names]


def _button(index: int, button: TemplateButton) -> tuple[ButtonView, str | None]:
    """The button's view, and what about it this console cannot fill (None: nothing)."""
    kind = button.type.upper()
    parameter = None
    if kind == "URL" and placeholders(button.url):
        example = button.example[0] if isinstance(button.example, list) and button.example else None
        parameter = Parameter(name="1", example=example if isinstance(example, str) else None)
    elif kind == "COPY_CODE":
        example = button.example[0] if isinstance(button.example, list) and button.example else button.example
        parameter = Parameter(name="coupon_code", example=example if isinstance(example, str) else None)
    view = ButtonView(index=index, type=kind, text=button.text, url=button.url, parameter=parameter)
    return view, None if kind in _PLAIN_BUTTONS | _VALUE_BUTTONS else f"a {kind} button"


def describe(template: MessageTemplate) -> TemplateView:
    """What a picker shows of a template, and what a send must give."""
    parameter_format = _format_of(template)
    header = body = footer = None
    buttons: list[ButtonView] = []
    unsupported: list[str] = []
    for component in template.components:
        kind = component.type.upper()
        if kind == "HEADER" and header is None:
            header_format = (component.format or "TEXT").upper()
            examples = _examples(component.example, "header_text", "header_text_named_params")
            header = HeaderView(
                format=header_format,
                kind=_HEADER_KINDS.get(header_format),
                text=component.text if header_format == "TEXT" else None,
                parameters=_parameters(component.text, examples, parameter_format) if header_format == "TEXT" else [],
            )
            if header.kind is None:
                unsupported.append(f"a {header_format} header")
        elif kind == "BODY" and body is None:
            examples = _examples(component.example, "body_text", "body_text_named_params")
            text = component.text or ""
            body = BodyView(text=text, parameters=_parameters(text, examples, parameter_format))
        elif kind == "FOOTER":
            footer = component.text
        elif kind == "BUTTONS":
            for button in component.buttons:
                view, problem = _button(len(buttons), button)
                buttons.append(view)
                if problem is not None:
                    unsupported.append(problem)
        else:
            unsupported.append(f"a {kind} component")
    return TemplateView(
        id=template.id,
        name=template.name,
        language=template.language,
        status=template.status.upper(),
        category=template.category,
        parameter_format=parameter_format,
        header=header,
        body=body,
        footer=footer,
        buttons=buttons,
        sendable=not unsupported,
        unsupported=unsupported,
    )
