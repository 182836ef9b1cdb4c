"""The conversation list: its filters and orders, search, keyset cursors and the bounded count.

Each combination of filters is one statement, built once and kept (`_Shape`), whose page is a range of one
index; the page's rows are built in `ConversationListItem`'s shape straight from the database's (no model
validated per row: the list is the console's busiest call). Who may see what: `fiv_console.access`, in the
list's own form here (`_AGENT_SIGHT_SQL`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
from pydantic import BaseModel, Field

from fiv_console.access import Viewer
from fiv_console.conversations.reading import (
    CUSTOMER_SERVICE_WINDOW,
    SELECT_COLUMNS_SQL,
    Conversation,
    ConversationStatus,
)
from fiv_console.db import keyset
from fiv_console.db.pool import Connection

SortKey = Literal["-last_message_at", "last_message_at", "-enqueued_at", "enqueued_at", "-created_at", "created_at"]

# For a page's rows: one probe each (`limit 1` keeps the planner from turning it into a join over the
# tenant's contacts).
_CONTACT_PROBE_SQL = """cross join lateral (
    select k.id, k.wa_id, k.name, k.profile_name, k.username, k.group_id from contacts k
    where k.tenant_id = c.tenant_id and k.id = c.contact_id limit 1
) k"""


@dataclass(frozen=True, slots=True)
class ListCursor:
    """A position in one order of the list: just after this conversation, by its sort key's value and id."""

    sort: SortKey
    value: datetime
    id: UUID

    def encode(self) -> str:
        return keyset.pack(self.sort, self.value.isoformat(), str(self.id))

    @classmethod
    def decode(cls, text: str, sort: SortKey) -> ListCursor:
        """The cursor a page of this order handed out; ValueError for anything else (another order's too)."""
        try:
            key, when, ident = keyset.unpack(text)
            value, conversation_id = keyset.instant(when), UUID(ident)
        except (ValueError, OverflowError):
            raise ValueError("not a cursor from this list") from None
        if key != sort:
            raise ValueError(f"a cursor from the list sorted by {key}: start again without it for sort {sort}")
        return cls(sort, value, conversation_id)


class SearchMatch(BaseModel):
    """The newest message of the conversation that has the words searched for."""

    message_id: UUID
    text: str = Field(description="A short snippet of the message around the first word found.")
    created_at: datetime


class ConversationListItem(Conversation):
    match: SearchMatch | None = Field(
        description="In a search (`q`), the message where the words were found, when the contact's name, "
        "profile name and number do not have them all; null otherwise."
    )


@dataclass(frozen=True, slots=True)
class ListFilters:
    status: ConversationStatus | None = None
    queue_id: UUID | None = None
    agent_id: UUID | None = None
    label_id: UUID | None = None
    contact_id: UUID | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationPage:
    # Each item as `ConversationListItem` answers it (see `_list_item`): the route writes them out as they
    # are, without validating 50 nested models that the database has just typed.
    rows: list[dict[str, Any]]
    next_cursor: ListCursor | None
    # Counted up to TOTAL_CAP + 1 rows, never the whole tenant: past the cap, `total` is a lower bound.
    total: int
    total_is_at_least: bool

    @property
    def items(self) -> list[ConversationListItem]:
        """The items as models (for callers other than the route: validated, so slower)."""
        return [ConversationListItem.model_validate(row) for row in self.rows]


