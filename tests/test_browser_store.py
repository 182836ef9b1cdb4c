"""The console's client store (static/store.js) keeps up with the server: after a run of traffic at open
pages (customers writing, replies and their receipts, assignment, a transfer, a label, a close, a
customer coming back), the store fed by the snapshot and the socket's events equals a new store read from
scratch, for an agent and for a supervisor."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from playwright.async_api import Browser

from fiv_console.db.pool import Database
from tests.api import TenantPeople
from tests.browser import Tab, browser, chromium
from tests.conftest import TestDatabase
from tests.test_browser_console import SCREENSHOTS, console_of
from tests.webhooks import simulated_world

__all__ = ["browser", "chromium"]

_COMPARE = """async () => {
  const live = window.fivConsole.store;
  const { createStore } = await import("/static/store.js");
  const fresh = createStore(structuredClone(live.state.me));
  fresh.state.filters = live.state.filters;
  await fresh.loadSnapshot();
  for (const id of live.state.histories.keys()) await fresh.loadConversation(id);
  // A conversation moved out of the person's sight keeps its history in the page; a fresh store cannot read it.
  const seen = live.comparable();
  const now = fresh.comparable();
  for (const id of Object.keys(seen.histories)) if (!(id in now.histories)) delete seen.histories[id];
  return JSON.stringify([seen, now]);
}"""


async def _agree(tab: Tab) -> tuple[Any, Any]:
    """The page's store and a fresh one, once they agree (events may still be on their way), else as they are."""
    live: Any = None
    fresh: Any = None
    for _ in range(60):
        live, fresh = json.loads(await tab.page.evaluate(_COMPARE))
        if live == fresh:
            break
        await asyncio.sleep(0.25)
    return live, fresh


async def test_snapshot_and_events_equal_a_fresh_snapshot(
    browser: Browser, database: TestDatabase, db: Database, tenant: TenantPeople
) -> None:
    async with simulated_world(database, db, tenant, seed=31) as world:
        admin = await world.browsers.signed_in(tenant.admin)
        second_queue = (await admin.post("/api/queues", {"name": "Billing"})).data["id"]
        label = (await admin.post("/api/labels", {"name": "vip", "color": "#aa3300"})).data["id"]
        async with (
            console_of(browser, world, tenant.agent) as agent_tab,
            console_of(browser, world, tenant.supervisor, online=False) as supervisor_tab,
        ):
            for number, word in enumerate(("alpha", "bravo", "charlie", "delta")):
                await world.customer_writes(f"55119000000{number}", f"hello from {word}")
            agent = await world.browsers.signed_in(tenant.agent)
            supervisor = await world.browsers.signed_in(tenant.supervisor)

            async def conversation_of(text: str, status: str | None = None) -> dict[str, Any]:
                for _ in range(100):
                    found = (await supervisor.get("/api/conversations", params={"q": text})).data["items"]
                    if found and status in (None, found[0]["status"]):
                        return found[0]  # type: ignore[no-any-return]
                    await asyncio.sleep(0.1)
                raise AssertionError(text)

            first = await conversation_of("alpha", "assigned")
            second = await conversation_of("bravo")
            third = await conversation_of("charlie")
            await (
                agent_tab.page.get_by_role("list", name="Conversations")
                .get_by_role("listitem")
                .filter(has_text="alpha")
                .get_by_role("button")
                .first.click()
            )
            assert (await agent.post(f"/api/conversations/{first['id']}/messages", {"text": "on it"})).status == 201
            await supervisor.put(f"/api/conversations/{first['id']}/labels/{label}")
            moved = {"queue_id": second_queue, "note": "billing"}
            await supervisor.post(f"/api/conversations/{second['id']}/transfer", moved)
            await supervisor.post(f"/api/conversations/{third['id']}/close", {"reason": "spam"})
            await world.customer_writes("551190000002", "me again")
            await world.customer_writes("551190000000", "thanks!")

            for tab in (agent_tab, supervisor_tab):
                live, fresh = await _agree(tab)
                assert live == fresh
                assert any(live["lists"].values()), "the lists are not empty"
            await supervisor_tab.page.screenshot(path=SCREENSHOTS / "list.png")
            assert agent_tab.errors == []
            assert supervisor_tab.errors == []
