"""The conversation list at scale: each filter's statement served by an index as the server's role, search
through the words tables under row-level security, keyset pages that neither repeat nor skip, the agent's
form of the sight rule agreeing with `access.VISIBLE_CONVERSATION_SQL`, and the unread count and preview
kept by intake, replies and read marks.

The plans are read with EXPLAIN inside `tenant_tx` as `fiv_app`, which row-level security holds, on a tenant
seeded with a few thousand conversations and their messages, `enable_seqscan` left on: at that size a
sequential scan plus a sort would already win if the index could not serve the statement, so a plan that
names the index is the planner's own choice, not a forced one (save the label's join: see `_page_plan`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Viewer
from fiv_console.conversations import listing, read_marks
from fiv_console.conversations.listing import ListCursor, ListFilters, SortKey
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.errors import NotFound
from fiv_console.events import EventBatch
from fiv_console.messages import history as messages_history
from fiv_console.web import envelope
from tests.api import TenantPeople
from tests.conftest import TestDatabase
from tests.webhooks import World, simulated_world

CONVERSATIONS = 3000
MESSAGES_EACH = 4
# Words only one conversation's messages, and one contact, have.
RARE_WORD = "zanzibarquartz"

# Seeded as the owner in a few set-based statements (the triggers keep the words as intake would): a tenth
# of the conversations waiting, a tenth assigned to one of four agents, the rest closed; one message in
# 50 carries a word of its own.
_SEED_SQL = """
with made as (
    insert into contacts (tenant_id, wa_id, name, profile_name)
    select $1, (5511900000000 + g)::text, 'Customer ' || g, case when g = 7 then $5 end
    from generate_series(1, $2) g
    returning id, (wa_id::bigint - 5511900000000)::int as g
)
insert into conversations (tenant_id, channel_id, contact_id, queue_id, agent_id, status, assigned_at, closed_at,
                           close_reason, created_at, enqueued_at, last_message_at)
select $1, $3, m.id, $4, case when m.g % 10 = 0 then null else ($6::uuid[])[m.g % 4 + 1] end,
       case when m.g % 10 = 0 then 'waiting' when m.g % 10 = 1 then 'assigned' else 'closed' end,
       case when m.g % 10 <> 0 then now() end, case when m.g % 10 > 1 then now() end,
       case when m.g % 10 > 1 then 'done' end,
       now() - make_interval(mins => m.g), now() - make_interval(mins => m.g),
       now() - make_interval(secs => (m.g * 7919) % 100000)
from made m
"""
_SEED_MESSAGES_SQL = """
insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, wa_message_id, status, created_at)
select c.tenant_id, c.id, c.channel_id, case when n % 2 = 0 then 'inbound' else 'outbound' end, 'text',
       case when n = 1 and c.r % 50 = 0 then 'about ' || $2 || ' please' else 'hello order number ' || n end,
       'wamid.' || gen_random_uuid(), case when n % 2 = 0 then 'received' else 'sent' end,
       c.created_at + make_interval(secs => n)
