"""Customers' identities: one contact per person, known by phone number, business-scoped user id or both.

Since 2026 Meta names a WhatsApp user to a business by a business-scoped user id (BSUID, `US.1349...`) in
every messages webhook, and leaves the phone number out for a user who adopted a username (unless they
wrote to the business lately). So one person may come with a number, with a BSUID, or with both. The intake
resolves each sender here, under the contact rows' locks (the locks that serialize one customer's messages):

- a sender no contact has by either key is a new contact with every key given;
- a sender one contact has gets the keys and names it lacked (a number seen again, a BSUID, a username);
- a sender whose number is one contact's and whose BSUID is another's links them: the newer contact is
  merged into the older (`_merge`), its conversations joining the older one's, an open one's messages and
  notes moved into the open one of the same channel, so the person has one contact and one open
  conversation per business number, and no history is lost.

WhatsApp's own notices about a user (`user_changed_number`, `user_changed_user_id`) change the contact's
keys (`apply_changes`), merging it with a contact that already has the new key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from fiv_console.conversations import lifecycle
from fiv_console.conversations.reading import read_after_move
from fiv_console.db.pool import Connection
from fiv_console.events import EventBatch
from fiv_console.whatsapp.payloads import InboundMessage

# Limits of the contacts table's columns (sql/0001_core_schema.sql, sql/0017_whatsapp_identities.sql).
NUMBER_MAX = 32
USER_ID_MAX = 256
_PROFILE_NAME_MAX = 500
_USERNAME_MAX = 200
_COUNTRY_MAX = 8
MERGED_REASON = "merged: the customer wrote as another contact that is the same person"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a message, as Meta names them: a number, a BSUID or both; names as the profile gives them."""

    wa_id: str | None
    user_id: str | None
    profile_name: str | None = None
    username: str | None = None
    country_code: str | None = None

    @property
    def keys(self) -> tuple[str | None, str | None]:
        return (self.wa_id, self.user_id)

    @property
    def sort_key(self) -> str:
        return self.wa_id or self.user_id or ""


def _fits(value: str | None, limit: int) -> str | None:
    return value if value and len(value) <= limit else None


def identity_of(message: InboundMessage) -> Identity | None:
    """The sender of a message, or None when it has neither a number nor a BSUID that can be stored (a
    `from` longer than any phone number is not one: the BSUID is then the only key)."""
    wa_id = _fits(message.wa_id, NUMBER_MAX)
    user_id = _fits(message.user_id, USER_ID_MAX)
    if wa_id is None and user_id is None:
        return None
    return Identity(
        wa_id,
        user_id,
        message.profile_name[:_PROFILE_NAME_MAX] if message.profile_name else None,
        message.username[:_USERNAME_MAX] if message.username else None,
        _fits(message.country_code, _COUNTRY_MAX),
    )


@dataclass(frozen=True, slots=True)
class KeyChange:
    """A notice that a user's keys changed: the contact known by `old` now has `wa_id` and/or `user_id`."""

    old: Identity
    wa_id: str | None
    user_id: str | None


def key_change_of(message: InboundMessage) -> KeyChange | None:
    """What a `user_changed_number` or `user_changed_user_id` notice changes: `from` is the old number,
    `system.wa_id` the new one, `system.user_id` the new BSUID (Meta's webhooks reference, messages/system)."""
    system = message.system
    if message.kind != "system" or system is None or system.type not in ("user_changed_number", "user_changed_user_id"):
        return None
    old = identity_of(message)
    wa_id = _fits(system.wa_id, NUMBER_MAX)
    user_id = _fits(system.user_id, USER_ID_MAX)
    if old is None or (wa_id is None and user_id is None):
        return None
    return KeyChange(old, wa_id, user_id)


