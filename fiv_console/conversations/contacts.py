"""Contacts: the customers who write in. WhatsApp intake creates them (by number and business-scoped user id,
`messages.identities`; a group by its id, named by WhatsApp through `messages.group_names`); people only
rename them.

Staff see every contact of the tenant. An agent sees a contact while they can see one of its conversations:
one they were assigned, or one waiting in a queue they are a member of (the conversations rule of the
issue), so an agent cannot list the tenant's whole customer base.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Sight
from fiv_console.db.pool import Connection
from fiv_console.db.search import contains_pattern
from fiv_console.errors import NotFound
from fiv_console.text import NO_NUL

ContactName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)]
ContactSort = Literal["name", "-created_at", "-updated_at"]


class Contact(BaseModel):
    id: UUID
    tenant_id: UUID
    wa_id: str | None = Field(
        description="The customer's number (digits); null for a user WhatsApp names by username only."
    )
    user_id: str | None = Field(
        description="Their business-scoped user id (BSUID, e.g. `US.13491208655302741918`), when WhatsApp gave it."
    )
    username: str | None = Field(description="Their WhatsApp username, when they adopted one.")
    country_code: str | None = Field(description="Their country (ISO 3166 alpha-2), as their BSUID gives it.")
    group_id: str | None = Field(description="A WhatsApp group's id, when the contact is a group the business is in.")
    profile_name: str | None = Field(
        description="The name on their WhatsApp profile, as WhatsApp sends it; a group's subject."
    )
    group_description: str | None = Field(default=None, description="A WhatsApp group's description.")
    name: str | None = Field(description="The name the team gave them; shown before the profile name.")
    created_at: datetime
    updated_at: datetime


class ContactUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ContactName | None = Field(description="null removes it, and the profile name shows again.")


_CONTACT_COLUMNS = (
    "id, tenant_id, wa_id, user_id, username, country_code, group_id, profile_name, group_description, name, "
    "created_at, updated_at"
)

# $1: the whole tenant is visible; $2: else the agent whose conversations decide (null: none).
# An agent sees the contacts of the conversations in their sight, by the conversations' own rule.
_VISIBLE_CONTACT = f"""($1::boolean or exists (
    select 1 from conversations c
    where c.tenant_id = contacts.tenant_id and c.contact_id = contacts.id and {VISIBLE_CONVERSATION_SQL}
))"""
_CONTACT_FILTER = f"""
where {_VISIBLE_CONTACT}
  and ($3::text is null or name ilike $3 or profile_name ilike $3 or wa_id ilike $3 or username ilike $3)
"""
_CONTACT_ORDER: dict[ContactSort, str] = {
    "name": "lower(coalesce(name, profile_name, username, wa_id, user_id)), id",
    "-created_at": "created_at desc, id",
    "-updated_at": "updated_at desc, id",
}
_LIST_CONTACTS_SQL: dict[ContactSort, str] = {
    sort: f"select {_CONTACT_COLUMNS} from contacts {_CONTACT_FILTER} order by {order} limit $4 offset $5"
    for sort, order in _CONTACT_ORDER.items()
}
_COUNT_CONTACTS_SQL = f"select count(*) from contacts {_CONTACT_FILTER}"


async def list_contacts(
    conn: Connection, *, sight: Sight, search: str | None, sort: ContactSort, limit: int, offset: int
) -> tuple[list[Contact], int]:
    """Contacts within `sight`; `search` matches part of the name, the profile name or the number."""
    filters = (*sight.params(), contains_pattern(search))
    rows = await conn.fetch(_LIST_CONTACTS_SQL[sort], *filters, limit, offset)
    total = await conn.fetchval(_COUNT_CONTACTS_SQL, *filters)
    return [Contact.model_validate(dict(r)) for r in rows], int(total)


_GET_CONTACT_SQL = f"select {_CONTACT_COLUMNS} from contacts where id = $3 and {_VISIBLE_CONTACT}"


async def get_contact(conn: Connection, *, contact_id: UUID, sight: Sight) -> Contact:
    """A contact within `sight`; one out of sight is as unknown as one of another tenant."""
    row = await conn.fetchrow(_GET_CONTACT_SQL, *sight.params(), contact_id)
    if row is None:
        raise NotFound("no such contact")
    return Contact.model_validate(dict(row))


# Written only when the name differs: the same name again changes nothing, and nobody is told.
_RENAME_CONTACT_SQL = f"""
update contacts set name = $4, updated_at = now()
where id = $3 and {_VISIBLE_CONTACT} and name is distinct from $4
returning {_CONTACT_COLUMNS}
"""


async def rename_contact(
    conn: Connection, *, contact_id: UUID, sight: Sight, data: ContactUpdate
) -> tuple[Contact, bool]:
    """The contact as it now is, and whether its name changed."""
    row = await conn.fetchrow(_RENAME_CONTACT_SQL, *sight.params(), contact_id, data.name)
    if row is None:
        return await get_contact(conn, contact_id=contact_id, sight=sight), False
    return Contact.model_validate(dict(row)), True