from (select *, row_number() over (order by id) as r from conversations where tenant_id = $1) c
cross join generate_series(1, $3) n
"""


@pytest.fixture
async def seeded(database: TestDatabase, db: Database, tenant: TenantPeople) -> TenantPeople:
    owner = await asyncpg.connect(database.owner_url)
    try:
        channel_id = await owner.fetchval(
            "insert into channels (tenant_id, phone_number_id, display_number, default_queue_id)"
            " values ($1, $2, '+1 555', $3) returning id",
            tenant.id,
            str(uuid.uuid4().int)[:15],
            tenant.queue_id,
        )
        agents = [tenant.agent.id, tenant.other_agent.id, tenant.agent.id, tenant.other_agent.id]
        await owner.execute(_SEED_SQL, tenant.id, CONVERSATIONS, channel_id, tenant.queue_id, "Rare", agents)
        await owner.execute(_SEED_MESSAGES_SQL, tenant.id, RARE_WORD, MESSAGES_EACH)
        await owner.execute("analyze conversations, messages, contacts, conversation_terms, contact_terms")
    finally:
        await owner.close()
    return tenant


async def _rare_queue_and_label(database: TestDatabase, tenant: TenantPeople) -> dict[str, uuid.UUID]:
    """A queue and a label that 1 conversation in 50 has: a filter the all-conversations order cannot serve
    by reading past the rest."""
    owner = await asyncpg.connect(database.owner_url)
    try:
        queue_id = await owner.fetchval(
            "insert into queues (tenant_id, name) values ($1, 'Rare queue') returning id", tenant.id
        )
        label_id = await owner.fetchval(
            "insert into labels (tenant_id, name, color) values ($1, 'rare', '#00aa00') returning id", tenant.id
        )
        await owner.execute(
            """
            update conversations set queue_id = $2
            where tenant_id = $1 and status = 'closed'
              and (extract(epoch from now() - enqueued_at)::bigint / 60 % 50) = 2
            """,
            tenant.id,
            queue_id,
        )
        await owner.execute(
            """
            insert into conversation_labels (tenant_id, conversation_id, label_id)
            select tenant_id, id, $2 from conversations where tenant_id = $1 and queue_id = $3
            """,
            tenant.id,
            label_id,
            queue_id,
        )
        # A label most closed conversations have besides: a label table of a size to be read by its index.
        common_id = await owner.fetchval(
            "insert into labels (tenant_id, name, color) values ($1, 'common', '#0000aa') returning id", tenant.id
        )
        await owner.execute(
            """
            insert into conversation_labels (tenant_id, conversation_id, label_id)
            select tenant_id, id, $2 from conversations where tenant_id = $1 and status = 'closed'
            """,
            tenant.id,
            common_id,
        )
        await owner.execute("analyze conversations, conversation_labels")
    finally:
        await owner.close()
    return {"queue": queue_id, "label": label_id}


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        # The bounded count riding in the page (an InitPlan aggregate) reads up to 1,001 of the 3,000 rows
        # seeded here, which a sequential scan serves as well as an index; the page's own reads are the test.
        if child.get("Parent Relationship") == "InitPlan" and child["Node Type"] == "Aggregate":
            continue
        found += _nodes(child)
    return found


INDEX_SCANS = ("Index Scan", "Index Only Scan")
_BIG_TABLES = ("conversations", "messages", "contacts", "conversation_terms", "contact_terms")


def _big(scans: dict[str, set[str]]) -> list[str]:
    return [how for table in _BIG_TABLES for how in scans.get(table, ())]


def _scans(nodes: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Each table scanned, with how (node type and index)."""
    scans: dict[str, set[str]] = {}
    for node in nodes:
        if "Relation Name" in node:
            scans.setdefault(node["Relation Name"], set()).add(f"{node['Node Type']}:{node.get('Index Name', '')}")
        elif node["Node Type"] == "Bitmap Index Scan":
            scans.setdefault("bitmap", set()).add(node["Index Name"])
    return scans


async def _page_plan(
    db: Database, viewer: Viewer, filters: ListFilters, sort: SortKey, cursor: ListCursor | None = None
) -> dict[str, set[str]]:
    """How the page statement `list_conversations` would run is executed, as the server's role."""
    async with tenant_tx(db, viewer.tenant_id) as conn:
        if filters.label_id is not None:
            # At this size a hash join over all 3,000 conversations costs the planner less than the page's
            # 50 probes of their key, which a busy tenant's 100,000 turn around; what the seed can show is
            # that the label's rows are walked in order by their index and joined by key, not sorted.
            await conn.execute("set local enable_hashjoin = off")
            await conn.execute("set local enable_mergejoin = off")
        search = await listing.search_words(conn, filters.search) if filters.search is not None else listing.NO_SEARCH
        statements = listing.list_statements(viewer, filters, search, sort, cursor, 50)
        explained = await conn.fetchval(f"explain (format json) {statements.page_sql}", *statements.page_args)
    document = orjson.loads(explained) if isinstance(explained, str) else explained
    return _scans(_nodes(document[0]["Plan"]))