_INSERT_SQL = """
insert into contacts (tenant_id, wa_id, user_id, profile_name, username, country_code)
select $1, k.wa_id, k.user_id, k.profile_name, k.username, k.country_code
from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
     with ordinality as k(wa_id, user_id, profile_name, username, country_code, ord)
order by k.ord
on conflict do nothing
"""
# Every contact holding one of the keys, locked in the order of their keys (the order the senders come in).
_FIND_SQL = """
select id, wa_id, user_id, created_at from contacts
where tenant_id = $1 and (wa_id = any($2::text[]) or user_id = any($3::text[]))
order by coalesce(wa_id, user_id), id
for update
"""
# Keys and names given fill in or replace what the contact had; a row is written only when something changed.
_UPDATE_SQL = """
update contacts c
set wa_id = coalesce(k.wa_id, c.wa_id), user_id = coalesce(k.user_id, c.user_id),
    profile_name = coalesce(k.profile_name, c.profile_name), username = coalesce(k.username, c.username),
    country_code = coalesce(k.country_code, c.country_code), updated_at = now()
from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
     as k(id, wa_id, user_id, profile_name, username, country_code)
where c.id = any($1::uuid[]) and c.id = k.id
  and (c.wa_id is distinct from coalesce(k.wa_id, c.wa_id) or c.user_id is distinct from coalesce(k.user_id, c.user_id)
       or c.profile_name is distinct from coalesce(k.profile_name, c.profile_name)
       or c.username is distinct from coalesce(k.username, c.username)
       or c.country_code is distinct from coalesce(k.country_code, c.country_code))
"""


@dataclass(slots=True)
class _Found:
    id: UUID
    wa_id: str | None
    user_id: str | None
    created_at: datetime


async def resolve(
    conn: Connection, batch: EventBatch, identities: list[Identity]
) -> dict[tuple[str | None, str | None], UUID]:
    """The contact of each identity (by its keys), created, completed or merged as it must be; the contacts
    stay locked until the transaction ends."""
    merged: dict[tuple[str | None, str | None], Identity] = {}
    for identity in identities:
        before = merged.get(identity.keys)
        merged[identity.keys] = (
            identity
            if before is None
            else Identity(
                identity.wa_id,
                identity.user_id,
                identity.profile_name or before.profile_name,
                identity.username or before.username,
                identity.country_code or before.country_code,
            )
        )
    wanted = sorted(merged.values(), key=lambda identity: (identity.sort_key, identity.keys))
    if not wanted:
        return {}
    await conn.execute(
        _INSERT_SQL,
        batch.tenant_id,
        [i.wa_id for i in wanted],
        [i.user_id for i in wanted],
        [i.profile_name for i in wanted],
        [i.username for i in wanted],
        [i.country_code for i in wanted],
    )
    by_wa, by_user = await _find(conn, batch.tenant_id, wanted)
    contact_of: dict[tuple[str | None, str | None], UUID] = {}
    for identity in wanted:
        contact = await _one_contact(conn, batch, by_wa, by_user, identity.wa_id, identity.user_id)
        contact_of[identity.keys] = contact.id
        # What the update below gives it, so the next identity of the batch sees it.
        if identity.wa_id is not None:
            by_wa[identity.wa_id] = contact
        if identity.user_id is not None:
            by_user[identity.user_id] = contact
    await _update(conn, [(contact_of[i.keys], i) for i in wanted])
    return contact_of


async def apply_changes(conn: Connection, batch: EventBatch, changes: list[KeyChange]) -> None:
    """Each notice's new keys on the contact its old keys name (merged with one that has a new key already)."""
    for change in sorted(changes, key=lambda c: c.old.sort_key):
        keys = [change.old, Identity(change.wa_id, change.user_id)]
        by_wa, by_user = await _find(conn, batch.tenant_id, keys)
        old = by_wa.get(change.old.wa_id or "") or by_user.get(change.old.user_id or "")
        if old is None:
            continue  # nobody known by the old keys: the next message creates the contact with the new ones
        new = by_wa.get(change.wa_id or "") or by_user.get(change.user_id or "")
        if new is not None and new.id != old.id:
            old = await _merge_pair(conn, batch, old, new)
        # The old number may be someone else's one day: the new keys replace the old.
        await _update(conn, [(old.id, Identity(change.wa_id, change.user_id))])


