"""The administration pages in a real browser (`tests/browser.py`): an admin changes a setting on the
settings page and the assignment engine acts on the new value; an admin adds a user and sees a new API
token's secret once; the pages a role may not open say so. Screenshots of the settings and users pages go to
docs/screenshots/."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Browser, expect

from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.events import Unannounced
from fiv_console.simulation.cloud_api import SimulatorConfig, SimulatorServer
from tests.api import PASSWORD, Browsers, TenantPeople, add_crowd
from tests.assigning import assigned_to, available, owners_of
from tests.browser import Tab, browser, chromium, open_tab, tab
from tests.conftest import WEBHOOK_SECRET, TestDatabase, serving
from tests.webhooks import new_phone_number_id

__all__ = ["browser", "chromium", "tab"]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
GOOD_TOKEN = "token-of-the-number"


async def _signed_in(tab: Tab, tenant: TenantPeople, path: str) -> None:
    await tab.page.set_viewport_size(DESKTOP)
    await tab.sign_in(tenant.admin, PASSWORD)
    await tab.page.wait_for_url(tab.url("/"))
    await tab.page.goto(tab.url(path))


async def _customer_waited(db: Database, tenant: TenantPeople, conversation_id: uuid.UUID, minutes: int) -> None:
    """The customer's message has gone unanswered for `minutes` (and the agent has had it that long)."""
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update conversations set awaiting_reply_since = now() - make_interval(mins => $2), "
            "assigned_at = now() - make_interval(mins => $2) where id = $1",
            conversation_id,
            minutes,
        )


async def test_the_engine_uses_the_unanswered_reroute_an_admin_saves(
    tab: Tab, db: Database, tenant: TenantPeople, browsers: Browsers
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    assert (await admin.patch("/api/tenant/settings", {"unanswered_reroute_seconds": 1800})).status == 200
    await available(db, tenant, tenant.agent.id, tenant.other_agent.id)
    (conversation_id,) = await assigned_to(db, tenant, tenant.agent.id, 1)
    await _customer_waited(db, tenant, conversation_id, 8)
    loop = AssignmentLoop(db, Unannounced(), grace=30)
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[conversation_id] == tenant.agent.id  # 8 minutes is under 30

    await _signed_in(tab, tenant, "/admin/settings")
    page = tab.page
    await expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    reroute = page.get_by_role("spinbutton", name="Re-route after no answer, in minutes")
    await expect(reroute).to_have_value("30")
    await reroute.fill("5")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Saved. The assignment engine uses the new settings from its next round."
    )
    await expect(page.get_by_role("spinbutton", name="Re-route after no answer, in minutes")).to_have_value("5")
    await page.screenshot(path=SCREENSHOTS / "settings.png", full_page=True)

    # The next round reads the value the page saved (300 s, under the 8 minutes waited): another agent has it.
    await loop.run_once(tenant.id)
    assert (await owners_of(db, tenant))[conversation_id] == tenant.other_agent.id
    async with tenant_tx(db, tenant.id) as conn:
        reasons = await conn.fetch(
            "select payload->>'reason' from events where conversation_id = $1 and type = 'conversation.unassigned'",
            conversation_id,
        )
    assert [r[0] for r in reasons] == ["unanswered"]
    audit = (await admin.get("/api/audit-log?action=tenant.settings_changed")).data
    assert audit[0]["details"]["changes"] == {"unanswered_reroute_seconds": {"from": 1800, "to": 300}}

    # A value under the limit is refused next to its field, in minutes; nothing is saved.
    await reroute.fill("0.25")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_text("From 30 sec to 1 day 0 hr.").last).to_be_visible()
    await expect(reroute).to_have_attribute("aria-invalid", "true")
    # Turned off: the engine no longer re-routes.
    await page.get_by_role("checkbox", name="Turn off: Re-route after no answer").check()
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved.")
    assert (await admin.get("/api/tenant/settings")).data["unanswered_reroute_seconds"] is None
    # The retention, in whole days.
    await page.get_by_role("checkbox", name="Turn off: Delete closed conversations after").uncheck()
    await page.get_by_role("spinbutton", name="Delete closed conversations after", exact=True).fill("90")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved.")
    assert (await admin.get("/api/tenant/settings")).data["retention_days"] == 90
    assert tab.errors == []