async def test_each_filter_of_the_console_is_served_by_an_index(
    database: TestDatabase, db: Database, seeded: TenantPeople
) -> None:
    seeded_extra = await _rare_queue_and_label(database, seeded)
    tenant = seeded
    staff = Viewer(tenant.id, "supervisor", tenant.supervisor.id)
    agent = Viewer(tenant.id, "agent", tenant.agent.id)
    cursor = ListCursor("-last_message_at", datetime.now(UTC) - timedelta(hours=5), uuid.uuid4())
    label_id = seeded_extra["label"]
    R: SortKey = "-last_message_at"
    cases: list[tuple[str, Viewer, ListFilters, SortKey, ListCursor | None, str]] = [
        ("all", staff, ListFilters(), R, None, "c_activity_idx"),
        ("all, next page", staff, ListFilters(), R, cursor, "c_activity_idx"),
        ("by creation", staff, ListFilters(), "created_at", None, "c_created_idx"),
        ("waiting line", staff, ListFilters(status="waiting"), "enqueued_at", None, "c_waiting_line_idx"),
        ("by status", staff, ListFilters(status="waiting"), R, None, "c_status_activity_idx"),
        # Closed is most of the tenant: walking the whole tenant's activity order and skipping the rest is
        # as good a plan as the status index, so either may be chosen; neither is a scan and a sort.
        ("by the common status", staff, ListFilters(status="closed"), R, None, "c_"),
        (
            "by queue",
            staff,
            ListFilters(queue_id=seeded_extra["queue"]),
            "-last_message_at",
            None,
            "conversations_queue_activity_idx",
        ),
        (
            "by agent",
            staff,
            ListFilters(agent_id=tenant.agent.id),
            "-last_message_at",
            None,
            "conversations_agent_activity_idx",
        ),
        (
            "mine",
            agent,
            ListFilters(status="assigned", agent_id=tenant.agent.id),
            "-last_message_at",
            None,
            "conversations_agent",
        ),
        ("agent's waiting", agent, ListFilters(status="waiting"), "enqueued_at", None, "c_waiting"),
        ("agent's all", agent, ListFilters(), R, None, "c_"),
        ("by label", staff, ListFilters(label_id=label_id), R, None, "conversation_labels_activity_idx"),
        (
            "a contact's",
            staff,
            ListFilters(contact_id=uuid.uuid4()),
            "-last_message_at",
            None,
            "conversations_contact_idx",
        ),
    ]
    for name, viewer, filters, sort, after, index in cases:
        scans = await _page_plan(db, viewer, filters, sort, after)
        # The small tables (labels) may be read whole; the big ones never.
        assert not any(how.startswith("Seq Scan") for how in _big(scans)), (name, scans)
        index = index.replace("c_", "conversations_", 1)
        assert any(index in how for hows in scans.values() for how in hows), (name, scans)


