"""The sign-in page, the console shell and the API reference in a real browser (`tests/browser.py`)."""

from __future__ import annotations

import re

from playwright.async_api import Route, expect

from fiv_console.web.api import registry
from tests.api import PASSWORD, Browsers, Person, TenantPeople
from tests.browser import Tab, browser, chromium, tab

# The fixtures come from tests/browser.py; naming them here is how pytest finds them.
__all__ = ["browser", "chromium", "tab"]

WRONG = "The email or password is wrong."


async def test_the_login_page_renders(tab: Tab) -> None:
    await tab.page.goto(tab.url("/login"))
    await expect(tab.page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(tab.page.get_by_label("Email")).to_be_visible()
    await expect(tab.page.get_by_label("Password")).to_have_attribute("type", "password")
    # Enabled only once login.js has run: the module loaded under the CSP.
    await expect(tab.page.get_by_role("button", name="Sign in")).to_be_enabled()
    assert tab.errors == []


async def test_a_wrong_password_shows_a_message_and_nothing_else(tab: Tab, tenant: TenantPeople) -> None:
    await tab.sign_in(tenant.agent.email, "not the password")
    message = tab.page.locator("#login-message")
    await expect(message).to_have_text(WRONG)
    await expect(message).to_have_attribute("aria-live", "assertive")
    assert tab.page.url == tab.url("/login")
    body = await tab.page.locator("body").inner_text()
    for leak in ("Traceback", "UNAUTHENTICATED", '"success"', "{"):
        assert leak not in body
    assert tab.errors == []


async def test_the_right_password_opens_the_console_and_sign_out_ends_it(tab: Tab, tenant: TenantPeople) -> None:
    await tab.sign_in(tenant.supervisor.email, PASSWORD)
    await tab.page.wait_for_url(tab.url("/"))
    await expect(tab.page.locator("#user-name")).to_have_text("Supervisor")
    await expect(tab.page.locator("#user-role")).to_have_text("supervisor")

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

    await tab.sign_in(tenant.agent.email, PASSWORD)
    await tab.page.wait_for_url(tab.url("/"))
    shown = tab.page.locator("#user-name")
    await expect(shown).to_have_text(name)
    assert await shown.locator("img, script").count() == 0
    assert await tab.page.locator("img").count() == 0
    assert tab.dialogs == []


async def _throttle(browsers: Browsers, person: Person) -> None:
    """Use up the account's sign-in attempts (10 per 15 minutes by default)."""
    api = await browsers.new()
    for _ in range(20):
        if (await api.login(person.email, "not the password")).status == 429:
            return
    raise AssertionError("sign-in was never throttled")


async def test_too_many_attempts_show_how_long_to_wait(tab: Tab, tenant: TenantPeople, browsers: Browsers) -> None:
    await _throttle(browsers, tenant.other_agent)
    await tab.sign_in(tenant.other_agent.email, PASSWORD)
    await expect(tab.page.locator("#login-message")).to_have_text(
        re.compile(r"^Too many sign-in attempts\. Please wait \d+ seconds? and try again\.$")
    )
    assert tab.page.url == tab.url("/login")


async def test_an_unexpected_answer_shows_a_plain_message(tab: Tab, tenant: TenantPeople) -> None:
    async def broken_proxy(route: Route) -> None:
        await route.fulfill(status=502, content_type="text/plain", body="Traceback (most recent call last): boom")

    await tab.page.route("**/api/auth/login", broken_proxy)
    await tab.sign_in(tenant.agent.email, PASSWORD)
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