async def test_an_admin_adds_a_user_and_sees_a_tokens_secret_once(
    tab: Tab, db: Database, tenant: TenantPeople, browsers: Browsers
) -> None:
    await _signed_in(tab, tenant, "/admin")
    page = tab.page
    # /admin opens the first section.
    await page.wait_for_url(tab.url("/admin/users"))
    users = page.get_by_role("table", name="Users")
    await expect(users.get_by_role("row").filter(has_text=tenant.agent.email)).to_be_visible()

    await page.get_by_role("button", name="Add user").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Name").fill("Nadia Newcomer")
    await dialog.get_by_label("Email").fill("nadia@example.com")
    await dialog.get_by_label("Role").select_option("agent")
    await dialog.get_by_label("Conversations at once").fill("4")
    await dialog.get_by_label("First password").fill("short")
    await dialog.get_by_role("checkbox").first.check()
    await dialog.get_by_role("button", name="Create user").click()
    # The server's reason, next to its field; what was typed stays.
    await expect(dialog.get_by_text("must be 8 to 1024 characters")).to_be_visible()
    await expect(dialog.get_by_label("Name")).to_have_value("Nadia Newcomer")
    await dialog.get_by_label("First password").fill("a good long password")
    await dialog.get_by_role("button", name="Create user").click()
    await expect(page.get_by_role("dialog")).to_be_hidden()
    row = users.get_by_role("row").filter(has_text="nadia@example.com")
    await expect(row).to_contain_text("Agent")
    await expect(row).to_contain_text("4")
    await page.screenshot(path=SCREENSHOTS / "users.png", full_page=True)
    async with tenant_tx(db, tenant.id) as conn:
        memberships = await conn.fetchval(
            "select count(*) from queue_members m join users u on u.id = m.user_id where u.email = $1",
            "nadia@example.com",
        )
    assert memberships == 1

    await page.get_by_role("link", name="API tokens").click()
    await page.wait_for_url(tab.url("/admin/tokens"))
    await page.get_by_role("button", name="Create API token").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Name").fill("CRM sync")
    await dialog.get_by_role("button", name="Create token").click()
    await expect(dialog.get_by_role("heading", name="The secret of CRM sync")).to_be_visible()
    await expect(dialog.get_by_role("alert").filter(has_text="shown only this once")).to_be_visible()
    secret = await dialog.get_by_label("Secret").input_value()
    assert secret.startswith("fivt_")
    await dialog.get_by_role("button", name="Copy").click()
    await dialog.get_by_role("button", name="Close").click()
    tokens = page.get_by_role("table", name="API tokens")
    await expect(tokens.get_by_role("row").filter(has_text="CRM sync")).to_contain_text("Not used yet")
    integration = await browsers.new(bearer=secret)
    assert (await integration.get("/api/queues")).status == 200
    await page.reload()
    await expect(tokens.get_by_role("row").filter(has_text="CRM sync")).to_be_visible()
    assert secret not in await page.content()

    # Revoking asks first.
    await tokens.get_by_role("button", name="Revoke CRM sync").click()
    await page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    await expect(tokens.get_by_role("row").filter(has_text="CRM sync")).to_contain_text("Revoked")
    assert (await integration.get("/api/queues")).status == 401
    assert tab.errors == []