async def test_search_reads_the_words_tables_by_index_under_row_level_security(
    db: Database, seeded: TenantPeople
) -> None:
    tenant = seeded
    staff = Viewer(tenant.id, "supervisor", tenant.supervisor.id)
    agent = Viewer(tenant.id, "agent", tenant.agent.id)
    # Rare words start from their own few rows (the words' keys); "customer", in every contact's name, walks
    # the list in its order asking each conversation for the word (the keys by contact and conversation).
    by_word = {f"{how}:{table}_pkey" for table in ("conversation_terms", "contact_terms") for how in INDEX_SCANS}
    by_owner = {
        f"{how}:{table}" for table in ("conversation_terms_conversation_idx", "contact_terms_contact_idx")
        for how in ("Index Scan", "Index Only Scan")
    }  # fmt: skip
    cases = (
        (staff, RARE_WORD, True),
        (staff, "rare", True),
        (staff, "5511900001", True),
        (agent, RARE_WORD[:6], True),
        (staff, "customer", False),
        (agent, "customer", False),
        (staff, f"customer {RARE_WORD}", True),
    )
    for viewer, words, from_rarest in cases:
        async with tenant_tx(db, tenant.id) as conn:
            assert (await listing.search_words(conn, words)).from_rarest is from_rarest, words
        scans = await _page_plan(db, viewer, ListFilters(search=words), "-last_message_at")
        for table in ("conversation_terms", "contact_terms"):
            assert scans[table] <= by_word | by_owner | {"Bitmap Heap Scan:"}, scans
        used = {how for hows in scans.values() for how in hows}
        if from_rarest:
            assert any("_terms_pkey" in how for how in used), (words, scans)
        else:
            assert any("conversations_activity_idx" in how or "conversations_agent" in how for how in used), scans
        assert not any(how.startswith("Seq Scan") for how in _big(scans)), (words, scans)

    async with tenant_tx(db, tenant.id) as conn:
        found = await listing.list_conversations(
            conn, viewer=staff, filters=ListFilters(search=RARE_WORD.upper()), sort="-last_message_at", cursor=None,
            limit=100,
        )  # fmt: skip
        assert found.total == CONVERSATIONS // 50
        for item in found.items:
            assert item.match is not None
            assert RARE_WORD in item.match.text
        # The contact's own words: no message to open at.
        (rare,) = (
            await listing.list_conversations(
                conn, viewer=staff, filters=ListFilters(search="rare"), sort="-last_message_at", cursor=None, limit=9
            )
        ).items
        assert rare.contact.profile_name == "Rare"
        assert rare.match is None
        # An agent finds only what they may see.
        mine = await listing.list_conversations(
            conn, viewer=agent, filters=ListFilters(search=RARE_WORD), sort="-last_message_at", cursor=None, limit=100
        )
        visible = await _visible_ids(conn, agent)
        assert {item.id for item in mine.items} == {item.id for item in found.items} & visible
        assert 0 < len(mine.items) < len(found.items)


# What a search finds, the plain way: every word's rows grouped by conversation, none left out.
_SEARCH_ORACLE_SQL = """
select c.id from conversations c
where (select count(distinct w.n) from unnest($1::text[]) with ordinality as w(word, n)
       where exists (select 1 from contact_terms kt where kt.contact_id = c.contact_id
                     and kt.term >= w.word and kt.term < w.word || chr(1114111))
          or exists (select 1 from conversation_terms t where t.conversation_id = c.id
                     and t.term >= w.word and t.term < w.word || chr(1114111))) = cardinality($1::text[])
order by c.last_message_at desc, c.id desc
"""


async def test_a_search_finds_the_same_started_from_its_rarest_word_or_walked(
    db: Database, seeded: TenantPeople
) -> None:
    tenant = seeded
    staff = Viewer(tenant.id, "supervisor", tenant.supervisor.id)
    async with tenant_tx(db, tenant.id) as conn:
        for typed in ("customer", f"customer {RARE_WORD[:5]}", "customer 12", "hello 7", "rare customer", "nobody"):
            search = await listing.search_words(conn, typed)
            expected = [row["id"] for row in await conn.fetch(_SEARCH_ORACLE_SQL, search.words)]
            for from_rarest in (True, False):
                statements = listing.list_statements(
                    staff, ListFilters(search=typed), listing.SearchWords(search.words, from_rarest),
                    "-last_message_at", None, 100,
                )  # fmt: skip
                rows = await conn.fetch(statements.page_sql, *statements.page_args)
                assert [row["id"] for row in rows] == expected[:101], (typed, from_rarest)
                counted = await conn.fetchval(statements.count_sql, *statements.count_args)
                assert counted == min(len(expected), listing.TOTAL_CAP + 1), (typed, from_rarest)


async def _visible_ids(conn: Any, viewer: Viewer) -> set[uuid.UUID]:
    rows = await conn.fetch(
        f"select c.id from conversations c where {VISIBLE_CONVERSATION_SQL}", *viewer.sight.params()
    )
    return {row["id"] for row in rows}


