"""Debian's Chromium, headless, driven by Playwright against a live test server: the fixtures every browser
test shares.

Playwright's own browser download does not work on our machines, so the tests use /usr/bin/chromium. Without
it they are skipped locally, with how to install it, and fail under CI (`CI` set), where a skip would hide
that the pages were never tried.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, async_playwright

from tests.api import Person

CHROMIUM = Path("/usr/bin/chromium")
# Headless as root in a sandbox with no network: no GPU, no sandbox, and none of Chromium's calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the browser tests")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Tab:
    """A page of a fresh browser context, recording what must never happen: script errors (a CSP refusal
    shows up as one), and dialogs (an injected `alert`)."""

    page: Page
    base: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    async def sign_in(self, person: Person, password: str) -> None:
        """Type `person`'s workspace, email and `password` into the sign-in page, as they would."""
        await self.page.goto(self.url("/login"))
        await self.page.get_by_label("Workspace").fill(person.workspace)
        await self.page.get_by_label("Email").fill(person.email)
        await self.page.get_by_label("Password").fill(password)
        await self.page.get_by_role("button", name="Sign in").click()


@asynccontextmanager
async def open_tab(browser: Browser, server: TestServer) -> AsyncIterator[Tab]:
    """A page of a fresh browser context (its own cookies and storage) on `server`."""
    context = await browser.new_context()
    page = await context.new_page()
    opened = Tab(page, str(server.make_url("")).rstrip("/"))

    def on_console(message: ConsoleMessage) -> None:
        # Chromium also logs every 4xx answer as an error; those are answers the page handles.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            opened.errors.append(message.text)

    async def on_dialog(dialog: Dialog) -> None:
        opened.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    page.on("dialog", on_dialog)
    try:
        yield opened
    finally:
        await context.close()


@pytest.fixture
async def tab(browser: Browser, api_server: TestServer) -> AsyncIterator[Tab]:
    async with open_tab(browser, api_server) as opened:
        yield opened
