"""Playwright fixtures of the dashboard's browser tests: one Chromium (Debian's, at /usr/bin/chromium: Playwright
cannot download its own here) for the session, a new context per test, on the real stack (`api`).

Screenshots go under each test's tmp dir; with JOBS_SAVE_SCREENSHOTS=1 the ones a test names are copied to
docs/screenshots/ as well."""

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, async_playwright, expect

CHROMIUM = os.environ.get("JOBS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 30_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        await browser.close()


@dataclass
class Dashboard:
    """A browser tab on the dashboard, with what it saw: dialogs (each answered `accept`) and console errors."""

    page: Page
    base_url: str
    shots: Path
    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    accept: bool = True

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    async def sign_in(self, api_key: str) -> None:
        await self.page.goto(self.url("/"))
        await self.page.get_by_label("API key").fill(api_key)
        await self.page.get_by_role("button", name="Sign in").click()
        await expect(self.page.get_by_role("heading", name="Jobs")).to_be_visible()

    async def screenshot(self, name: str, keep: bool = False) -> Path:
        """A full-page screenshot in the test's tmp dir; `keep`: copied to docs/screenshots/ when
        JOBS_SAVE_SCREENSHOTS=1."""
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        if keep and os.environ.get("JOBS_SAVE_SCREENSHOTS") == "1":
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
        return path


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    await context.close()


@pytest.fixture
async def dashboard(api: httpx.AsyncClient, context: BrowserContext, tmp_path: Path) -> AsyncIterator[Dashboard]:
    page = await context.new_page()
    board = Dashboard(page, str(api.base_url), tmp_path)

    async def on_dialog(dialog: Dialog) -> None:
        board.dialogs.append(dialog.message)
        await (dialog.accept() if board.accept else dialog.dismiss())

    def on_console(message: ConsoleMessage) -> None:
        # A 4xx page is logged as a failed load; anything else (a CSP violation, a script error) is a failure.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            board.console_errors.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda error: board.console_errors.append(str(error)))
    yield board
    # No page of any test broke the CSP or threw: a violation is logged to the console as an error.
    assert board.console_errors == []