async def _walk(conn: Any, viewer: Viewer, filters: ListFilters, sort: SortKey, limit: int) -> list[uuid.UUID]:
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await listing.list_conversations(
            conn, viewer=viewer, filters=filters, sort=sort, cursor=cursor, limit=limit
        )
        seen += [item.id for item in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


async def test_the_agents_form_of_sight_agrees_with_the_rule(db: Database, seeded: TenantPeople) -> None:
    tenant = seeded
    async with tenant_tx(db, tenant.id) as conn:
        for person in (tenant.agent, tenant.other_agent):
            viewer = Viewer(tenant.id, "agent", person.id)
            walked = await _walk(conn, viewer, ListFilters(), "-last_message_at", 100)
            assert len(walked) == len(set(walked))
            assert set(walked) == await _visible_ids(conn, viewer)
        token = Viewer(tenant.id, "agent", None)
        assert await _walk(conn, token, ListFilters(), "-last_message_at", 100) == []
        staff = await listing.list_conversations(
            conn, viewer=Viewer(tenant.id, "admin", tenant.admin.id), filters=ListFilters(), sort="-created_at",
            cursor=None, limit=10,
        )  # fmt: skip
        assert (staff.total, staff.total_is_at_least) == (listing.TOTAL_CAP, True)


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "-enqueued_at", "enqueued_at", "-last_message_at"])
async def test_pages_neither_repeat_nor_skip_while_conversations_arrive(
    database: TestDatabase, db: Database, seeded: TenantPeople, sort: SortKey
) -> None:
    tenant = seeded
    staff = Viewer(tenant.id, "supervisor", tenant.supervisor.id)
    filters = ListFilters(status="waiting")
    async with tenant_tx(db, tenant.id) as conn:
        before = set(await _walk(conn, staff, filters, sort, 1000))
        seen: list[uuid.UUID] = []
        cursor = None
        pages = 0
        while True:
            page = await listing.list_conversations(
                conn, viewer=staff, filters=filters, sort=sort, cursor=cursor, limit=37
            )
            seen += [item.id for item in page.items]
            # New conversations between pages, at the head and the tail of every order.
            await conn.execute(
                """
                with k as (insert into contacts (tenant_id, wa_id) values ($1, $3) returning id)
                insert into conversations (tenant_id, channel_id, contact_id, queue_id, status, created_at,
                                           enqueued_at, last_message_at)
                select c.tenant_id, c.channel_id, k.id, c.queue_id, 'waiting', $2, $2, $2
                from conversations c, k where c.tenant_id = $1 and c.status = 'closed' limit 1
                """,
                tenant.id,
                datetime.now(UTC) + timedelta(days=1) if pages % 2 else datetime.now(UTC) - timedelta(days=30),
                str(uuid.uuid4().int)[:15],
            )
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


@pytest.fixture
async def world(database: TestDatabase, db: Database, tenant: TenantPeople) -> AsyncIterator[World]:
    async with simulated_world(database, db, tenant, seed=17) as world:
        yield world


async def test_unread_count_and_last_message_follow_intake_replies_and_read_marks(
    world: World, db: Database, tenant: TenantPeople
) -> None:
    supervisor = await world.browsers.signed_in(tenant.supervisor)
    agent = await world.browsers.signed_in(tenant.agent)

    async def shown() -> dict[str, Any]:
        (item,) = (await supervisor.get("/api/conversations?q=5511922220001")).data["items"]
        return dict(item)

    await world.customer_writes("5511922220001", "first question")
    await world.customer_writes("5511922220001", "second question, still waiting")
    item = await shown()
    assert item["unread_count"] == 2
    assert item["last_message"]["direction"] == "inbound"
    assert item["last_message"]["text"] == "second question, still waiting"
    conversation_id = item["id"]

    assert (
        await supervisor.post(f"/api/conversations/{conversation_id}/assign", {"agent_id": str(tenant.agent.id)})
    ).status == 200
    # Reading as a supervisor marks nothing; the agent's reading does.
    assert (await supervisor.post(f"/api/conversations/{conversation_id}/read")).data == {"marked": 0}
    assert (await shown())["unread_count"] == 2
    assert (await agent.post(f"/api/conversations/{conversation_id}/read")).data == {"marked": 2}
    assert (await shown())["unread_count"] == 0

    long_reply = "Looking into it now. " * 20
    assert (await agent.post(f"/api/conversations/{conversation_id}/messages", {"text": long_reply})).status == 201
    item = await shown()
    assert item["last_message"]["direction"] == "outbound"
    assert item["last_message"]["text"] == long_reply[:140]
    assert item["unread_count"] == 0

    # Found by the words of the reply too, opened at it.
    (found,) = (await agent.get("/api/conversations?q=looking%20int")).data["items"]
    assert found["match"]["message_id"] == item["last_message"]["id"]

    await world.customer_writes("5511922220001", "thanks")
    assert (await shown())["unread_count"] == 1
    # WhatsApp could not be told of a read: the claim is given back, and its followers hear the count again.
    viewer = Viewer(tenant.id, "agent", tenant.agent.id)
    async with tenant_tx(db, tenant.id) as conn:
        batch = EventBatch(tenant.id)
        mark = await read_marks.claim_unread(conn, batch, viewer=viewer, conversation_id=uuid.UUID(conversation_id))
        assert mark is not None
        after_claim = await conn.fetchval("select unread_count from conversations where id = $1", mark.conversation_id)
        await read_marks.release(conn, batch, mark=mark)
        after_release = await conn.fetchval(
            "select unread_count from conversations where id = $1", mark.conversation_id
        )
    assert (after_claim, after_release) == (0, 1)
    counts = [event.payload["conversation"]["unread_count"] for event in batch.pending]
    assert counts == [0, 1]


