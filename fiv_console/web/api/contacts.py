"""Contacts over the API: list with search, read, and rename. There is no create: WhatsApp intake makes them.

Who may rename: anyone who may see the contact. Agents are the ones talking to the customer and learning
the name they want to be called by, so restricting renames to staff would push that work onto supervisors;
an agent's reach stays their sight (contacts of conversations they can see), and anything else is a 404.
"""

from __future__ import annotations

from pydantic import Field

from fiv_console.access import sight_of
from fiv_console.conversations import contacts, reading
from fiv_console.conversations.contacts import Contact, ContactSort, ContactUpdate
from fiv_console.text import NO_NUL
from fiv_console.web.api.routing import ANYONE_SIGNED_IN, ApiCall, NoInput, Page, PageQuery, RouteTable

routes = RouteTable()


class ContactQuery(PageQuery):
    q: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=NO_NUL, description="Part of the name or number."
    )
    sort: ContactSort = "name"


@routes.route(
    "GET", "/api/contacts", roles=ANYONE_SIGNED_IN, summary="List and search contacts (agents: those in their sight)",
    tag="contacts", query=ContactQuery, response=list[Contact], paginated=True,
)  # fmt: skip
async def list_contacts(call: ApiCall[NoInput, ContactQuery]) -> Page[Contact]:
    query = call.query
    items, total = await contacts.list_contacts(
        call.conn,
        sight=sight_of(call.caller.role, call.caller.user_id),
        search=query.q,
        sort=query.sort,
        limit=query.limit,
        offset=query.offset,
    )
    return Page(items, total, query)


@routes.route(
    "GET", "/api/contacts/{contact_id}", roles=ANYONE_SIGNED_IN, summary="One contact", tag="contacts",
    response=Contact,
)  # fmt: skip
async def get_contact(call: ApiCall[NoInput, NoInput]) -> Contact:
    return await contacts.get_contact(
        call.conn, contact_id=call.ids["contact_id"], sight=sight_of(call.caller.role, call.caller.user_id)
    )


@routes.route(
    "PATCH", "/api/contacts/{contact_id}", roles=ANYONE_SIGNED_IN, summary="Rename a contact", tag="contacts",
    body=ContactUpdate, response=Contact,
)  # fmt: skip
async def update_contact(call: ApiCall[ContactUpdate, NoInput]) -> Contact:
    """The new name shows at once in every open console that shows one of the contact's open conversations."""
    contact, renamed = await contacts.rename_contact(
        call.conn,
        contact_id=call.ids["contact_id"],
        sight=sight_of(call.caller.role, call.caller.user_id),
        data=call.body,
    )
    if renamed:
        await reading.announce_contact_changed(call.conn, call.events, contact.id)
    return contact
