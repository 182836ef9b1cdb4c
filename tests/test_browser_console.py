"""The agent console in a real browser (`tests/browser.py`) against a console whose Graph API is the
simulator (`tests/webhooks.simulated_world`): controls are found by role and accessible name, as a person
using a screen reader would find them. The screenshots in docs/screenshots/ are written here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import asyncpg
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Locator, expect

from fiv_console import events
from fiv_console.app import create_app
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.keys import hub_key
from tests.api import PASSWORD, Person, TenantPeople, add_crowd
from tests.browser import Tab, browser, chromium, open_tab
from tests.conftest import TestDatabase
from tests.webhooks import World, customer_writes, envelope, post_webhook, simulated_world, text_message

__all__ = ["browser", "chromium"]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}


async def eventually(check: Callable[[], bool], *, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


@asynccontextmanager
async def console_of(browser: Browser, world: World, person: Person, *, online: bool = True) -> AsyncIterator[Tab]:
    """`person` signed in to the world's console in a fresh browser, live (and online when asked)."""
    async with open_tab(browser, world.console) as tab:
        await tab.page.set_viewport_size(DESKTOP)
        await tab.sign_in(person, PASSWORD)
        await tab.page.wait_for_url(tab.url("/"))
        await expect(tab.page.get_by_role("status").filter(has_text="Live")).to_be_visible()
        if online:
            await tab.page.get_by_label("Status").select_option("online")
        yield tab


def conversations(tab: Tab) -> Locator:
    return tab.page.get_by_role("list", name="Conversations")


def messages(tab: Tab) -> Locator:
    return tab.page.get_by_role("log", name="Messages")


async def open_conversation(tab: Tab, text: str) -> None:
    await conversations(tab).get_by_role("listitem").filter(has_text=text).get_by_role("button").first.click()
    # The log shows before the history has come; the composer is the conversation's only once it has.
    await expect(messages(tab)).to_contain_text(text)


async def test_an_agent_serves_a_customer_live(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=21) as world, console_of(browser, world, tenant.agent) as tab:
        await world.customer_writes("5511987650001", "Hello, my order is late")
        item = conversations(tab).get_by_role("listitem").filter(has_text="Hello, my order is late")
        await expect(item).to_be_visible()
        await expect(item.get_by_label("1 unread message")).to_be_visible()

        await open_conversation(tab, "Hello, my order is late")
        await expect(messages(tab)).to_contain_text("Hello, my order is late")
        # A customer known by number only: the contact shows no empty username line.
        contact = tab.page.get_by_role("complementary", name="Contact")
        await expect(contact).to_contain_text("+5511987650001")
        await expect(contact).not_to_contain_text("null")
        composer = tab.page.get_by_role("textbox", name="Message")
        await composer.fill("We are on it")
        await composer.press("Enter")
        await eventually(
            lambda: any(s.request.get("text", {}).get("body") == "We are on it" for s in world.simulator.sent)
        )
        reply = messages(tab).get_by_role("listitem").filter(has_text="We are on it")
        await expect(reply.get_by_label("Read")).to_be_visible()
        await expect(item.get_by_label("1 unread message")).to_have_count(0)
        await tab.page.screenshot(path=SCREENSHOTS / "conversation.png")
        assert tab.errors == []


async def test_a_canned_response_fills_in_its_placeholders(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=22) as world:
        admin = await world.browsers.signed_in(tenant.admin)
        canned = {
            "shortcut": "thanks",
            "title": "Thank them",
            "body": "Thank you {{contact.name}}, this is {{agent.name}}.",
        }
        assert (await admin.post("/api/canned-responses", canned)).status == 201
        async with console_of(browser, world, tenant.agent) as tab:
            await world.customer_writes("5511987650002", "Can you help?")
            await open_conversation(tab, "Can you help?")
            composer = tab.page.get_by_role("textbox", name="Message")
            await composer.type("/than")
            await expect(tab.page.get_by_role("listbox", name="Canned responses").get_by_role("option")).to_have_count(
                1
            )
            await composer.press("Enter")
            await expect(composer).to_have_value("Thank you Customer, this is Agent.")
            await composer.press("Enter")
            await eventually(
                lambda: any(
                    s.request.get("text", {}).get("body") == "Thank you Customer, this is Agent."
                    for s in world.simulator.sent
                )
            )
            assert tab.errors == []