async def test_the_pages_a_role_may_not_open_say_so(tab: Tab, tenant: TenantPeople) -> None:
    page = tab.page
    # Signed out: to sign in, and back here afterwards.
    await page.goto(tab.url("/admin"))
    sent_to = urlsplit(page.url)
    assert (sent_to.path, parse_qs(sent_to.query)) == ("/login", {"next": ["/admin"]})

    # Signing in there brings the agent back to /admin, which is not for their role.
    await page.get_by_label("Workspace").fill(tenant.workspace)
    await page.get_by_label("Email").fill(tenant.agent.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(tab.url("/admin"))
    await expect(page.get_by_role("heading", name="This page is not for your role")).to_be_visible()
    answer = await page.goto(tab.url("/admin/settings"))
    assert answer is not None
    assert answer.status == 403
    await expect(page.get_by_role("heading", name="This page is not for your role")).to_be_visible()
    answer = await page.goto(tab.url("/admin"))
    assert answer is not None
    assert answer.status == 403
    assert tab.errors == []


async def test_a_supervisor_has_the_sections_of_their_role(tab: Tab, tenant: TenantPeople) -> None:
    page = tab.page
    await tab.sign_in(tenant.supervisor, PASSWORD)
    await page.wait_for_url(tab.url("/"))
    await page.goto(tab.url("/admin"))
    await page.wait_for_url(tab.url("/admin/queues"))
    sections = page.get_by_role("navigation", name="Administration")
    await expect(sections.get_by_role("link")).to_have_text(["Queues", "Canned responses", "Labels"])
    await expect(sections.get_by_role("link", name="Queues")).to_have_attribute("aria-current", "page")
    await expect(
        page.get_by_role("navigation", name="Sections").get_by_role("link", name="Administration")
    ).to_have_attribute("aria-current", "page")
    queues = page.get_by_role("table", name="Queues")
    await expect(queues.get_by_role("row")).to_have_count(2)
    # Supervisors run queues but do not create them.
    await expect(page.get_by_role("button", name="Add queue")).to_have_count(0)

    await page.get_by_role("link", name="Labels").click()
    await page.get_by_role("button", name="Add label").click()
    await page.get_by_role("dialog").get_by_label("Name").fill("urgent")
    await page.get_by_role("dialog").get_by_role("button", name="Save").click()
    await expect(page.get_by_role("table", name="Labels").get_by_role("row").filter(has_text="urgent")).to_be_visible()
    answer = await page.goto(tab.url("/admin/users"))
    assert answer is not None
    assert answer.status == 403
    assert tab.errors == []


@asynccontextmanager
async def verifying_console(browser: Browser, database: TestDatabase, phone_number_id: str) -> AsyncIterator[Tab]:
    """A console that asks the simulated WhatsApp whether a token may use a number before connecting it."""
    config = SimulatorConfig(
        app_secret=WEBHOOK_SECRET.encode(),
        display_numbers={phone_number_id: "15550100"},
        access_tokens=frozenset({GOOD_TOKEN}),
    )
    async with SimulatorServer(config) as simulator:
        settings = database.settings(whatsapp_graph_url=simulator.graph_url, whatsapp_verify_numbers=True)
        async with serving(settings) as server, open_tab(browser, server) as opened:
            yield opened


async def test_an_admin_connects_a_number_and_runs_a_queue(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    number = new_phone_number_id()
    async with verifying_console(browser, database, number) as tab:
        await _signed_in(tab, tenant, "/admin/channels")
        page = tab.page
        await expect(page.get_by_text("No numbers connected yet.")).to_be_visible()
        await page.get_by_role("button", name="Connect a number").click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_label("Phone number ID").fill(number)
        await dialog.get_by_label("Display number").fill("+1 555 0100")
        await dialog.get_by_label("Access token").fill("someone-elses-token")
        await dialog.get_by_role("button", name="Check with WhatsApp and connect").click()
        # WhatsApp did not confirm the token for this number: said next to the token, nothing connected.
        await expect(dialog.get_by_text("not accepted by WhatsApp for this number")).to_be_visible()
        await expect(dialog.get_by_label("Access token")).to_have_attribute("aria-invalid", "true")
        await dialog.get_by_label("Access token").fill(GOOD_TOKEN)
        await dialog.get_by_role("button", name="Check with WhatsApp and connect").click()
        numbers = page.get_by_role("table", name="WhatsApp numbers")
        row = numbers.get_by_role("row").filter(has_text="+1 555 0100")
        await expect(row).to_contain_text("Sends and receives; no templates")

        await page.get_by_role("link", name="Queues").click()
        queues = page.get_by_role("table", name="Queues")
        await expect(queues.get_by_role("row").nth(1)).to_contain_text("Always open")
        await queues.get_by_role("button", name="Edit").click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_label("SLA target, in minutes").fill("2")
        await dialog.get_by_label("Always open").uncheck()
        await dialog.get_by_label("Monday").fill("9-18")
        await dialog.get_by_role("button", name="Save").click()
        await expect(dialog.get_by_text("must be a time of day as HH:MM")).to_be_visible()
        await dialog.get_by_label("Monday").fill("09:00-12:30, 13:30-18:00")
        await dialog.get_by_label("Out-of-hours message").fill("We are closed; we answer from 9:00.")
        await dialog.get_by_role("button", name="Save").click()
        await expect(queues.get_by_role("row").nth(1)).to_contain_text("Open 1 day a week")
        await expect(queues.get_by_role("row").nth(1)).to_contain_text("2 min")

        await queues.get_by_role("button", name="Members").click()
        dialog = page.get_by_role("dialog")
        # Found by typing part of the name, chosen from the list the field owns.
        await dialog.get_by_role("combobox", name="Add a member").fill("other")
        await dialog.get_by_role("option", name=re.compile(r"^Other_Agent \(Agent\)")).click()
        await expect(dialog.get_by_role("combobox", name="Add a member")).to_have_value("Other_Agent")
        await dialog.get_by_label("Conversations at once in this queue").fill("2")
        await dialog.get_by_role("button", name="Add", exact=True).click()
        await expect(dialog.get_by_role("listitem").filter(has_text="Other_Agent")).to_contain_text(
            "2 conversations at once"
        )
        await dialog.get_by_role("button", name="Remove Agent", exact=True).click()
        await expect(dialog.get_by_role("listitem")).to_have_count(1)
        await dialog.get_by_role("button", name="Close").click()
        async with tenant_tx(db, tenant.id) as conn:
            queue = await conn.fetchrow("select sla_seconds, business_hours from queues where id = $1", tenant.queue_id)
            members = await conn.fetch("select user_id, max_concurrent_override from queue_members")
        assert queue["sla_seconds"] == 120
        assert queue["business_hours"] == {"mon": [["09:00", "12:30"], ["13:30", "18:00"]]}
        assert [(m["user_id"], m["max_concurrent_override"]) for m in members] == [(tenant.other_agent.id, 2)]

        await page.get_by_role("link", name="Audit log").click()
        log = page.get_by_role("table", name="Audit log")
        await expect(log.get_by_role("row").filter(has_text="channel.created")).to_have_count(1)
        await page.get_by_label("Action").fill("queue.member_set")
        await page.get_by_role("button", name="Filter").click()
        await expect(log.get_by_role("row")).to_have_count(2)
        await expect(log.get_by_role("row").nth(1)).to_contain_text("Admin")
        # Who did it: a person found by name (or any integration, offered first).
        who = page.get_by_role("combobox", name="Who")
        await who.fill("adm")
        await expect(page.get_by_role("option", name="Integrations (API tokens)")).to_have_count(0)
        await page.get_by_role("option", name=re.compile(r"^Admin \(Administrator\)")).click()
        await page.get_by_role("button", name="Filter").click()
        await expect(log.get_by_role("row")).to_have_count(2)
        await expect(page.get_by_role("combobox", name="Who")).to_have_value("Admin")
        await page.get_by_role("combobox", name="Who").fill("nobody we know")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.get_by_text("Choose who from the list, or clear the field for anyone.")).to_be_visible()
        await page.get_by_role("combobox", name="Who").fill("")
        await page.get_by_label("From").fill("2020-01-01")
        await page.get_by_label("To").fill("2020-01-31")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.get_by_text("Nothing matches these filters.")).to_be_visible()
        assert tab.errors == []


