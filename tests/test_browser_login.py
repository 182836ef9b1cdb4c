"""The sign-in page, the console shell and the API reference in a real browser (`tests/browser.py`)."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Route, expect

from fiv_console.web.api import registry
from tests.api import PASSWORD, Browsers, Person, TenantPeople
from tests.browser import Tab, browser, chromium, open_tab, tab

# The fixtures come from tests/browser.py; naming them here is how pytest finds them.
__all__ = ["browser", "chromium", "tab"]

WRONG = "The workspace, email or password is wrong."


async def test_the_login_page_renders(tab: Tab) -> None:
    await tab.page.goto(tab.url("/login"))
    await expect(tab.page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The test database holds many tenants, so the page asks which one.
    await expect(tab.page.get_by_label("Workspace")).to_be_visible()
    await expect(tab.page.get_by_label("Workspace")).to_be_focused()
    await expect(tab.page.get_by_label("Email")).to_be_visible()
    await expect(tab.page.get_by_label("Password")).to_have_attribute("type", "password")
    # Enabled only once login.js has run: the module loaded under the CSP.
    await expect(tab.page.get_by_role("button", name="Sign in")).to_be_enabled()
    assert tab.errors == []


async def test_a_wrong_password_shows_a_message_and_nothing_else(tab: Tab, tenant: TenantPeople) -> None:
    await tab.sign_in(tenant.agent, "not the password")
    message = tab.page.locator("#login-message")
    await expect(message).to_have_text(WRONG)
    await expect(message).to_have_attribute("aria-live", "assertive")
    assert tab.page.url == tab.url("/login")
    body = await tab.page.locator("body").inner_text()
    for leak in ("Traceback", "UNAUTHENTICATED", '"success"', "{"):
        assert leak not in body
    assert tab.errors == []


async def test_the_right_password_opens_the_console_and_sign_out_ends_it(tab: Tab, tenant: TenantPeople) -> None:
    await tab.sign_in(tenant.supervisor, PASSWORD)
    await tab.page.wait_for_url(tab.url("/"))
    menu = tab.page.get_by_role("button", name="Supervisor: your menu")
    await menu.click()
    await expect(tab.page.get_by_text(f"Supervisor in the workspace {tenant.workspace}")).to_be_visible()

    await tab.page.get_by_role("button", name="Sign out").click()
    await tab.page.wait_for_url(tab.url("/login"))
    # The session really ended: the console sends the browser back to sign in.
    await tab.page.goto(tab.url("/"))
    assert tab.page.url == tab.url("/login")
    assert tab.errors == []


async def test_markup_in_a_name_renders_as_text(tab: Tab, tenant: TenantPeople, browsers: Browsers) -> None:
    name = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    admin = await browsers.signed_in(tenant.admin)
    assert (await admin.patch(f"/api/users/{tenant.agent.id}", {"name": name})).status == 200

    await tab.sign_in(tenant.agent, PASSWORD)
    await tab.page.wait_for_url(tab.url("/"))
    shown = tab.page.locator("#person-menu-button")
    await expect(shown).to_have_text(name)
    assert await shown.locator("img, script").count() == 0
    assert await tab.page.locator("img").count() == 0
    assert tab.dialogs == []


async def _throttle(browsers: Browsers, person: Person) -> None:
    """Use up the sign-in failures of this account from this address (10 per 15 minutes by default)."""
    api = await browsers.new()
    for _ in range(20):
        if (await api.login(person, "not the password")).status == 429:
            return
    raise AssertionError("sign-in was never throttled")


async def test_too_many_attempts_show_how_long_to_wait(tab: Tab, tenant: TenantPeople, browsers: Browsers) -> None:
    await _throttle(browsers, tenant.other_agent)
    await tab.sign_in(tenant.other_agent, PASSWORD)
    await expect(tab.page.locator("#login-message")).to_have_text(
        re.compile(r"^Too many sign-in attempts\. Please wait \d+ seconds? and try again\.$")
    )
    assert tab.page.url == tab.url("/login")


async def test_an_unexpected_answer_shows_a_plain_message(tab: Tab, tenant: TenantPeople) -> None:
    async def broken_proxy(route: Route) -> None:
        await route.fulfill(status=502, content_type="text/plain", body="Traceback (most recent call last): boom")

    await tab.page.route("**/api/auth/login", broken_proxy)
    await tab.sign_in(tenant.agent, PASSWORD)
    message = tab.page.locator("#login-message")
    await expect(message).to_have_text(re.compile(r"^Signing in did not work this time\."))
    assert "Traceback" not in await tab.page.locator("body").inner_text()


async def test_the_api_reference_renders_every_operation(tab: Tab) -> None:
    await tab.page.goto(tab.url("/api/docs"))
    operations = tab.page.locator("details.operation")
    await expect(operations).to_have_count(len(registry.operations()))
    await expect(tab.page.locator("#op-create_user .method")).to_have_text("POST")
    await expect(tab.page.locator("#op-create_user .roles")).to_have_text("Roles: admin")
    await expect(tab.page.locator("#op-login .roles")).to_have_text("Public: no sign-in needed")
    await tab.page.locator("#op-create_user summary").click()
    await expect(tab.page.locator("#op-create_user table.fields")).to_contain_text("email")
    assert tab.errors == []


async def test_a_workspace_link_fills_it_in_and_the_last_one_is_remembered(
    tab: Tab, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    page = tab.page
    await page.goto(tab.url(f"/login?workspace={tenant.workspace}"))
    workspace = page.get_by_label("Workspace")
    await expect(workspace).to_have_value(tenant.workspace)
    await expect(page.get_by_label("Email")).to_be_focused()
    await page.get_by_label("Email").fill(tenant.agent.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(tab.url("/"))
    await page.get_by_role("button", name="Agent: your menu").click()
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(tab.url("/login"))

    # Back on the plain page, the workspace that last signed in here is filled in.
    await expect(page.get_by_label("Workspace")).to_have_value(tenant.workspace)
    # A link to another workspace wins over the remembered one.
    await page.goto(tab.url(f"/login?workspace={other_tenant.workspace}"))
    await expect(page.get_by_label("Workspace")).to_have_value(other_tenant.workspace)
    assert tab.errors == []


async def test_the_wrong_workspace_reads_like_a_wrong_password(
    tab: Tab, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    await tab.sign_in(Person(tenant.agent.id, tenant.agent.email, "agent", other_tenant.workspace), PASSWORD)
    await expect(tab.page.locator("#login-message")).to_have_text(WRONG)
    assert tab.page.url == tab.url("/login")


async def test_a_single_tenant_deployment_does_not_ask_for_the_workspace(
    browser: Browser, single_tenant: tuple[TestServer, TenantPeople]
) -> None:
    server, people = single_tenant
    async with open_tab(browser, server) as solo:
        await solo.page.goto(solo.url("/login"))
        await expect(solo.page.get_by_label("Email")).to_be_focused()
        await expect(solo.page.get_by_label("Workspace")).to_have_count(0)
        await solo.page.get_by_label("Email").fill(people.supervisor.email)
        await solo.page.get_by_label("Password").fill("not the password")
        await solo.page.get_by_role("button", name="Sign in").click()
        await expect(solo.page.locator("#login-message")).to_have_text("The email or password is wrong.")
        await solo.page.get_by_label("Password").fill(PASSWORD)
        await solo.page.get_by_role("button", name="Sign in").click()
        await solo.page.wait_for_url(solo.url("/"))
        await expect(solo.page.get_by_role("button", name="Supervisor: your menu")).to_be_visible()
        assert solo.errors == []
