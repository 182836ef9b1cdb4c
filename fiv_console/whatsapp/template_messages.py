"""A template message built from what a person filled in, checked against the template Meta listed.

`choose` finds the template a send names among the account's (`TemplateView`s): an unknown name, a language
it does not have, a status other than APPROVED, or something this console cannot fill are refused. `compose`
checks the values against it (every parameter of the header, body and buttons given, none extra, none
blank, the header's media of the right kind) and builds the send's `components` the way Meta documents
them: text parameters with `parameter_name` in named templates, the header's media by id or link, a URL
button's suffix and a coupon code by the button's index. Every problem is a `TemplateMismatch` (422) whose
`details` name the fields, as a validation error does, so nothing Meta would refuse reaches it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from fiv_console.errors import DomainError
from fiv_console.text import NO_NUL
from fiv_console.whatsapp.templates import HeaderKind, Parameter, TemplateView, render

TemplateParameter = Annotated[str, StringConstraints(max_length=1024, pattern=NO_NUL)]
MediaLink = Annotated[str, StringConstraints(min_length=9, max_length=2048, pattern=r"^https://[!-~]+$")]
# Meta refuses body parameters with new lines, tabs or more than four spaces in a row (error 132018).
_UNSENDABLE_TEXT = re.compile(r"[\n\t]| {5,}")
_FIELD = "body.template"


class TemplateMismatch(DomainError):
    """A template send that does not fit the template: refused before anything is stored or sent."""

    code = "TEMPLATE_MISMATCH"

    def __init__(self, message: str, problems: list[dict[str, str]]) -> None:
        super().__init__(message, details=problems)


class HeaderValue(BaseModel):
    """The header's value: its text parameter (`kind: text`), its media by `id` (an upload) or `link`, or a
    location."""

    model_config = ConfigDict(extra="forbid")

    kind: HeaderKind = "text"
    text: TemplateParameter | None = None
    id: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.:-]+$")
    link: MediaLink | None = None
    filename: Annotated[str, StringConstraints(min_length=1, max_length=240, pattern=NO_NUL)] | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    name: Annotated[str, StringConstraints(max_length=1000, pattern=NO_NUL)] | None = None
    address: Annotated[str, StringConstraints(max_length=1000, pattern=NO_NUL)] | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> Self:
        given = {name for name in self.model_fields_set if getattr(self, name) is not None} - {"kind"}
        allowed = {
            "text": {"text"},
            "image": {"id", "link"},
            "video": {"id", "link"},
            "document": {"id", "link", "filename"},
            "location": {"latitude", "longitude", "name", "address"},
        }[self.kind]
        if given - allowed:
            raise ValueError(f"a {self.kind} header takes only {', '.join(sorted(allowed))}")
        if self.kind == "text" and self.text is None:
            raise ValueError("a text header needs its text")
        if self.kind in ("image", "video", "document") and (self.id is None) == (self.link is None):
            raise ValueError("a media header needs exactly one of id and link")
        if self.kind == "location" and (self.latitude is None or self.longitude is None):
            raise ValueError("a location header needs latitude and longitude")
        return self


class ButtonValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, le=9, description="The button's index in the template (from 0).")
    parameter: TemplateParameter = Field(description="A URL button's `{{1}}` suffix, or a copy-code button's code.")


@dataclass(frozen=True, slots=True)
class ComposedTemplate:
    """A template send checked against its template: Meta's `components`, and the text the customer reads."""

    name: str
    language: str
    components: list[dict[str, Any]]
    text: str
    header_kind: HeaderKind | None


def choose(templates: Sequence[TemplateView], name: str, language: str) -> TemplateView:
    """The template a send names, if it may be sent."""
    named = [template for template in templates if template.name == name]
    found = next((template for template in named if template.language == language), None)
    if found is None:
        if not named:
            raise TemplateMismatch(
                f"there is no template {name!r} in this number's WhatsApp Business Account",
                [{"field": f"{_FIELD}.name", "message": "no such template"}],
            )
        languages = ", ".join(sorted(template.language for template in named))
        raise TemplateMismatch(
            f"the template {name!r} has no {language} version (it has {languages})",
            [{"field": f"{_FIELD}.language", "message": f"not one of the template's languages: {languages}"}],
        )
    if found.status != "APPROVED":
        raise TemplateMismatch(
            f"the template {name!r} ({language}) is {found.status}: only approved templates can be sent",
            [{"field": f"{_FIELD}.name", "message": f"not approved ({found.status})"}],
        )
    if not found.sendable:
        raise TemplateMismatch(
            f"the template {name!r} uses what this console cannot fill in: {', '.join(found.unsupported)}",
            [{"field": f"{_FIELD}.name", "message": "not supported by this console"}],
        )
    return found


def _check_value(value: str, field: str, problems: list[dict[str, str]]) -> None:
    if not value.strip():
        problems.append({"field": field, "message": "blank"})
    elif _UNSENDABLE_TEXT.search(value):
        problems.append({"field": field, "message": "no new lines, tabs or more than four spaces in a row"})