async def test_the_list_rows_are_written_as_the_models_would_be(db: Database, seeded: TenantPeople) -> None:
    # The route writes the domain's rows out without the models (for speed): byte for byte what pydantic
    # would write for `ConversationListItem`, labels, search matches, null previews and all.
    staff = Viewer(seeded.id, "supervisor", seeded.supervisor.id)
    agent = Viewer(seeded.id, "agent", seeded.agent.id)
    with pytest.raises(_RolledBack):
        async with tenant_tx(db, seeded.id) as conn:
            await _compare_rows_with_models(conn, staff, agent, seeded)


class _RolledBack(Exception):
    """Leaves the test's labels and previews out of the shared tenant."""


async def _compare_rows_with_models(conn: Any, staff: Viewer, agent: Viewer, seeded: TenantPeople) -> None:
    label_ids = [
        await conn.fetchval(
            "insert into labels (tenant_id, name, color) values ($1, $2, '#00aa00') returning id", seeded.id, name
        )
        for name in ("Zeta é", "alpha")
    ]
    await conn.execute(
        """
        insert into conversation_labels (tenant_id, conversation_id, label_id)
        select c.tenant_id, c.id, l from (select * from conversations order by last_message_at desc limit 5) c
        cross join unnest($1::uuid[]) l
        """,
        label_ids,
    )
    await conn.execute(
        "update conversations set last_message_id = null"
        " where id in (select id from conversations order by last_message_at desc limit 2)"
    )
    cases = [
        (staff, ListFilters()),
        (staff, ListFilters(label_id=label_ids[0])),
        (staff, ListFilters(search=RARE_WORD)),
        (staff, ListFilters(search="rare")),
        (agent, ListFilters()),
    ]
    for viewer, filters in cases:
        page = await listing.list_conversations(
            conn, viewer=viewer, filters=filters, sort="-last_message_at", cursor=None, limit=100
        )
        assert page.rows, filters
        written = bytes(orjson.dumps(envelope.json_fragment(page.rows)))
        models = [item.model_dump(mode="json") for item in page.items]
        assert written == orjson.dumps(models), filters
        if filters == ListFilters():
            assert any(row["last_message"] is None for row in page.rows)
            assert any(len(row["labels"]) == 2 for row in page.rows)
    raise _RolledBack


async def test_a_labels_list_follows_its_conversations_activity(db: Database, seeded: TenantPeople) -> None:
    # The label's rows keep their conversation's activity time (sql/0013): copied when put on, moved with it.
    staff = Viewer(seeded.id, "supervisor", seeded.supervisor.id)
    with pytest.raises(_RolledBack):
        async with tenant_tx(db, seeded.id) as conn:
            await _label_follows(conn, staff, seeded)


