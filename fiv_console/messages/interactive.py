"""Interactive replies: reply buttons and lists, as Meta documents them, within Meta's limits.

An agent may send a question with up to three reply buttons, or a list of up to ten rows in sections (Meta's
messages reference, interactive: `type` button or list). The customer's answer comes back as an
`interactive` message (`button_reply` or `list_reply`) quoting the message. The request is checked here, so
what Meta would refuse is a 400 naming the field, and nothing is stored.
"""

from __future__ import annotations

from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from fiv_console.text import NO_NUL

# Meta's limits, in characters.
Text20 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20, pattern=NO_NUL)]
Text24 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=24, pattern=NO_NUL)]
Text60 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60, pattern=NO_NUL)]
Text72 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=72, pattern=NO_NUL)]
Id200 = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
Id256 = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL)]
Body = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024, pattern=NO_NUL)]


class ReplyButton(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id256 = Field(description="Comes back in the customer's `button_reply`.")
    title: Text20


class ListRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id200 = Field(description="Comes back in the customer's `list_reply`.")
    title: Text24
    description: Text72 | None = None


class ListSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text24 | None = None
    rows: list[ListRow] = Field(min_length=1, max_length=10)


class ListAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    button: Text20 = Field(description="The label of the button that opens the list.")
    sections: list[ListSection] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _ten_rows_in_all(self) -> Self:
        rows = [row.id for section in self.sections for row in section.rows]
        if len(rows) > 10:
            raise ValueError("a list has at most 10 rows in all")
        if len(set(rows)) != len(rows):
            raise ValueError("row ids must differ")
        return self


class InteractiveRequest(BaseModel):
    """A question with reply buttons, or with a list: exactly one of `buttons` and `list`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    body: Body
    header: Text60 | None = Field(default=None, description="A text header.")
    footer: Text60 | None = None
    buttons: list[ReplyButton] | None = Field(default=None, min_length=1, max_length=3)
    list_: ListAction | None = Field(default=None, alias="list")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.buttons is None) == (self.list_ is None):
            raise ValueError("give exactly one of buttons and list")
        if self.buttons is not None and len({b.id for b in self.buttons}) != len(self.buttons):
            raise ValueError("button ids must differ")
        return self

    def graph_object(self) -> dict[str, Any]:
        """The `interactive` object of Meta's send body."""
        interactive: dict[str, Any] = {"type": "button" if self.buttons is not None else "list"}
        if self.header is not None:
            interactive["header"] = {"type": "text", "text": self.header}
        interactive["body"] = {"text": self.body}
        if self.footer is not None:
            interactive["footer"] = {"text": self.footer}
        if self.buttons is not None:
            interactive["action"] = {
                "buttons": [{"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in self.buttons]
            }
        else:
            assert self.list_ is not None, "_one_kind checked it"
            interactive["action"] = self.list_.model_dump(exclude_none=True)
        return interactive


class InteractiveReply(BaseModel):
    """`{"interactive": ...}` of `POST /api/conversations/{id}/messages`."""

    model_config = ConfigDict(extra="forbid")

    interactive: InteractiveRequest
    reply_to: UUID | None = Field(default=None, description="The id of a message of this conversation to quote.")