TOTAL_CAP = 1000


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which filters a list call gives: each shape is one statement, built once and cached, so each keeps
    a plan of its own that an index serves (one statement with "$n is null or ..." for every filter would
    drive the prepared statement onto a generic plan that can use none)."""

    sort: SortKey
    whole_tenant: bool
    status: bool
    queue: bool
    agent: bool
    label: bool
    contact: bool
    words: int  # in a search, how many words (up to MAX_WORDS); 0 otherwise
    # In a search, whether the first (rarest) word's conversations are the candidates (see `_WORDS_SQL`).
    from_rarest: bool
    cursor: bool
    # The page's row limit written into the statement (the count's cap always is), so that it can run on a
    # generic plan prepared once per connection: with `limit $n` the planner costs a generic plan for an
    # unknown limit, never picks it, and plans every call again (about 0.5 ms of a 1.3 ms page). 0 in a
    # search, whose words' ranges should be planned for each call (a rare word is not a common one).
    rows: int


# The list's form of `access.VISIBLE_CONVERSATION_SQL` for an agent: the same rule (their own, and the
# waiting ones of their queues), written so that each half is an index range (the agent's conversations,
# and the waiting line of each of their queues) instead of a filter over the tenant's conversations.
# tests/test_conversation_list.py checks that both forms agree.
_AGENT_OWN_SQL = "c.agent_id = ${n}::uuid"
_AGENT_QUEUES_WAITING_SQL = """c.status = 'waiting' and c.queue_id = any(array(
        select m.queue_id from queue_members m where m.user_id = ${n}::uuid))"""
_AGENT_SIGHT_SQL = f"""(
    {_AGENT_OWN_SQL}
    or ({_AGENT_QUEUES_WAITING_SQL})
)"""
# A word typed finds every word that starts with it: the range [word, word + the last code point) of the
# words tables (see sql/0011_console_list.sql for why search is kept in b-tree tables of words). Every word
# typed must be found, in the contact's words or in the conversation's messages' words. How a search runs
# depends on how common its rarest word is, so the words come back with a bounded count of their ranges'
# rows, rarest first: a rare word's few conversations are the candidates, each asked for the other words;
# when every word is common, the list is walked in its order and each conversation asked for every word,
# stopping at the page's end (a word in one conversation in ten fills a page of 50 after about 500). Both
# asks are lookups of `contact_terms_contact_idx` and `conversation_terms_conversation_idx` (sql/0014), or
# one read of the word's range kept in a hash, as the planner prefers; the word's range is a pair of
# parameters it sees, so each search is planned for what its words find.
# The upper bounds are made apart (`offset 0`): `||` is not leakproof, so under the tenant policy a bound
# computed in the comparison would filter the word's range from its start to the table's end.
_WORDS_SQL = """
select w.word,
       (select count(*) from (select 1 from contact_terms k where k.term >= w.word and k.term < w.hi limit $3) k)
       + (select count(*) from (select 1 from conversation_terms t where t.term >= w.word and t.term < w.hi limit $3) t)
           as found