async def test_a_transfer_reaches_the_second_agents_open_page_with_its_note(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=23) as world:
        admin = await world.browsers.signed_in(tenant.admin)
        await admin.put(f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}", {})
        async with console_of(browser, world, tenant.agent) as first:
            await world.customer_writes("5511987650003", "I want to change my plan")
            await expect(conversations(first).get_by_role("listitem").filter(has_text="change my plan")).to_be_visible()
            # Online only now, so the assignment went to the first agent.
            async with console_of(browser, world, tenant.other_agent) as second:
                await open_conversation(first, "I want to change my plan")
                await (
                    first.page.get_by_role("toolbar", name="Conversation actions")
                    .get_by_role("button", name="Transfer")
                    .click()
                )
                dialog = first.page.get_by_role("dialog", name="Transfer the conversation")
                colleague = dialog.get_by_role("option", name="Other_Agent — Online")
                await dialog.get_by_label("To").select_option(label=await colleague.text_content())
                await dialog.get_by_label("Note for the receiver").fill("VIP: wants the yearly plan")
                await dialog.get_by_role("button", name="Transfer").click()
                await expect(
                    conversations(first).get_by_role("listitem").filter(has_text="change my plan")
                ).to_have_count(0)

                moved = conversations(second).get_by_role("listitem").filter(has_text="change my plan")
                await expect(moved).to_be_visible()
                await open_conversation(second, "I want to change my plan")
                await expect(
                    messages(second).get_by_role("listitem").filter(has_text="VIP: wants the yearly plan")
                ).to_contain_text("Private note by Agent")
                assert first.errors == []
                assert second.errors == []


async def test_a_failed_send_shows_metas_reason_and_retry_sends_it(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=24) as world, console_of(browser, world, tenant.agent) as tab:
        await world.customer_writes("5511987650004", "Is anyone there?")
        await open_conversation(tab, "Is anyone there?")
        world.simulator.fail_next(131026)
        composer = tab.page.get_by_role("textbox", name="Message")
        await composer.fill("Yes, here I am")
        await composer.press("Enter")
        reply = messages(tab).get_by_role("listitem").filter(has_text="Yes, here I am")
        await expect(reply).to_contain_text("Not delivered: ")
        await expect(reply.get_by_label("Not delivered")).to_be_visible()
        await reply.get_by_role("button", name="Retry").click()
        await expect(reply.get_by_role("button", name="Retry")).to_have_count(0)
        await expect(reply.get_by_label("Read")).to_be_visible()
        assert [s.request["text"]["body"] for s in world.simulator.sent] == ["Yes, here I am"]
        assert tab.errors == []