async def _find(
    conn: Connection, tenant_id: UUID, identities: list[Identity]
) -> tuple[dict[str, _Found], dict[str, _Found]]:
    rows = await conn.fetch(
        _FIND_SQL,
        tenant_id,
        [i.wa_id for i in identities if i.wa_id is not None],
        [i.user_id for i in identities if i.user_id is not None],
    )
    found = [_Found(r["id"], r["wa_id"], r["user_id"], r["created_at"]) for r in rows]
    return (
        {f.wa_id: f for f in found if f.wa_id is not None},
        {f.user_id: f for f in found if f.user_id is not None},
    )


async def _one_contact(
    conn: Connection,
    batch: EventBatch,
    by_wa: dict[str, _Found],
    by_user: dict[str, _Found],
    wa_id: str | None,
    user_id: str | None,
) -> _Found:
    by_number = by_wa.get(wa_id) if wa_id is not None else None
    by_bsuid = by_user.get(user_id) if user_id is not None else None
    if by_number is not None and by_bsuid is not None and by_number.id != by_bsuid.id:
        survivor = await _merge_pair(conn, batch, by_number, by_bsuid)
        for index in (by_wa, by_user):
            for key, value in list(index.items()):
                if value.id in (by_number.id, by_bsuid.id):
                    index[key] = survivor
        return survivor
    contact = by_number or by_bsuid
    if contact is None:
        # Inserted above or found there: gone since, merged away by a transaction that committed meanwhile.
        raise asyncpg.SerializationError("a contact was merged away while a message was being stored")
    return contact


async def _update(conn: Connection, updates: list[tuple[UUID, Identity]]) -> None:
    try:
        await conn.execute(
            _UPDATE_SQL,
            [contact_id for contact_id, _ in updates],
            [i.wa_id for _, i in updates],
            [i.user_id for _, i in updates],
            [i.profile_name for _, i in updates],
            [i.username for _, i in updates],
            [i.country_code for _, i in updates],
        )
    except asyncpg.UniqueViolationError:
        # A key given here was taken by a contact committed since the contacts were read: read them again.
        raise asyncpg.SerializationError("a contact's key was taken while a message was being stored") from None


# The open conversations of the merged-away contact, each with the survivor's open one of the same channel.
_PAIRED_OPEN_SQL = """
select l.id as loser_id, l.queue_id, l.agent_id, l.status, s.id as survivor_id
from conversations l
join conversations s on s.tenant_id = l.tenant_id and s.channel_id = l.channel_id and s.contact_id = $2
                    and s.status <> 'closed'
where l.tenant_id = $3 and l.contact_id = $1 and l.status <> 'closed'
order by s.id
for no key update of l, s
"""
_MOVE_MESSAGES_SQL = "update messages set conversation_id = $2 where tenant_id = $3 and conversation_id = $1"
_MOVE_NOTES_SQL = "update notes set conversation_id = $2 where tenant_id = $3 and conversation_id = $1"
# The survivor takes the merged conversation's unread messages, window, wait and newest message.
_ABSORB_SQL = """
update conversations s
set unread_count = s.unread_count + l.unread_count,
    last_inbound_at = greatest(s.last_inbound_at, l.last_inbound_at),
    last_message_at = greatest(s.last_message_at, l.last_message_at),
    awaiting_reply_since = least(s.awaiting_reply_since, l.awaiting_reply_since),
    last_message_id = case when l.newer then l.last_message_id else s.last_message_id end,
    last_message_direction = case when l.newer then l.last_message_direction else s.last_message_direction end,
    last_message_kind = case when l.newer then l.last_message_kind else s.last_message_kind end,
    last_message_text = case when l.newer then l.last_message_text else s.last_message_text end,
    last_message_created_at = greatest(s.last_message_created_at, l.last_message_created_at),
    updated_at = now()
from (
    select c.*, (c.last_message_created_at > s2.last_message_created_at or s2.last_message_id is null)
                and c.last_message_id is not null as newer
    from conversations c, conversations s2
    where c.id = $1 and s2.id = $2
) l
where s.id = $2
"""
_CLOSE_MERGED_SQL = """
update conversations
set status = 'closed', closed_at = now(), close_reason = $2, unread_count = 0, awaiting_reply_since = null,
    last_message_id = null, last_message_direction = null, last_message_kind = null, last_message_text = null,
    last_message_created_at = null, updated_at = now()
where id = $1
"""
_MOVE_CONVERSATIONS_SQL = "update conversations set contact_id = $2 where tenant_id = $3 and contact_id = $1"
# The survivor takes the names it lacks; the merged contact's keys are taken over by the caller's update.
_ABSORB_CONTACT_SQL = """
update contacts s
set name = coalesce(s.name, l.name), profile_name = coalesce(s.profile_name, l.profile_name),
    username = coalesce(s.username, l.username), country_code = coalesce(s.country_code, l.country_code),
    updated_at = now()
from contacts l
where s.id = $2 and l.id = $1
"""
_DELETE_CONTACT_SQL = "delete from contacts where id = $1 returning wa_id, user_id"
_TAKE_KEYS_SQL = """
update contacts set wa_id = coalesce(wa_id, $2), user_id = coalesce(user_id, $3), updated_at = now() where id = $1
"""