from (
    select word, word || chr(1114111) as hi, n
    from unnest((console_search_terms($1))[1:$2]) with ordinality as u(word, n)
    offset 0
) w
order by found, n
"""
MAX_WORDS = 6
# A rarest word with at most this many contacts and conversations drives the search from its own.
RARE_WORD_ROWS = 1000
_LAST_CODE_POINT = chr(0x10FFFF)
_HAS_WORD_SQL = """(
    exists (select 1 from contact_terms kt
            where kt.tenant_id = c.tenant_id and kt.contact_id = c.contact_id and kt.term >= {lo} and kt.term < {hi})
    or exists (select 1 from conversation_terms t
               where t.tenant_id = c.tenant_id and t.conversation_id = c.id and t.term >= {lo} and t.term < {hi})
)"""
# The rare word's conversations (its messages' and its contacts'), each then read by its key: probes
# (`offset 0`, `limit 1`), so the planner cannot turn a few candidates into a join over the tenant.
_RARE_WORD_SOURCE_SQL = """from (
    select t.conversation_id as id from conversation_terms t where t.term >= $1 and t.term < $2
    union
    select cc.id from contact_terms kt
    cross join lateral (
        select cc.id from conversations cc
        where cc.tenant_id = kt.tenant_id and cc.contact_id = kt.contact_id offset 0
    ) cc
    where kt.term >= $1 and kt.term < $2
) s
cross join lateral (select * from conversations c where c.id = s.id limit 1) c"""
# For the page's rows only: how many words the contact has itself (when it has them all, nothing in the
# messages is shown as the match), and the newest message with any of the words.
_CONTACT_HAS_WORD_SQL = """(exists (select 1 from contact_terms kt
    where kt.tenant_id = c.tenant_id and kt.contact_id = c.contact_id and kt.term >= {lo} and kt.term < {hi}))::int"""
_FOUND_SQL = """
cross join lateral (
    select {contact_words} as contact_words,
           (select t.message_id from conversation_terms t
            where t.tenant_id = c.tenant_id and t.conversation_id = c.id and ({ranges})
            order by t.message_at desc limit 1) as message_id
) s"""
_MATCH_COLUMNS_SQL = """,
       mm.id as match_id, mm.text as match_text, mm.created_at as match_created_at"""
# A probe (`limit 1`), so the planner cannot make it a join over the tenant's messages.
_MATCH_JOIN_SQL = """
left join lateral (
    select mm.id, mm.text, mm.created_at from messages mm
    where mm.tenant_id = c.tenant_id and mm.id = s.message_id and s.contact_words < {words} limit 1
) mm on true"""


def _word_params(word: int) -> dict[str, str]:
    return {"lo": f"${1 + 2 * word}", "hi": f"${2 + 2 * word}"}


def _found_sql(words: int) -> str:
    contact_words = " + ".join(_CONTACT_HAS_WORD_SQL.format(**_word_params(w)) for w in range(words))
    ranges = " or ".join("(t.term >= {lo} and t.term < {hi})".format(**_word_params(w)) for w in range(words))
    return _FOUND_SQL.format(contact_words=contact_words, ranges=ranges) + _MATCH_JOIN_SQL.format(words=words)


def _sort_of(sort: SortKey) -> tuple[str, str, str]:
    """The column, the direction, and the keyset comparison that follows a position in that direction."""
    if sort.startswith("-"):
        return sort[1:], "desc", "<"
    return sort, "asc", ">"


def _build_list_sql(shape: _Shape) -> tuple[str, str]:
    """The page's statement and the bounded count's, with their parameters in `list_statements`' order."""
    number = iter(range(2 * shape.words + 1, 100))  # a search's words first, a pair each
    where: list[str] = []
    column, direction, after = _sort_of(shape.sort)
    # A label's conversations in activity order are walked from its rows (sql/0013_label_activity.sql),
    # which keep their conversation's time: only the page's rows are joined, none sorted.
    by_label = shape.label and not shape.words and column == "last_message_at"
    sight_halves: list[str] = []
    if not shape.whole_tenant:
        agent = f"${next(number)}"
        where.append(_AGENT_SIGHT_SQL.replace("${n}", agent))
        sight_halves = [half.replace("${n}", agent) for half in (_AGENT_OWN_SQL, _AGENT_QUEUES_WAITING_SQL)]
    for given, condition in (
        (shape.status, "c.status = ${n}"),
        (shape.queue, "c.queue_id = ${n}"),
        (shape.agent, "c.agent_id = ${n}"),
        (shape.contact, "c.contact_id = ${n}"),
        (
            shape.label,
            "cl.label_id = ${n}"
            if by_label
            else "exists (select 1 from conversation_labels cl"
            " where cl.tenant_id = c.tenant_id and cl.conversation_id = c.id and cl.label_id = ${n})",
        ),
    ):
        if given:
            where.append(condition.replace("${n}", f"${next(number)}"))
    where += [_HAS_WORD_SQL.format(**_word_params(w)) for w in range(int(shape.from_rarest), shape.words)]
    # The count takes the words' and the filters' parameters, a prefix of the page's (which go on with the
    # cursor's and the limit), so the page's statement can carry it.
    count_where = list(where)
    # The same values either way: the label's rows hold their conversation's time and id.
    key = ("cl.last_message_at", "cl.conversation_id") if by_label else (f"c.{column}", "c.id")
    if shape.cursor:
        where.append(f"({key[0]}, {key[1]}) {after} (${next(number)}::timestamptz, ${next(number)}::uuid)")
    limit = str(shape.rows) if shape.rows else f"${next(number)}"
    source = "from conversations c"
    if shape.from_rarest:
        source = _RARE_WORD_SOURCE_SQL
    elif by_label:
        source = (
            "from conversation_labels cl\n"
            "join conversations c on c.tenant_id = cl.tenant_id and c.id = cl.conversation_id"
        )

    def conditions(parts: list[str]) -> str:
        return ("where " + "\n  and ".join(parts)) if parts else ""

    # The page is chosen from conversations alone, and only its rows are joined to their contacts, labels
    # and matched message: the planner cannot pick a join over the tenant's contacts before the limit.
    order = f"order by c.{column} {direction}, c.id {direction}"
    inner_order = f"order by {key[0]} {direction}, {key[1]} {direction}"
    match = _found_sql(shape.words) if shape.words else ""
    count_source = source
    if by_label and len(count_where) == 1:
        # The label alone: its rows are counted from its index, each surely a conversation of the tenant
        # (their foreign key), instead of each joined to its conversation.
        count_source = "from conversation_labels cl"
    count = f"select count(*) from (select 1 {count_source}\n{conditions(count_where)}\nlimit {TOTAL_CAP + 1}) n"
    chosen = f"select c.* {source}\n{conditions(where)}\n{inner_order}\nlimit {limit}"
    if sight_halves and source == "from conversations c" and not (shape.status or shape.agent or shape.words):
        # An agent's page from each half of their sight, each a range of its own index in the page's order
        # (their own conversations; their queues' waiting ones), merged: walking the tenant's activity
        # order for the 2% an agent sees read about 40 rows for each one shown. The halves never overlap
        # (a waiting conversation has no agent). A status or an agent asked for leaves only one half that
        # can match, which the sight's single form already reads by its index; and a search's words would be
        # read into a hash once for each half.
        halves = [
            f"(select c.* {source}\n{conditions([half, *where[1:]])}\n{inner_order}\nlimit {limit})"
            for half in sight_halves
        ]
        merged = "\nunion all\n".join(halves)
        chosen = f"select c.* from (\n{merged}\n) c\n{order}\nlimit {limit}"
    # The count rides in the page's statement (computed once, before its first row): one round trip less.
    page = (
        f"select {SELECT_COLUMNS_SQL}{_MATCH_COLUMNS_SQL if shape.words else ''},\n({count}) as counted\n"
        f"from ({chosen}) c\n"
        f"{_CONTACT_PROBE_SQL}{match}\n{order}"
    )
    return page, count