async def test_markup_from_a_customer_shows_as_text_and_runs_nothing(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    markup = "<img src=x onerror=alert(1)> see https://example.com/a?b=1 and javascript:alert(2)"
    async with simulated_world(database, db, tenant, seed=25) as world, console_of(browser, world, tenant.agent) as tab:
        await world.customer_writes("5511987650005", markup)
        await open_conversation(tab, "<img src=x onerror=alert(1)>")
        await expect(messages(tab)).to_contain_text(markup)
        assert await tab.page.locator("#console img").count() == 0
        links = messages(tab).get_by_role("link")
        await expect(links).to_have_count(1)
        assert await links.get_attribute("href") == "https://example.com/a?b=1"
        assert await links.get_attribute("rel") == "noopener noreferrer"
        assert tab.dialogs == []
        assert tab.errors == []


async def test_a_restarted_server_is_caught_up_without_a_reload(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=26) as world, console_of(browser, world, tenant.agent) as tab:
        await world.customer_writes("5511987650006", "First message")
        await open_conversation(tab, "First message")
        await tab.page.evaluate("window.reloaded = false")

        await world.stop_console()
        connection = tab.page.get_by_role("status").filter(has_text="Reconnecting…")
        await expect(connection).to_be_visible()
        await world.start_console()
        await world.customer_writes("5511987650006", "Written while you were away")
        await world.customer_writes("5511987650007", "A new customer meanwhile")

        await expect(tab.page.get_by_role("status").filter(has_text="Live")).to_be_visible(timeout=20_000)
        await expect(messages(tab)).to_contain_text("Written while you were away")
        await expect(
            conversations(tab).get_by_role("listitem").filter(has_text="A new customer meanwhile")
        ).to_be_visible()
        assert await tab.page.evaluate("window.reloaded") is False
        # Chromium reports each refused reconnection as a console error; nothing else may go wrong.
        assert [e for e in tab.errors if not e.startswith("WebSocket connection to")] == []


async def test_a_phone_shows_one_pane_at_a_time(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=27) as world, console_of(browser, world, tenant.agent) as tab:
        await tab.page.set_viewport_size({"width": 375, "height": 740})
        await world.customer_writes("5511987650008", "Sent from my phone")
        await open_conversation(tab, "Sent from my phone")
        await expect(conversations(tab)).to_be_hidden()
        await tab.page.screenshot(path=SCREENSHOTS / "phone.png")
        await tab.page.get_by_role("button", name="Contact").click()
        contact = tab.page.get_by_role("complementary", name="Contact")
        await expect(contact.get_by_text("+5511987650008")).to_be_visible()
        await expect(messages(tab)).to_be_hidden()
        await contact.get_by_role("button", name="Back to the conversation").click()
        await expect(messages(tab)).to_be_visible()
        await tab.page.get_by_role("button", name="Back", exact=True).click()
        await expect(conversations(tab)).to_be_visible()
        await expect(messages(tab)).to_be_hidden()
        assert await tab.page.evaluate("document.documentElement.scrollWidth") <= 375


async def test_after_the_window_closes_a_named_template_is_sent_from_the_picker(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=28) as world:
        async with console_of(browser, world, tenant.agent) as tab:
            await world.customer_writes("5511987650009", "Remind me of my appointment")
            item = conversations(tab).get_by_role("listitem").filter(has_text="Remind me of my appointment")
            await expect(item).to_be_visible()
        # The customer wrote almost 24 hours ago: the window closes while the agent looks at the conversation.
        async with tenant_tx(db, tenant.id) as conn:
            await conn.execute("update conversations set last_inbound_at = now() - interval '23:59:56'")
        async with console_of(browser, world, tenant.agent) as tab:
            await open_conversation(tab, "Remind me of my appointment")
            composer = tab.page.get_by_role("textbox", name="Message")
            await expect(composer).to_be_enabled()
            await expect(tab.page.get_by_text("The 24-hour window closes in")).to_be_visible()
            choose = tab.page.get_by_role("button", name="Choose a template")
            await expect(choose).to_be_visible(timeout=10_000)
            await expect(composer).to_be_disabled()
            await choose.click()
            picker = tab.page.get_by_role("dialog", name="Send a template")
            await picker.get_by_label("Template", exact=True).select_option("appointment_reminder|en_US")
            await picker.get_by_label("{{first_name}}").fill("Maria")
            await picker.get_by_label("{{date}}").fill("Friday at 3 pm")
            await expect(picker.get_by_label("Preview of the template")).to_contain_text("Maria")
            await tab.page.screenshot(path=SCREENSHOTS / "template-picker.png")
            await picker.get_by_role("button", name="Send template").click()
            await expect(picker).to_be_hidden()

            await eventually(lambda: any(s.type == "template" for s in world.simulator.sent))
            sent = next(s for s in world.simulator.sent if s.type == "template")
            body = next(c for c in sent.request["template"]["components"] if c["type"] == "body")
            assert body["parameters"] == [
                {"type": "text", "parameter_name": "first_name", "text": "Maria"},
                {"type": "text", "parameter_name": "date", "text": "Friday at 3 pm"},
            ]
            await expect(messages(tab)).to_contain_text("Maria")
            assert tab.errors == []


async def test_search_finds_message_text_and_opens_the_conversation_at_it(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=29) as world, console_of(browser, world, tenant.agent) as tab:
        await world.customer_writes("5511987650010", "My parcel tracking says Guarulhos")
        await world.customer_writes("5511987650010", "It has not moved since Monday")
        await expect(conversations(tab).get_by_role("listitem").filter(has_text="since Monday")).to_be_visible()
        await tab.page.keyboard.press("/")
        search = tab.page.get_by_role("searchbox", name="Search conversations")
        await expect(search).to_be_focused()
        await search.fill("guarul")
        found = conversations(tab).get_by_role("listitem").filter(has_text="Guarulhos")
        await expect(found).to_have_count(1)
        await found.get_by_role("button").first.click()
        await expect(messages(tab).locator(".found")).to_contain_text("My parcel tracking says Guarulhos")
        await search.fill("nothing like this")
        await expect(tab.page.get_by_text("Nothing found.")).to_be_visible()
        assert tab.errors == []


async def test_the_keyboard_moves_between_conversations_and_lists_its_shortcuts(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=30) as world, console_of(browser, world, tenant.agent) as tab:
        await world.customer_writes("5511987650011", "first customer")
        await world.customer_writes("5511987650012", "second customer")
        await expect(conversations(tab).get_by_role("listitem")).to_have_count(2)
        await tab.page.locator("body").click()
        await tab.page.keyboard.press("j")
        await expect(messages(tab)).to_be_visible()
        first = await tab.page.get_by_role("heading", level=2).first.text_content()
        opened = await messages(tab).text_content()
        await tab.page.keyboard.press("j")
        await expect(messages(tab)).not_to_have_text(opened or "")
        await expect(tab.page.get_by_role("textbox", name="Message")).to_be_enabled()
        await tab.page.keyboard.press("r")
        await expect(tab.page.get_by_role("textbox", name="Message")).to_be_focused()
        await tab.page.keyboard.press("Escape")
        await tab.page.keyboard.press("?")
        shortcuts = tab.page.get_by_role("dialog", name="Keyboard shortcuts")
        await expect(shortcuts).to_contain_text("Next conversation")
        await tab.page.keyboard.press("Escape")
        await expect(shortcuts).to_be_hidden()
        assert first
        assert tab.errors == []


async def test_a_brazilian_browser_gets_portuguese_and_the_menu_can_switch_to_english(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=32) as world:
        context = await browser.new_context(locale="pt-BR", viewport=DESKTOP)
        try:
            page = await context.new_page()
            tab = Tab(page, str(world.console.make_url("")).rstrip("/"))
            await page.goto(tab.url("/login"))
            await page.get_by_label("Espaço de trabalho").fill(tenant.workspace)
            await page.get_by_label("E-mail").fill(tenant.agent.email)
            await page.get_by_label("Senha").fill(PASSWORD)
            await page.get_by_role("button", name="Entrar").click()
            await page.wait_for_url(tab.url("/"))
            await expect(page.get_by_role("list", name="Conversas")).to_be_attached()
            await expect(page.get_by_role("combobox", name="Status")).to_be_visible()
            await page.get_by_role("button", name="Agent: seu menu").click()
            await page.get_by_label("Idioma").select_option("en")
            await expect(page.get_by_role("list", name="Conversations")).to_be_attached()
        finally:
            await context.close()


async def test_a_colleague_typing_in_the_same_conversation_is_shown(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=33) as world, console_of(browser, world, tenant.agent) as tab:
        await world.customer_writes("5511987650013", "Two people should not answer me")
        await open_conversation(tab, "Two people should not answer me")
        async with console_of(browser, world, tenant.supervisor, online=False) as supervisor:
            await open_conversation(supervisor, "Two people should not answer me")
            await tab.page.get_by_role("textbox", name="Message").type("I am on it")
            await expect(supervisor.page.get_by_text("Agent is typing…")).to_be_visible()
            await expect(supervisor.page.get_by_text("Agent is typing…")).to_be_hidden(timeout=10_000)
            assert supervisor.errors == []


async def test_reactions_locations_and_forwards_read_as_what_they_are(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    customer = "5511987650014"
    async with simulated_world(database, db, tenant, seed=34) as world, console_of(browser, world, tenant.agent) as tab:
        first = text_message(customer, "Where is the shop?", wamid="wamid.shop-question")
        first["context"] = {"forwarded": True}
        location = {
            **text_message(customer, "", wamid="wamid.shop-location"),
            "type": "location",
            "location": {"latitude": -23.55, "longitude": -46.63, "name": "Shop", "address": "Rua A, 1"},
        }
        reaction = {
            **text_message(customer, "", wamid="wamid.shop-reaction"),
            "type": "reaction",
            "reaction": {"message_id": "wamid.shop-question", "emoji": "👍"},
        }
        for message in (first, location, reaction):
            del message["text"]
        first["text"] = {"body": "Where is the shop?"}
        edit = {
            **text_message(customer, "", wamid="wamid.shop-edit"),
            "type": "edit",
            "edit": {
                "original_message_id": "wamid.shop-question",
                "message": {"type": "text", "text": {"body": "Where is the shop, please?"}},
            },
        }
        del edit["text"]
        async with ClientSession() as http:
            body = envelope(world.phone_number_id, messages=[first, location])
            assert (await post_webhook(http, world.webhook_url, body)).status == 200
            # The list previews the newest message: the location, by its name.
            await open_conversation(tab, "Shop")
            # Live: the reaction and the edit change the message they name (issue #16), none is a message.
            for change in (reaction, edit):
                body = envelope(world.phone_number_id, messages=[change])
                assert (await post_webhook(http, world.webhook_url, body)).status == 200
        history = messages(tab)
        await expect(history).to_contain_text("Forwarded")
        await expect(history).to_contain_text("📍 Shop, Rua A, 1")
        await expect(history.get_by_role("link", name="Open the map")).to_have_attribute("rel", "noopener noreferrer")
        await expect(history.get_by_label("Reactions: 👍")).to_be_visible()
        await expect(history).to_contain_text("Where is the shop, please?")
        await expect(history).to_contain_text("edited")
        await expect(history.locator("li.bubble")).to_have_count(2)
        assert tab.errors == []


async def test_the_sign_in_page_speaks_the_browsers_language(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=35) as world:
        context = await browser.new_context(locale="pt-BR")
        try:
            page = await context.new_page()
            await page.goto(str(world.console.make_url("/login")))
            await page.get_by_label("Espaço de trabalho").fill(tenant.workspace)
            await page.get_by_label("E-mail").fill(tenant.agent.email)
            await page.get_by_label("Senha").fill("not the password")
            await page.get_by_role("button", name="Entrar").click()
            await expect(page.locator("#login-message")).to_have_text(
                "O espaço de trabalho, o e-mail ou a senha estão incorretos."
            )
        finally:
            await context.close()


async def test_a_resync_reloads_the_store_without_reloading_the_page(
    browser: Browser, database: TestDatabase, db: Database, owner: asyncpg.Connection, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=36) as world, console_of(browser, world, tenant.agent) as tab:
        await world.customer_writes("5511987650015", "before the gap")
        await expect(conversations(tab).get_by_role("listitem").filter(has_text="before the gap")).to_be_visible()
        await tab.page.evaluate("window.reloaded = false")
        await world.stop_console()
        await expect(tab.page.get_by_role("status").filter(has_text="Reconnecting…")).to_be_visible()

        # While the page is away another instance takes a customer's message, and retention then removes
        # every event it missed: resuming can only answer `resync`.
        other = TestServer(create_app(world.settings))
        await other.start_server()
        try:
            await customer_writes(other, world.phone_number_id, "written in the gap", customer="5511987650016")
            async with tenant_tx(db, tenant.id) as conn:
                for _ in range(200):
                    if await conn.fetchval("select count(*) from messages where text = 'written in the gap'"):
                        break
                    await asyncio.sleep(0.05)
        finally:
            await other.close()
        await owner.execute("update events set created_at = now() - interval '8 days' where tenant_id = $1", tenant.id)
        async with tenant_tx(db, tenant.id) as conn:
            assert await events.prune(conn, keep=timedelta(days=7)) > 0
        await world.start_console()

        await expect(tab.page.get_by_role("status").filter(has_text="Live")).to_be_visible(timeout=20_000)
        shown = "[...window.fivConsole.store.state.conversations.values()].map((c) => c.last_message?.text)"
        # Polled from here: wait_for_function evaluates its text in the page, which the CSP forbids.
        for _ in range(200):
            texts = await tab.page.evaluate(shown)
            if "written in the gap" in texts:
                break
            await asyncio.sleep(0.05)
        assert "written in the gap" in texts
        assert "before the gap" in texts
        assert await tab.page.evaluate("window.reloaded") is False
        assert [e for e in tab.errors if not e.startswith("WebSocket connection to")] == []


async def _take_of_a_new_waiting_conversation(tab: Tab, world: World, wa_id: str, text: str) -> Locator:
    """A customer writes; the agent's console opens the conversation from the waiting tab: its Take button."""
    await world.customer_writes(wa_id, text)
    await tab.page.get_by_role("tab", name="Waiting in my queues (1)").click()
    await open_conversation(tab, text)
    take = tab.page.get_by_role("toolbar", name="Conversation actions").get_by_role("button", name="Take")
    await expect(take).to_be_visible()
    return take


async def test_taking_a_conversation_another_agent_took_first_says_so(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=37) as world:
        admin = await world.browsers.signed_in(tenant.admin)
        await admin.put(f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}", {})
        # Both agents stay offline: nothing is assigned by itself, both see the customer waiting.
        async with console_of(browser, world, tenant.other_agent, online=False) as tab:
            take = await _take_of_a_new_waiting_conversation(tab, world, "5511987650017", "Whoever is first")
            agent = await world.browsers.signed_in(tenant.agent)
            waiting = (await agent.get("/api/conversations", params={"status": "waiting"})).data["items"]
            # The other agent takes it while this page has not heard yet (its socket is being replaced, and
            # a reconnection waits half a second at least).
            for socket in list(world.console.app[hub_key].sockets_of(tenant.other_agent.id)):
                socket.close(1012, "restarting")
            assert (await agent.post(f"/api/conversations/{waiting[0]['id']}/assign", {})).status == 200
            await take.click()
            await expect(
                tab.page.get_by_role("alert").filter(has_text="Another agent took this conversation first.")
            ).to_be_visible()
            assert [e for e in tab.errors if not e.startswith("WebSocket connection to")] == []


async def test_an_admin_letting_agents_take_waiting_conversations_shows_at_once(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    """The setting is read when the console starts; a change must reach open consoles (`tenant.updated`)
    rather than wait for each agent to reload."""
    async with simulated_world(database, db, tenant, seed=41) as world:
        admin = await world.browsers.signed_in(tenant.admin)
        await admin.put(f"/api/queues/{tenant.queue_id}/members/{tenant.other_agent.id}", {})
        assert (await admin.patch("/api/tenant/settings", {"agents_can_take_waiting": True})).status == 200
        async with console_of(browser, world, tenant.other_agent, online=False) as tab:
            take = await _take_of_a_new_waiting_conversation(tab, world, "5511987650041", "Anyone there?")

            assert (await admin.patch("/api/tenant/settings", {"agents_can_take_waiting": False})).status == 200
            await expect(take).to_be_hidden()
            assert (await admin.patch("/api/tenant/settings", {"agents_can_take_waiting": True})).status == 200
            await expect(take).to_be_visible()
            assert await tab.page.evaluate("window.fivConsole.store.state.me.agents_can_take_waiting") is True
            assert [e for e in tab.errors if not e.startswith("WebSocket connection to")] == []


async def test_a_supervisor_knows_every_agent_of_a_tenant_past_one_page(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    # 134 people; one API page holds 100, and Crowd 130 sorts 132nd by name.
    crowd = await add_crowd(db, tenant, 130)
    last = crowd[-1]
    async with simulated_world(database, db, tenant, seed=41) as world:
        await world.customer_writes("5511987650041", "Served far down the team")
        async with tenant_tx(db, tenant.id) as conn:
            for _ in range(200):
                conversation_id = await conn.fetchval("select id from conversations order by created_at desc limit 1")
                if conversation_id:
                    break
                await asyncio.sleep(0.05)
            await conn.execute(
                "update conversations set status = 'assigned', agent_id = $2, assigned_at = now() where id = $1",
                conversation_id,
                last.id,
            )
        async with console_of(browser, world, tenant.supervisor, online=False) as tab:
            page = tab.page
            agents = page.get_by_role("combobox", name="Agent", exact=True)
            # Every enabled person, after "Any agent".
            await expect(agents.get_by_role("option")).to_have_count(1 + 4 + 130)
            await agents.select_option(label="Crowd 130")
            await open_conversation(tab, "Served far down the team")
            await expect(page.get_by_text("Assigned to Crowd 130")).to_be_visible()
            # Nothing was left out: no note that the tenant has more than the console loads.
            await expect(page.locator("#partial-banner")).to_be_hidden()
            assert tab.errors == []


async def test_a_tenant_past_the_consoles_cap_is_told_so(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    # 5,002 people: the console reads 5,000 of them (api.ALL_CAP) and says what it left out.
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "insert into users (tenant_id, email, name, role, password_hash) "
            "select $1, format('bulk-%s-%s@bulk.example', n, $2::text), format('Bulk %s', lpad(n::text, 4, '0')), "
            "'agent', 'not a hash' from generate_series(1, 4998) n",
            tenant.id,
            tenant.id.hex[:8],
        )
    async with simulated_world(database, db, tenant, seed=42) as world:
        async with console_of(browser, world, tenant.supervisor, online=False) as tab:
            await expect(
                tab.page.get_by_text("This workspace has 5,002 people; the console lists the first 5,000.")
            ).to_be_visible()
            agents = tab.page.get_by_role("combobox", name="Agent", exact=True)
            # The first 5,000 by name, and the supervisor (past them), known from their own presence event.
            await expect(agents.get_by_role("option")).to_have_count(1 + 5000 + 1)
            assert tab.errors == []
        # An agent's console reads no people: nothing to tell.
        async with console_of(browser, world, tenant.agent) as tab:
            for _ in range(200):
                if not await tab.page.evaluate("window.fivConsole.store.state.loading"):
                    break
                await asyncio.sleep(0.05)
            assert await tab.page.evaluate("window.fivConsole.store.state.partial") == []
            await expect(tab.page.locator("#partial-banner")).to_be_hidden()
            assert tab.errors == []