async def _merge_pair(conn: Connection, batch: EventBatch, first: _Found, second: _Found) -> _Found:
    """Merges the newer of two contacts of one person into the older; the older, with both's keys."""
    survivor, loser = sorted((first, second), key=lambda c: (c.created_at, str(c.id)))
    tenant_id = batch.tenant_id
    for pair in await conn.fetch(_PAIRED_OPEN_SQL, loser.id, survivor.id, tenant_id):
        await conn.execute(_MOVE_MESSAGES_SQL, pair["loser_id"], pair["survivor_id"], tenant_id)
        await conn.execute(_MOVE_NOTES_SQL, pair["loser_id"], pair["survivor_id"], tenant_id)
        await conn.execute(_ABSORB_SQL, pair["loser_id"], pair["survivor_id"])
        await conn.execute(_CLOSE_MERGED_SQL, pair["loser_id"], MERGED_REASON)
        moved = lifecycle.Moved(
            await read_after_move(conn, pair["loser_id"]), pair["agent_id"], pair["queue_id"], pair["status"]
        )
        lifecycle.announce_move(batch, "conversation.closed", moved)
    await conn.execute(_MOVE_CONVERSATIONS_SQL, loser.id, survivor.id, tenant_id)
    await conn.execute(_ABSORB_CONTACT_SQL, loser.id, survivor.id)
    await conn.execute(_DELETE_CONTACT_SQL, loser.id)
    await conn.execute(_TAKE_KEYS_SQL, survivor.id, loser.wa_id, loser.user_id)
    survivor.wa_id = survivor.wa_id or loser.wa_id
    survivor.user_id = survivor.user_id or loser.user_id
    return survivor


async def known(
    conn: Connection, tenant_id: UUID, identities: list[Identity]
) -> dict[tuple[str | None, str | None], UUID]:
    """The contact each identity names, by number or BSUID, for those that have one; nothing is created."""
    by_wa, by_user = await _find(conn, tenant_id, identities)
    found: dict[tuple[str | None, str | None], UUID] = {}
    for identity in identities:
        contact = by_wa.get(identity.wa_id or "") or by_user.get(identity.user_id or "")
        if contact is not None:
            found[identity.keys] = contact.id
    return found


_INSERT_GROUPS_SQL = """
insert into contacts (tenant_id, group_id)
select $1, g from unnest($2::text[]) as g order by g
on conflict do nothing
"""
_FIND_GROUPS_SQL = """
select id, group_id from contacts where tenant_id = $1 and group_id = any($2::text[]) order by group_id for update
"""


async def groups(conn: Connection, tenant_id: UUID, group_ids: list[str]) -> dict[str, UUID]:
    """The contact of each WhatsApp group (created the first time one of its messages comes), locked."""
    wanted = sorted({group_id for group_id in group_ids if len(group_id) <= USER_ID_MAX})
    if not wanted:
        return {}
    await conn.execute(_INSERT_GROUPS_SQL, tenant_id, wanted)
    return {row["group_id"]: row["id"] for row in await conn.fetch(_FIND_GROUPS_SQL, tenant_id, wanted)}