async def test_a_queue_of_more_people_than_a_page_is_paged_and_searched(
    tab: Tab, db: Database, tenant: TenantPeople
) -> None:
    # 134 people, sorted by name: Admin, Agent, Crowd 001-130, Other_Agent, Supervisor; Agent and Crowd
    # 001-125 serve the queue. One API page holds 100.
    crowd = await add_crowd(db, tenant, 130, in_queue=125)
    await _signed_in(tab, tenant, "/admin/queues")
    page = tab.page
    await page.get_by_role("table", name="Queues").get_by_role("button", name="Members").click()
    dialog = page.get_by_role("dialog")
    members = dialog.get_by_role("list", name=re.compile("^Members of"))
    await expect(dialog.get_by_text("Showing 50 of 126 members")).to_be_visible()
    await expect(members.get_by_role("listitem")).to_have_count(50)
    await dialog.get_by_role("button", name="Show more members").click()
    await expect(dialog.get_by_text("Showing 100 of 126 members")).to_be_visible()
    await dialog.get_by_role("button", name="Show more members").click()
    await expect(dialog.get_by_text("Showing 126 of 126 members")).to_be_visible()
    await expect(members.get_by_role("listitem").filter(has_text="Crowd 125")).to_have_count(1)
    await expect(members.get_by_role("listitem").filter(has_text="Crowd 126")).to_have_count(0)
    await expect(dialog.get_by_role("button", name="Show more members")).to_be_hidden()

    # The people picker searches the whole tenant: Crowd 128 is past the first 100 people.
    search = dialog.get_by_role("combobox", name="Add a member")
    await search.fill("Crowd 12")
    options = dialog.get_by_role("listbox", name="Add a member").get_by_role("option")
    await expect(options).to_have_count(10)
    await expect(options.filter(has_text="Crowd 125")).to_contain_text("already a member")
    await dialog.get_by_role("option", name=re.compile(r"^Crowd 128 \(Agent\)")).click()
    await dialog.get_by_role("button", name="Add", exact=True).click()
    await expect(dialog.get_by_text("Showing 127 of 127 members")).to_be_visible()
    await expect(members.get_by_role("listitem").filter(has_text="Crowd 128")).to_have_count(1)

    # By email, from the keyboard.
    await search.fill(crowd[128].email)
    await expect(options).to_have_count(1)
    await search.press("ArrowDown")
    await expect(options.first).to_have_attribute("aria-selected", "true")
    await search.press("Enter")
    await expect(search).to_have_value("Crowd 129")
    await dialog.get_by_role("button", name="Add", exact=True).click()
    await expect(dialog.get_by_text("Showing 128 of 128 members")).to_be_visible()
    # Removing one keeps every other shown, once.
    await dialog.get_by_role("button", name="Remove Crowd 001", exact=True).click()
    await expect(dialog.get_by_text("Showing 127 of 127 members")).to_be_visible()
    await expect(members.get_by_role("listitem")).to_have_count(127)
    async with tenant_tx(db, tenant.id) as conn:
        count = await conn.fetchval("select count(*) from queue_members where queue_id = $1", tenant.queue_id)
    assert count == 127
    assert tab.errors == []
