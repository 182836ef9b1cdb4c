"""WhatsApp groups' names: what the group webhooks say, and what the Graph API answers, kept on the group's
contact.

A group the business is in is a contact known by its `group_id` (`messages.identities`). Message webhooks
do not carry its name; `group_lifecycle_update` (the business created it) and `group_settings_update` (its
subject or description changed) do, and `GET /<GROUP_ID>?fields=subject,description` answers it. The
subject is the contact's `profile_name` (a name the team gives still comes first), the description its
`group_description`. Each is applied only when it is not older than the one stored (`group_subject_at`,
`group_description_at`: one time each, since a change may say only one of them), as Meta may deliver an
older change late; a change about a group no message came from yet makes its contact, so the name is there
when the first message comes. A change applied is announced as `conversation.updated` for the group's open
conversations, to their followers as of its commit (a move of one committing meanwhile is waited for), so
open consoles show the name.

`GroupNames` asks the Graph API for the name of a group a message came from while none is known: in the
background, once the intake has committed (Meta's POST never waits on it), `limit` asks at a time. A group
is asked at most once every `interval` in this process while fewer than `kept` groups were asked within it
(beyond that the oldest are forgotten early and may be asked again; one named meanwhile is not, as a fetch
first reads whether a name is known). While Meta is slow, at most `backlog` fetches wait or run: a group
whose message comes when that many do is not asked and not remembered, so a later message of it tries
again. A failure (Meta away, a group the number left) is logged and leaves "WhatsApp group"; a later
message of the group, after the interval, tries again. Never a loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from fiv_console import events
from fiv_console.background import TaskSet
from fiv_console.conversations.reading import announce_contact_changed
from fiv_console.db.pool import DATABASE_TROUBLE, Connection, Database, tenant_tx
from fiv_console.events import Announcer, EventBatch
from fiv_console.whatsapp.client import GraphClient, GraphError
from fiv_console.whatsapp.payloads import GROUP_DESCRIPTION_MAX, GROUP_SUBJECT_MAX

log = logging.getLogger(__name__)

# Each of subject and description only when this change says it (its time is null otherwise) and is not
# older than the one stored of that field: a change saying only one of them leaves the other's time alone,
# so a subject changed before a description, delivered after it, is still applied.
_RECORD_SQL = """
insert into contacts as k (tenant_id, group_id, profile_name, group_description, group_subject_at,
                           group_description_at)
values ($1, $2, $3::text, $4::text, case when $3::text is not null then $5::timestamptz end,
        case when $4::text is not null then $5::timestamptz end)
on conflict (tenant_id, group_id) do update set
    profile_name = case when excluded.group_subject_at >= coalesce(k.group_subject_at, '-infinity')
                        then excluded.profile_name else k.profile_name end,
    group_subject_at = case when excluded.group_subject_at >= coalesce(k.group_subject_at, '-infinity')
                            then excluded.group_subject_at else k.group_subject_at end,
    group_description = case when excluded.group_description_at >= coalesce(k.group_description_at, '-infinity')
                             then excluded.group_description else k.group_description end,
    group_description_at = case when excluded.group_description_at >= coalesce(k.group_description_at, '-infinity')
                                then excluded.group_description_at else k.group_description_at end,
    updated_at = now()
where excluded.group_subject_at >= coalesce(k.group_subject_at, '-infinity')
   or excluded.group_description_at >= coalesce(k.group_description_at, '-infinity')
returning id
"""


async def record(
    conn: Connection,
    batch: EventBatch,
    *,
    tenant_id: UUID,
    group_id: str,
    subject: str | None,
    description: str | None,
    named_at: datetime,
) -> bool:
    """Keeps what a group is now called, as of `named_at`: the subject and the description it says (None:
    not said), each unless the one kept is newer; whether either was applied. Its open conversations are
    announced as `conversation.updated`."""
    contact_id = await conn.fetchval(
        _RECORD_SQL,
        tenant_id,
        group_id,
        subject[:GROUP_SUBJECT_MAX] if subject else None,
        description[:GROUP_DESCRIPTION_MAX] if description is not None else None,
        named_at,
    )
    if contact_id is None:
        return False
    await announce_contact_changed(conn, batch, contact_id)
    return True


_UNNAMED_SQL = """
select ch.phone_number_id, ch.access_token
from contacts k, channels ch
where k.group_id = $1 and k.profile_name is null and ch.id = $2 and ch.active
"""


class GroupNames:
    """Fetches, in the background, the names of groups that messages came from while none was known."""

    def __init__(
        self,
        db: Database,
        client: GraphClient,
        announcer: Announcer,
        *,
        interval: float = 600.0,
        kept: int = 10_000,
        limit: int = 4,
        backlog: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db, self._client, self._announcer = db, client, announcer
        self._interval, self._kept, self._backlog, self._clock = interval, kept, backlog, clock
        self._full = False  # the backlog is full: said once, not for every message turned away
        self._slots = asyncio.Semaphore(limit)
        self._asked: OrderedDict[tuple[UUID, str], float] = OrderedDict()  # oldest first
        self._tasks = TaskSet()

    def want(self, tenant_id: UUID, channel_id: UUID, group_id: str) -> None:
        """A message of `group_id` came in on `channel_id`: its name is fetched if none is known, unless this
        group was looked at within the interval or the backlog is full (then it is not remembered)."""
        now = self._clock()
        while self._asked and next(iter(self._asked.values())) <= now - self._interval:
            self._asked.popitem(last=False)
        key = (tenant_id, group_id)
        if key in self._asked:
            return
        if len(self._tasks) >= self._backlog:
            if not self._full:
                self._full = True
                log.warning("WhatsApp groups' names wait for Meta: more groups are not asked for now")
            return
        self._full = False
        self._asked[key] = now
        while len(self._asked) > self._kept:
            self._asked.popitem(last=False)
        self._tasks.start(self._fetch(tenant_id, channel_id, group_id), name="group-name")

    async def _fetch(self, tenant_id: UUID, channel_id: UUID, group_id: str) -> None:
        async with self._slots:
            try:
                async with tenant_tx(self._db, tenant_id) as conn:
                    row = await conn.fetchrow(_UNNAMED_SQL, group_id, channel_id)
                if row is None or not row["access_token"]:
                    return  # named already (or the number can no longer ask)
                # In Meta's resolution (whole seconds): a change made in the same second, whose webhook comes
                # after this answer, is then not taken for older than it.
                asked_at = datetime.now(UTC).replace(microsecond=0)
                try:
                    info = await self._client.group_info(group_id, row["access_token"])
                except GraphError as exc:
                    log.warning(
                        "a WhatsApp group's name could not be fetched",
                        extra={"phone_number_id": row["phone_number_id"], "code": exc.code},
                    )
                    return
                if not info.subject and info.description is None:
                    return
                async with events.changing(self._db, self._announcer, tenant_id) as (conn, batch):
                    await record(
                        conn,
                        batch,
                        tenant_id=tenant_id,
                        group_id=group_id,
                        subject=info.subject,
                        description=info.description,
                        named_at=asked_at,
                    )
            except DATABASE_TROUBLE as exc:
                log.warning("a WhatsApp group's name was not kept", extra={"error": type(exc).__name__})

    @property
    def pending(self) -> int:
        """Fetches started and not done: waiting for a slot or running."""
        return len(self._tasks)

    async def drain(self) -> None:
        """Waits until every fetch started so far is done (tests)."""
        await self._tasks.drain()

    async def close(self) -> None:
        await self._tasks.close()