_LIST_SQL: dict[_Shape, tuple[str, str]] = {}


def _list_sql(shape: _Shape) -> tuple[str, str]:
    if shape not in _LIST_SQL:
        _LIST_SQL[shape] = _build_list_sql(shape)
    return _LIST_SQL[shape]


def _text_of(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


def _list_item(row: asyncpg.Record, search: str | None) -> dict[str, Any]:
    """One list row as `ConversationListItem`: its fields in its order, each value as pydantic writes it
    once dumped with `envelope.json_fragment` (ids as text; times left to orjson, which writes UTC as `Z` as
    pydantic does). tests/test_conversation_list.py compares the bytes with the models'."""
    inbound = row["last_inbound_at"]
    last_id = row["last_message_id"]
    match = None
    if search is not None and row["match_id"] is not None:
        match = {
            "message_id": str(row["match_id"]),
            "text": _snippet(row["match_text"], search),
            "created_at": row["match_created_at"],
        }
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "queue_id": str(row["queue_id"]),
        "agent_id": _text_of(row["agent_id"]),
        "priority": row["priority"],
        "contact": {
            "id": str(row["contact_id"]),
            "wa_id": row["contact_wa_id"],
            "name": row["contact_name"],
            "profile_name": row["contact_profile_name"],
            "username": row["contact_username"],
            "group_id": row["contact_group_id"],
        },
        "created_at": row["created_at"],
        "enqueued_at": row["enqueued_at"],
        "assigned_at": row["assigned_at"],
        "first_response_at": row["first_response_at"],
        "closed_at": row["closed_at"],
        "close_reason": row["close_reason"],
        "sla_breached_at": row["sla_breached_at"],
        "last_inbound_at": inbound,
        "last_message_at": row["last_message_at"],
        "window_closes_at": inbound + CUSTOMER_SERVICE_WINDOW if inbound is not None else None,
        "unread_count": row["unread_count"],
        "last_message": None
        if last_id is None
        else {
            "id": str(last_id),
            "direction": row["last_message_direction"],
            "kind": row["last_message_kind"],
            "text": row["last_message_text"],
            "created_at": row["last_message_created_at"],
        },
        # Built by `json_build_object` in the model's key order, ids already text.
        "labels": row["labels"],
        "match": match,
    }


