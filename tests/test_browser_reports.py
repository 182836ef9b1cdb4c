"""The reports page in a real browser (`tests/browser.py`): a supervisor picks a range, sees the cards, the
charts and the tables "By queue" and "By agent", and downloads the conversations' CSV. Found by role and
accessible name. Writes docs/screenshots/reports.png."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from tests.api import PASSWORD
from tests.browser import Tab, browser, chromium, tab
from tests.report_traffic import Scene, scene

__all__ = ["browser", "chromium", "scene", "tab"]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


async def test_a_supervisor_reads_the_report_and_downloads_the_csv(tab: Tab, scene: Scene) -> None:
    page = tab.page
    await page.set_viewport_size({"width": 1440, "height": 1100})
    await tab.sign_in(scene.tenant.supervisor, PASSWORD)
    await page.wait_for_url(tab.url("/"))
    await page.goto(tab.url("/reports"))
    await expect(page.get_by_role("heading", name="Reports", level=1)).to_be_visible()
    await page.get_by_label("Range", exact=True).select_option("custom")
    await page.get_by_label("From", exact=True).fill("2026-10-24")
    await page.get_by_label("To", exact=True).fill("2026-10-25")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_role("status")).to_contain_text("Europe/Lisbon")

    by_queue = page.get_by_role("table", name="By queue")
    first_line = by_queue.get_by_role("row").filter(has_text="First line")
    await expect(first_line.get_by_role("cell").first).to_have_text("3")  # queued
    total = by_queue.get_by_role("row").filter(has_text="Total")
    await expect(total.get_by_role("cell").nth(2)).to_have_text("60%")  # service level 3 / 5
    by_agent = page.get_by_role("table", name="By agent")
    await expect(by_agent.get_by_role("row")).to_have_count(3)  # the header and two agents
    await expect(by_agent).to_contain_text("13 hr")  # the agent's time online, 13 h 0 min

    volume = page.get_by_role("img", name=re.compile("^Volume over time"))
    await expect(volume).to_be_visible()
    await expect(volume.locator("circle")).to_have_count(4 * 48)  # four series, 48 hourly buckets
    await expect(page.get_by_role("img", name=re.compile("^Wait and first response over time"))).to_be_visible()
    await expect(page.get_by_role("img", name=re.compile("^Agents side by side"))).to_be_visible()
    await expect(page.get_by_role("term").filter(has_text="Service level")).to_be_visible()

    # The address keeps the range: a reload shows the same report.
    assert "from=2026-10-24" in page.url
    assert "to=2026-10-25" in page.url
    await page.screenshot(path=SCREENSHOTS / "reports.png")

    async with page.expect_download() as downloading:
        await page.get_by_role("link", name=re.compile("^Conversations: one row each")).click()
    download = await downloading.value
    assert download.suggested_filename == "conversations-2026-10-24-2026-10-25.csv"
    text = (await download.path()).read_bytes().decode()
    assert text.startswith("conversation_id,contact_name,contact_number,queue,agent,status,created_at")
    assert text.count("\r\n") == 1 + 5  # the header and five rows (a quoted name keeps its own line break)
    assert tab.errors == []
