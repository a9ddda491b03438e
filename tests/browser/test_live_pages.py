"""The dashboard's live pages in Chromium on the real stack and the real SDK endpoint: a run page that turns
SUCCESS without a reload, the Runs list's filters, pages and new rows, the Overview."""

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from app.container import Container
from app.service.environments import EnvironmentInfo
from domain.environments import EnvironmentType
from tests.helpers import finished, start_test_run

pytestmark = pytest.mark.compat

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 60_000
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
async def live_browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def page(live_browser: Browser, api: httpx.AsyncClient) -> AsyncIterator[Page]:
    context = await live_browser.new_context(base_url=str(api.base_url), viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    yield page
    await context.close()


async def sign_in(page: Page, environment: EnvironmentInfo) -> None:
    await page.goto("/")
    await page.get_by_label("API key").fill(environment.api_key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    """Into the test's directory; into docs/screenshots too when JOBS_SAVE_SCREENSHOTS=1."""
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if os.environ.get("JOBS_SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / path.name)


async def test_hello_world_from_the_test_tab_turns_success_on_its_page_without_a_reload(
    page: Page, environment: EnvironmentInfo, tmp_path: Path
) -> None:
    await sign_in(page, environment)
    await page.goto("/jobs/hello-world/test")
    await page.get_by_label("Payload").fill('{"name": "Grace <b>Hopper</b>", "waitSeconds": 2}')
    await page.get_by_role("button", name="Run test").click()
    await expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    status = page.locator("#run-live [data-status]")
    await expect(status).not_to_have_text("SUCCESS")  # the run waits two seconds: the page is there first
    await page.evaluate("window.__stillThisPage = true")
    await expect(status).to_have_text("SUCCESS", timeout=WAIT_MS)
    await expect(page.locator("#run-live")).to_contain_text("Hello, Grace <b>Hopper</b>!")
    assert await page.evaluate("window.__stillThisPage === true"), "the page was loaded again"
    await screenshot(page, tmp_path, "run-success")


async def test_filters_pages_and_new_rows_on_the_runs_page(
    page: Page, api: httpx.AsyncClient, environment: EnvironmentInfo, tmp_path: Path
) -> None:
    succeeded = [await start_test_run(api, "return-value", {"i": i}, tags=["batch"]) for i in range(27)]
    failed = [await start_test_run(api, "throws", {}) for _ in range(2)]
    for run_id in [*succeeded, *failed]:
        await finished(api, run_id)
    await sign_in(page, environment)
    await page.goto("/runs")
    rows = page.locator("#runs-rows tr")
    await expect(rows).to_have_count(25)
    await expect(rows.first).to_have_id(f"run-{failed[-1]}")  # newest first

    await page.get_by_label("Status").select_option("FAILURE")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(2)
    await expect(page.locator("#runs-rows .status")).to_have_text(["FAILURE", "FAILURE"])
    await expect(page.get_by_role("link", name="Next page")).to_have_count(0)

    await page.get_by_label("Status").select_option("SUCCESS")
    await page.get_by_label("Job").select_option("return-value")
    await page.get_by_label("Tag").fill("batch")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(25)
    first_page = set(await rows.evaluate_all("rows => rows.map(r => r.id)"))
    await screenshot(page, tmp_path, "runs")
    await page.get_by_role("link", name="Next page").click()
    await expect(rows).to_have_count(2)
    second_page = set(await rows.evaluate_all("rows => rows.map(r => r.id)"))
    assert first_page.isdisjoint(second_page)
    assert first_page | second_page == {f"run-{run_id}" for run_id in succeeded}
    assert "cursor=" in page.url and "status=SUCCESS" in page.url
    await expect(page.get_by_role("link", name="Next page")).to_have_count(0)

    # The first page of a list takes the new runs that match, without a reload.
    await page.get_by_role("link", name="First page").click()
    await expect(rows).to_have_count(25)
    await page.evaluate("window.__stillThisPage = true")
    new_run = await start_test_run(api, "return-value", {"new": True}, tags=["batch"])
    other_job = await start_test_run(api, "throws", {}, tags=["batch"])
    await expect(page.locator(f"#run-{new_run}")).to_be_visible()
    await expect(page.locator(f"#run-{new_run} .status")).to_have_text("SUCCESS")
    await expect(rows.first).to_have_id(f"run-{new_run}")
    await finished(api, other_job)
    await expect(page.locator(f"#run-{other_job}")).to_have_count(0)
    assert await page.evaluate("window.__stillThisPage === true")


async def test_the_overview_counts_the_last_hour(
    page: Page, api: httpx.AsyncClient, environment: EnvironmentInfo, tmp_path: Path
) -> None:
    runs = [await start_test_run(api, "return-value", {}) for _ in range(3)]
    runs.append(await start_test_run(api, "throws", {}))
    for run_id in runs:
        await finished(api, run_id)
    await sign_in(page, environment)
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/overview$"))
    chart = page.get_by_role("img", name=re.compile("Runs per minute by status"))
    await expect(chart).to_have_accessible_name(re.compile(r": 4 runs$"))
    await expect(page.locator("svg.chart rect.chart-success")).not_to_have_count(0)
    await expect(page.locator("svg.chart rect.chart-failure")).not_to_have_count(0)
    legend = page.get_by_role("list", name="Runs in the last hour by status")
    await expect(legend).to_contain_text("SUCCESS 3")
    await expect(legend).to_contain_text("FAILURE 1")
    await expect(page.locator("#figure-queued")).to_have_text("0")
    await expect(page.locator("#figure-outbox")).to_have_text(re.compile(r"^\d+$"))
    await expect(page.locator("#figure-lag")).to_have_text(re.compile(r"^\d+$"))
    await expect(page.locator("#figure-dead-letters")).to_have_text("0")
    await screenshot(page, tmp_path, "overview")


async def test_a_run_stream_is_the_signed_in_environments_only(
    page: Page, api: httpx.AsyncClient, environment: EnvironmentInfo, container: Container
) -> None:
    run_id = await start_test_run(api, "return-value", {})
    _, other_key = await container.service.environments.create("other", EnvironmentType.DEVELOPMENT)
    await sign_in(page, EnvironmentInfo(uuid.uuid4(), "other", EnvironmentType.DEVELOPMENT, other_key))
    for missing in (run_id, uuid.uuid4(), "not-a-run"):
        answer = await page.request.get(f"/runs/{missing}/events", max_redirects=0)
        assert answer.status == 404, missing
        assert "text/html" in answer.headers["content-type"]
    await page.context.clear_cookies()
    await sign_in(page, environment)
    answer = await page.request.get(f"/runs/{run_id}/events", max_redirects=0, timeout=WAIT_MS)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
    body = await answer.text()
    assert "event: run" in body and f'data-run-id="{run_id}"' in body
    assert body.rstrip().endswith("event: end\ndata:")  # the stream ends once the run is over
