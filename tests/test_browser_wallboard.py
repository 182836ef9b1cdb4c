"""The wallboard in a real browser (`tests/browser.py`): a supervisor watches a queue's waiting count rise
when a customer writes and fall when an agent is given the conversation, with no reload; a whisper from
the board reaches the agent's open conversation live; agents are refused the page. The screenshot in
docs/screenshots/wallboard.png is written here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, Locator, expect

from fiv_console.db.pool import Database, tenant_tx
from tests.api import PASSWORD, Person, TenantPeople
from tests.browser import Tab, browser, chromium, open_tab
from tests.conftest import TestDatabase
from tests.test_browser_console import DESKTOP, SCREENSHOTS, console_of, messages, open_conversation
from tests.webhooks import World, simulated_world

__all__ = ["browser", "chromium"]


@asynccontextmanager
async def wallboard_of(browser: Browser, world: World, person: Person) -> AsyncIterator[Tab]:
    """`person` signed in, on the wallboard, its first board drawn."""
    async with open_tab(browser, world.console) as tab:
        await tab.page.set_viewport_size(DESKTOP)
        await tab.sign_in(person, PASSWORD)
        await tab.page.wait_for_url(tab.url("/"))
        await tab.page.goto(tab.url("/wallboard"))
        await expect(tab.page.get_by_role("status").filter(has_text="Live")).to_be_visible()
        await expect(queues(tab).get_by_role("row")).not_to_have_count(1)  # more than the header row
        yield tab


def queues(tab: Tab) -> Locator:
    return tab.page.get_by_role("table", name="Queues")


def agent_row(tab: Tab, name: str) -> Locator:
    """The Agents table's row of the person named `name` exactly."""
    table = tab.page.get_by_role("table", name="Agents")
    return table.get_by_role("row").filter(has=tab.page.get_by_role("rowheader", name=name, exact=True))


async def queue_waiting_since(
    db: Database, world: World, tenant: TenantPeople, name: str, sla: int, waited: int
) -> None:
    """A queue named `name` with an SLA target of `sla` seconds, where a customer has waited `waited` seconds."""
    async with tenant_tx(db, tenant.id) as conn:
        queue_id = await conn.fetchval(
            "insert into queues (tenant_id, name, sla_seconds) values ($1, $2, $3) returning id", tenant.id, name, sla
        )
        contact_id = await conn.fetchval(
            "insert into contacts (tenant_id, wa_id, name) values ($1, $2, $3) returning id",
            tenant.id,
            f"55119{waited:08d}",
            f"Waiting in {name}",
        )
        await conn.execute(
            "insert into conversations (tenant_id, channel_id, contact_id, queue_id, enqueued_at) "
            "values ($1, $2, $3, $4, now() - make_interval(secs => $5))",
            tenant.id,
            world.channel_id,
            contact_id,
            queue_id,
            float(waited),
        )


async def test_the_waiting_count_follows_the_queue_and_a_whisper_reaches_the_agent(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=41) as world:
        await queue_waiting_since(db, world, tenant, "Sales", sla=60, waited=200)
        await queue_waiting_since(db, world, tenant, "Returns", sla=300, waited=260)
        async with wallboard_of(browser, world, tenant.supervisor) as board:
            await board_follows_the_queue_and_whispers(browser, world, tenant, board)


async def board_follows_the_queue_and_whispers(
    browser: Browser, world: World, tenant: TenantPeople, board: Tab
) -> None:
    requested: list[str] = []
    board.page.on("request", lambda request: requested.append(request.url))
    # Each queue's longest wait against its target: colour, an icon and a word.
    await expect(queues(board).get_by_role("row").filter(has_text="Sales")).to_contain_text("SLA breached")
    await expect(queues(board).get_by_role("row").filter(has_text="Returns")).to_contain_text("Warning")
    queue_row = queues(board).get_by_role("row").filter(has_text="Support")
    await expect(queue_row.get_by_role("button", name="0 waiting in Support", exact=False)).to_be_visible()

    await world.customer_writes("5511987650101", "Where is my parcel?")
    waiting = queue_row.get_by_role("button", name="1 waiting in Support", exact=False)
    await expect(waiting).to_be_visible()

    async with console_of(browser, world, tenant.agent) as agent_tab:
        # Online now: the assignment loop gives the conversation to the agent, and the board follows.
        await expect(queue_row.get_by_role("button", name="0 waiting in Support", exact=False)).to_be_visible()
        await expect(queue_row.get_by_role("button", name="1 in progress in Support", exact=False)).to_be_visible()
        row = agent_row(board, "Agent")
        await expect(row.get_by_role("button", name="Agent: 1 open of")).to_be_visible()
        await expect(row).to_contain_text("Online")

        await open_conversation(agent_tab, "Where is my parcel?")
        await queue_row.get_by_role("button", name="1 in progress in Support", exact=False).click()
        listing = board.page.get_by_role("dialog")
        await listing.get_by_role("button", name="Whisper: Customer").click()
        whisper = board.page.get_by_role("dialog", name="Whisper to Agent")
        await whisper.get_by_label("Whisper", exact=True).fill("Offer the express refund")
        await whisper.get_by_role("button", name="Send whisper").click()

        heard = messages(agent_tab).get_by_role("listitem").filter(has_text="Offer the express refund")
        await expect(heard).to_contain_text("Whisper from Supervisor")
        await expect(heard).to_have_class("note whisper")

        # The silent view shows the conversation and marks nothing read.
        await queue_row.get_by_role("button", name="1 in progress in Support", exact=False).click()
        await board.page.get_by_role("dialog").get_by_role("button", name="View: Customer").click()
        view = board.page.get_by_role("dialog", name="Conversation with Customer")
        await expect(view.get_by_role("list", name="Messages and notes")).to_contain_text("Where is my parcel?")
        await expect(view).to_contain_text("Offer the express refund")
        await view.get_by_role("button", name="Close").click()

        await board.page.screenshot(path=SCREENSHOTS / "wallboard.png")
        assert [url for url in requested if url.endswith("/read")] == []
        assert agent_tab.errors == []

    # Take over: the supervisor holds the conversation and it opens in their console.
    await (
        queues(board)
        .get_by_role("row")
        .filter(has_text="Sales")
        .get_by_role("button", name="1 waiting in Sales")
        .click()
    )
    await board.page.get_by_role("dialog").get_by_role("button", name="Take over: Waiting in Sales").click()
    await board.page.wait_for_url(re.compile(r"/\?conversation="))
    await expect(board.page.get_by_role("heading", name="Waiting in Sales")).to_be_visible()
    await expect(board.page.get_by_role("log", name="Messages")).to_be_visible()
    assert board.errors == []


async def test_a_supervisor_sets_an_agents_status_and_their_console_follows(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with (
        simulated_world(database, db, tenant, seed=42) as world,
        console_of(browser, world, tenant.agent) as agent_tab,
        wallboard_of(browser, world, tenant.supervisor) as board,
    ):
        row = agent_row(board, "Agent")
        await expect(row).to_contain_text("Online")
        await row.get_by_label("Status of Agent").select_option("away")
        await expect(agent_tab.page.get_by_label("Status")).to_have_value("away")
        await expect(row.get_by_role("cell").first).to_have_text("Away")
        assert board.errors == []


async def test_agents_are_refused_the_wallboard(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=43) as world, open_tab(browser, world.console) as tab:
        await tab.sign_in(tenant.agent, PASSWORD)
        await tab.page.wait_for_url(tab.url("/"))
        answer = await tab.page.goto(tab.url("/wallboard"))
        assert answer is not None
        assert answer.status == 403