def _text_values(
    expected: list[Parameter], given: Sequence[str] | Mapping[str, str], field: str, problems: list[dict[str, str]]
) -> dict[str, str]:
    """The values by parameter name; what is missing, extra or blank goes into `problems`."""
    names = [parameter.name for parameter in expected]
    if isinstance(given, Mapping):
        if names and all(name.isdigit() for name in names):
            message = f"this template's parameters are positional: give a list of {len(names)}"
            problems.append({"field": field, "message": message})
            return {}
        values = dict(given)
    else:
        if names and not all(name.isdigit() for name in names):
            problems.append({"field": field, "message": f"this template's parameters are named: {', '.join(names)}"})
            return {}
        values = {str(number): value for number, value in enumerate(given, start=1)}
    for name in names:
        if name not in values:
            problems.append({"field": f"{field}.{name}", "message": "missing"})
        else:
            _check_value(values[name], f"{field}.{name}", problems)
    extra = [name for name in values if name not in names]
    problems.extend({"field": f"{field}.{name}", "message": "not a parameter of this template"} for name in extra)
    return values


def _text_parameters(expected: list[Parameter], values: Mapping[str, str], named: bool) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for parameter in expected:
        item: dict[str, Any] = {"type": "text", "text": values[parameter.name]}
        if named:
            item["parameter_name"] = parameter.name
        parameters.append(item)
    return parameters


def _media(header: HeaderValue) -> dict[str, Any]:
    if header.kind == "location":
        location = {"latitude": header.latitude, "longitude": header.longitude}
        location |= {key: value for key in ("name", "address") if (value := getattr(header, key)) is not None}
        return {"type": "location", "location": location}
    media = {"id": header.id} if header.id is not None else {"link": header.link}
    if header.filename is not None:
        media["filename"] = header.filename
    return {"type": header.kind, header.kind: media}


def compose(
    template: TemplateView,
    *,
    parameters: Sequence[str] | Mapping[str, str],
    header: HeaderValue | None,
    buttons: Sequence[ButtonValue],
) -> ComposedTemplate:
    """The send's components and its text as the customer reads it; `TemplateMismatch` naming every problem."""
    problems: list[dict[str, str]] = []
    named = template.parameter_format == "NAMED"
    components: list[dict[str, Any]] = []
    texts: list[str] = []

    expected_header = template.header
    if expected_header is None or (expected_header.kind == "text" and not expected_header.parameters):
        if header is not None:
            problems.append({"field": f"{_FIELD}.header", "message": "this template's header takes no value"})
        if expected_header is not None and expected_header.text:
            texts.append(expected_header.text)
    elif header is None:
        problems.append({"field": f"{_FIELD}.header", "message": f"missing: a {expected_header.kind} header"})
    elif header.kind != expected_header.kind:
        problems.append({"field": f"{_FIELD}.header.kind", "message": f"must be {expected_header.kind}"})
    elif header.kind == "text":
        assert header.text is not None, "a text header has its text"
        [parameter] = expected_header.parameters[:1]
        values = {parameter.name: header.text}
        _check_value(header.text, f"{_FIELD}.header.text", problems)
        components.append({"type": "header", "parameters": _text_parameters([parameter], values, named)})
        texts.append(render(expected_header.text or "", values))
    else:
        components.append({"type": "header", "parameters": [_media(header)]})

    body = template.body
    expected = body.parameters if body is not None else []
    values = _text_values(expected, parameters, f"{_FIELD}.parameters", problems)
    if expected and not problems:
        components.append({"type": "body", "parameters": _text_parameters(expected, values, named)})
    if body is not None:
        texts.append(render(body.text, values))
    if template.footer:
        texts.append(template.footer)

    given = {}
    for number, button in enumerate(buttons):
        if button.index in given:
            problems.append({"field": f"{_FIELD}.buttons.{number}.index", "message": "given twice"})
        given[button.index] = button.parameter
    for view in template.buttons:
        if view.parameter is None:
            continue
        field = f"{_FIELD}.buttons[index={view.index}]"
        value = given.pop(view.index, None)
        if value is None:
            problems.append({"field": field, "message": f"missing: the {view.type} button takes a value"})
            continue
        _check_value(value, field, problems)
        kind = "copy_code" if view.type == "COPY_CODE" else "url"
        item = {"type": "coupon_code", "coupon_code": value} if kind == "copy_code" else {"type": "text", "text": value}
        components.append({"type": "button", "sub_type": kind, "index": str(view.index), "parameters": [item]})
    problems.extend(
        {"field": f"{_FIELD}.buttons[index={index}]", "message": "this template has no button there that takes a value"}
        for index in sorted(given)
    )

    if problems:
        raise TemplateMismatch(f"the values do not fit the template {template.name!r} ({template.language})", problems)
    return ComposedTemplate(
        name=template.name,
        language=template.language,
        components=components,
        text="\n\n".join(text for text in texts if text),
        header_kind=expected_header.kind if expected_header is not None else None,
    )
