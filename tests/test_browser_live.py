"""The console's live connection in a real browser (`tests/browser.py`): it connects and says so, sets the
agent's status, picks up after a lost connection with what was missed, and goes to sign-in when the session
ended (closed with 4401, or refused on reconnecting) but not when the socket was closed for anything else.
What the console shows of conversations is in test_browser_console.py."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestServer
from playwright.async_api import expect

from fiv_console.db.pool import Database, tenant_tx
from fiv_console.keys import hub_key
from tests.api import PASSWORD, Browsers, TenantPeople
from tests.browser import Tab, browser, chromium, tab
from tests.webhooks import customer_writes, number_of

__all__ = ["browser", "chromium", "tab"]


async def _agent_goes_live(tab: Tab, tenant: TenantPeople) -> None:
    await tab.sign_in(tenant.agent, PASSWORD)
    await tab.page.wait_for_url(tab.url("/"))
    await expect(tab.page.locator("#connection")).to_have_text("Live")
    await expect(tab.page.locator("#connection")).to_have_attribute("role", "status")


async def test_an_offline_agent_is_told_and_going_online_sets_the_status(
    tab: Tab, db: Database, tenant: TenantPeople
) -> None:
    await _agent_goes_live(tab, tenant)
    banner = tab.page.get_by_role("alert").filter(has_text="You are offline")
    await expect(banner).to_be_visible()
    await banner.get_by_role("button", name="Go online").click()
    await expect(banner).to_be_hidden()
    await expect(tab.page.get_by_label("Status")).to_have_value("online")
    async with tenant_tx(db, tenant.id) as conn:
        assert await conn.fetchval("select status from users where id = $1", tenant.agent.id) == "online"
    assert tab.errors == []


async def test_choosing_away_sets_the_status_and_a_lost_connection_comes_back_with_what_was_missed(
    tab: Tab, api_server: TestServer, db: Database, tenant: TenantPeople
) -> None:
    phone_number_id = await number_of(db, tenant)
    await _agent_goes_live(tab, tenant)

    await tab.page.get_by_label("Status").select_option("away")
    # The choice goes over the socket: it is stored a moment later (longer on a busy machine).
    for _ in range(200):
        async with tenant_tx(db, tenant.id) as conn:
            if await conn.fetchval("select status from users where id = $1", tenant.agent.id) == "away":
                break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the status did not change within 10 s")

    # The server drops the socket (as a restart would); a customer writes while the console is away.
    for socket in list(api_server.app[hub_key].sockets_of(tenant.agent.id)):
        socket.close(1012, "restarting")
    await expect(tab.page.locator("#connection")).to_have_text("Reconnecting…")
    await customer_writes(api_server, phone_number_id, "sent while you were away")
    await expect(tab.page.locator("#connection")).to_have_text("Live", timeout=10_000)
    await tab.page.get_by_role("tab", name="Waiting in my queues (1)").click()
    waiting = tab.page.get_by_role("list", name="Conversations").get_by_role("listitem")
    await expect(waiting.filter(has_text="sent while you were away")).to_have_count(1)
    assert tab.errors == []


async def test_a_session_ended_elsewhere_sends_the_tab_to_sign_in(
    tab: Tab, browsers: Browsers, tenant: TenantPeople
) -> None:
    await _agent_goes_live(tab, tenant)
    elsewhere = await browsers.signed_in(tenant.agent)
    changed = await elsewhere.post(
        "/api/me/password", {"current_password": PASSWORD, "new_password": "a brand new long passphrase"}
    )
    assert changed.status == 200, changed.body
    await tab.page.wait_for_url(tab.url("/login"), timeout=10_000)
    assert tab.errors == []


async def test_a_session_that_ended_while_disconnected_sends_the_tab_to_sign_in(
    tab: Tab, api_server: TestServer, db: Database, tenant: TenantPeople
) -> None:
    await _agent_goes_live(tab, tenant)
    # The session ends while the socket is down (no 4401 reaches the tab): the reconnection is refused
    # with 401 before the upgrade, which the browser reports only as a failed connection.
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute("update users set session_version = session_version + 1 where id = $1", tenant.agent.id)
    for socket in list(api_server.app[hub_key].sockets_of(tenant.agent.id)):
        socket.close(1012, "restarting")
    await tab.page.wait_for_url(tab.url("/login"), timeout=10_000)


async def test_a_socket_closed_for_breaking_the_protocol_reconnects_without_signing_out(
    tab: Tab, api_server: TestServer, tenant: TenantPeople
) -> None:
    await _agent_goes_live(tab, tenant)
    for socket in list(api_server.app[hub_key].sockets_of(tenant.agent.id)):
        socket.close(1008, "unknown message type")
    await expect(tab.page.locator("#connection")).to_have_text("Reconnecting…")
    await expect(tab.page.locator("#connection")).to_have_text("Live", timeout=10_000)
    assert tab.page.url == tab.url("/")