def _snippet(text: str | None, search: str) -> str:
    """About 120 characters of the message around the first word searched for that it has."""
    if not text:
        return ""
    lowered = text.lower()
    found = [p for word in search.lower().split() if (p := lowered.find(word)) >= 0]
    start = max(0, min(found) - 40) if found else 0
    end = start + 120
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


@dataclass(frozen=True, slots=True)
class ListStatements:
    """What one list call runs: the page (with one row more than the limit) and the bounded count."""

    page_sql: str
    page_args: list[Any]
    count_sql: str
    count_args: list[Any]


@dataclass(frozen=True, slots=True)
class SearchWords:
    """A search's words as the words tables hold them (the database splits them, as it does the texts),
    rarest first, and whether the rarest is rare enough to start from (`_WORDS_SQL`)."""

    words: list[str]
    from_rarest: bool


NO_SEARCH = SearchWords([], False)


def list_statements(
    viewer: Viewer, filters: ListFilters, search: SearchWords, sort: SortKey, cursor: ListCursor | None, limit: int
) -> ListStatements:
    """The statements of a list call (`search`: its words, from `search_words`)."""
    sight = viewer.sight
    words = search.words
    shape = _Shape(
        sort=sort,
        whole_tenant=sight.whole_tenant,
        status=filters.status is not None,
        queue=filters.queue_id is not None,
        agent=filters.agent_id is not None,
        label=filters.label_id is not None,
        contact=filters.contact_id is not None,
        words=len(words),
        from_rarest=search.from_rarest,
        cursor=cursor is not None,
        # One row more than asked says whether another page follows.
        rows=0 if words else limit + 1,
    )
    page_sql, count_sql = _list_sql(shape)
    args: list[Any] = [bound for word in words for bound in (word, word + _LAST_CODE_POINT)]
    if not sight.whole_tenant:
        args.append(sight.agent_id)
    args += [
        value
        for value in (filters.status, filters.queue_id, filters.agent_id, filters.contact_id, filters.label_id)
        if value is not None
    ]
    # In a search the count's cap and the page's limit are parameters (see `_Shape.rows`).
    count_args = list(args)
    if cursor is not None:
        args += [cursor.value, cursor.id]
    return ListStatements(page_sql, [*args, limit + 1] if words else args, count_sql, count_args)


async def search_words(conn: Connection, search: str) -> SearchWords:
    rows = await conn.fetch(_WORDS_SQL, search, MAX_WORDS, RARE_WORD_ROWS + 1)
    return SearchWords([row["word"] for row in rows], bool(rows) and rows[0]["found"] <= RARE_WORD_ROWS)


async def list_conversations(
    conn: Connection,
    *,
    viewer: Viewer,
    filters: ListFilters,
    sort: SortKey,
    cursor: ListCursor | None,
    limit: int,
) -> ConversationPage:
    """A page of the conversations the viewer may see, filtered, in the chosen order, after `cursor`; and
    how many there are in all, counted up to `TOTAL_CAP`."""
    search = NO_SEARCH
    if filters.search is not None:
        search = await search_words(conn, filters.search)
        if not search.words:  # punctuation alone: no word to find
            return ConversationPage([], None, 0, False)
    statements = list_statements(viewer, filters, search, sort, cursor, limit)
    rows = await conn.fetch(statements.page_sql, *statements.page_args)
    if rows:
        counted = int(rows[0]["counted"])
    elif cursor is None:
        counted = 0
    else:  # past the last page: nothing carried the count
        counted = int(await conn.fetchval(statements.count_sql, *statements.count_args))
    items = [_list_item(row, filters.search) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        column, _, _ = _sort_of(sort)
        next_cursor = ListCursor(sort, last[column], last["id"])
    return ConversationPage(items, next_cursor, min(counted, TOTAL_CAP), counted > TOTAL_CAP)