async def _label_follows(conn: Any, staff: Viewer, seeded: TenantPeople) -> None:
    label_id = await conn.fetchval(
        "insert into labels (tenant_id, name, color) values ($1, 'follow', '#0000aa') returning id", seeded.id
    )
    ids = [r["id"] for r in await conn.fetch("select id from conversations order by created_at limit 4")]
    await conn.executemany(
        "insert into conversation_labels (tenant_id, conversation_id, label_id) values ($1, $2, $3)",
        [(seeded.id, i, label_id) for i in ids],
    )
    await conn.execute("update conversations set last_message_at = now() + interval '1 hour' where id = $1", ids[2])
    differing = await conn.fetchval(
        "select count(*) from conversation_labels cl join conversations c on c.id = cl.conversation_id"
        " where cl.label_id = $1 and cl.last_message_at <> c.last_message_at",
        label_id,
    )
    assert differing == 0
    expected = await conn.fetch(
        "select id from conversations where id = any($1::uuid[]) order by last_message_at desc, id desc", ids
    )
    filters = ListFilters(label_id=label_id)
    assert await _walk(conn, staff, filters, "-last_message_at", 3) == [r["id"] for r in expected]
    assert (await _walk(conn, staff, filters, "-last_message_at", 3))[0] == ids[2]
    raise _RolledBack


async def test_the_message_history_is_written_as_the_models_would_be(db: Database, seeded: TenantPeople) -> None:
    # The history's route too writes the domain's rows out without the models: byte for byte what pydantic
    # would write for `Message`, whatever the JSON of media, details and errors holds.
    with pytest.raises(_RolledBack):
        async with tenant_tx(db, seeded.id) as conn:
            await _compare_messages_with_models(conn, seeded)


_RICH_MESSAGES_SQL = """
insert into messages (tenant_id, conversation_id, channel_id, direction, kind, text, media, details, error, status,
                      author_id, wa_message_id, sent_at, created_at)
values ($1, $2, $3, 'inbound', 'image', null, $4, $5, null, 'received', null, 'wamid.rich', null,
        date_trunc('second', now())),
       ($1, $2, $3, 'outbound', 'text', 'olá 🙂', null, null, $6, 'failed', $7, null, now(), now())
"""


async def _compare_messages_with_models(conn: Any, seeded: TenantPeople) -> None:
    staff = Viewer(seeded.id, "supervisor", seeded.supervisor.id)
    conversation_id, channel_id = await conn.fetchrow(
        "select id, channel_id from conversations where status = 'closed' order by id limit 1"
    )
    media = {"id": "m1", "mime_type": "image/jpeg", "size": 1.5e-7, "ratio": 0.1, "big": 2**53 + 1, "list": [1, None]}
    details = {"forwarded": True, "referral": {"source_url": "https://x.example/?a=1&b=\u2028é"}}
    error = {"code": 131047, "title": "Re-engagement", "details": [{"n": -0.0}]}
    await conn.execute(
        _RICH_MESSAGES_SQL, seeded.id, conversation_id, channel_id, media, details, error, seeded.supervisor.id
    )
    total = MESSAGES_EACH + 2
    page = await messages_history.history(
        conn, sight=staff.sight, conversation_id=conversation_id, before=None, limit=3
    )
    assert (page.total, page.newer) == (total, 0)
    assert page.next_cursor is not None
    written = bytes(orjson.dumps(envelope.json_fragment(page.rows)))
    assert written == orjson.dumps([message.model_dump(mode="json") for message in page.messages])
    older = await messages_history.history(
        conn, sight=staff.sight, conversation_id=conversation_id, before=page.next_cursor, limit=3
    )
    assert (older.total, older.newer, older.next_cursor) == (total, 3, None)
    assert len({row["id"] for row in [*page.rows, *older.rows]}) == total
    # Out of an agent's sight: as unknown as another tenant's.
    agent = Viewer(seeded.id, "agent", seeded.other_agent.id)
    unseen = await conn.fetchval(
        "select id from conversations where status = 'closed' and agent_id <> $1 limit 1", seeded.other_agent.id
    )
    with pytest.raises(NotFound):
        await messages_history.history(conn, sight=agent.sight, conversation_id=unseen, before=None, limit=3)
    raise _RolledBack
