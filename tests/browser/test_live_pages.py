"""The dashboard's live pages in Chromium on the real stack and the real SDK endpoint: a run page that turns
SUCCESS without a reload, the Runs list's filters, pages and new rows, the Overview."""

import re
import uuid

import httpx
import pytest
from playwright.async_api import expect

from app.container import Container
from app.service.environments import EnvironmentInfo
from domain.environments import EnvironmentType
from tests.browser.conftest import Dashboard
from tests.helpers import finished, start_test_run

pytestmark = pytest.mark.compat

WAIT_MS = 60_000


async def test_hello_world_from_the_test_tab_turns_success_on_its_page_without_a_reload(
    dashboard: Dashboard, environment: EnvironmentInfo
) -> None:
    page = dashboard.page
    await dashboard.sign_in(environment.api_key)
    await page.goto(dashboard.url("/jobs/hello-world/test"))
    await page.get_by_label("Payload").fill('{"name": "Grace <b>Hopper</b>", "waitSeconds": 2}')
    await page.get_by_role("button", name="Run test").click()
    await expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    status = page.locator("#run-live [data-status]")
    await expect(status).not_to_have_text("SUCCESS")  # the run waits two seconds: the page is there first
    await page.evaluate("window.__stillThisPage = true")
    await expect(status).to_have_text("SUCCESS", timeout=WAIT_MS)
    await expect(page.locator("#run-live")).to_contain_text("Hello, Grace <b>Hopper</b>!")
    assert await page.evaluate("window.__stillThisPage === true"), "the page was loaded again"
    await dashboard.screenshot("run-live-success")


async def test_filters_pages_and_new_rows_on_the_runs_page(
    dashboard: Dashboard, api: httpx.AsyncClient, environment: EnvironmentInfo
) -> None:
    page = dashboard.page
    succeeded = [await start_test_run(api, "return-value", {"i": i}, tags=["batch"]) for i in range(27)]
    failed = [await start_test_run(api, "throws", {}) for _ in range(2)]
    for run_id in [*succeeded, *failed]:
        await finished(api, run_id)
    await dashboard.sign_in(environment.api_key)
    await page.goto(dashboard.url("/runs"))
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
    await dashboard.screenshot("runs", keep=True)
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
    await expect(page.locator("#runs-rows[data-live-ready]")).to_have_count(1)
    await page.evaluate("window.__stillThisPage = true")
    new_run = await start_test_run(api, "return-value", {"new": True}, tags=["batch"])
    other_job = await start_test_run(api, "throws", {}, tags=["batch"])
    await expect(page.locator(f"#run-{new_run}")).to_be_visible()
    await expect(page.locator(f"#run-{new_run} .status")).to_have_text("SUCCESS")
    await expect(rows.first).to_have_id(f"run-{new_run}")
    await finished(api, other_job)
    await expect(page.locator(f"#run-{other_job}")).to_have_count(0)
    assert await page.evaluate("window.__stillThisPage === true")


async def test_a_run_comes_and_goes_on_a_list_filtered_by_its_status(
    dashboard: Dashboard, api: httpx.AsyncClient, environment: EnvironmentInfo
) -> None:
    page = dashboard.page
    await dashboard.sign_in(environment.api_key)
    await page.goto(dashboard.url("/runs?status=WAITING_TO_CONTINUE"))
    await expect(page.get_by_text("No runs match these filters.")).to_be_visible()
    await expect(page.locator("#runs-rows[data-live-ready]")).to_have_count(1)
    run_id = await start_test_run(api, "hello-world", {"waitSeconds": 3})
    row = page.locator(f"#run-{run_id}")
    await expect(row.locator(".status")).to_have_text("WAITING_TO_CONTINUE")  # it came when it began to wait
    await expect(page.get_by_text("No runs match these filters.")).to_be_hidden()
    assert (await finished(api, run_id))["status"] == "SUCCESS"
    await expect(row).to_have_count(0)  # and went when it went on


async def test_the_overview_counts_the_last_hour(
    dashboard: Dashboard, api: httpx.AsyncClient, environment: EnvironmentInfo
) -> None:
    page = dashboard.page
    runs = [await start_test_run(api, "return-value", {}) for _ in range(3)]
    runs.append(await start_test_run(api, "throws", {}))
    for run_id in runs:
        await finished(api, run_id)
    await dashboard.sign_in(environment.api_key)
    await page.goto(dashboard.url("/"))
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
    await expect(page.locator("#figure-oldest-due")).to_have_text("—")  # every run ended
    await dashboard.screenshot("overview", keep=True)


async def test_a_run_stream_is_the_signed_in_environments_only(
    dashboard: Dashboard, api: httpx.AsyncClient, environment: EnvironmentInfo, container: Container
) -> None:
    page = dashboard.page
    run_id = await start_test_run(api, "return-value", {})
    _, other_key = await container.service.environments.create("other", EnvironmentType.DEVELOPMENT)
    await dashboard.sign_in(other_key)
    for missing in (run_id, uuid.uuid4(), "not-a-run"):
        answer = await page.request.get(dashboard.url(f"/runs/{missing}/events"), max_redirects=0)
        assert answer.status == 404, missing
        assert "text/html" in answer.headers["content-type"]
    await page.context.clear_cookies()
    await dashboard.sign_in(environment.api_key)
    answer = await page.request.get(dashboard.url(f"/runs/{run_id}/events"), max_redirects=0, timeout=WAIT_MS)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
    body = (await answer.text()).replace("\r\n", "\n")
    assert "event: run" in body and f'data-run-id="{run_id}"' in body
    assert body.rstrip().endswith("event: end\ndata:")  # the stream ends once the run is over


async def test_bad_filters_and_cursors_are_4xx_pages(dashboard: Dashboard, environment: EnvironmentInfo) -> None:
    await dashboard.sign_in(environment.api_key)
    for path, says in (
        ("/runs?status=NOPE", "Status must be one of"),
        ("/runs?cursor=not-a-run", "cursor is not a run id"),
        ("/runs?tag=" + "x" * 201, "at most 200 characters"),
        ("/runs/stream?status=%3Cscript%3E", "Status must be one of"),
    ):
        answer = await dashboard.page.request.get(dashboard.url(path), max_redirects=0)
        assert answer.status == 400, path
        assert "text/html" in answer.headers["content-type"]
        assert says in await answer.text()
    # A cursor naming no run of this list starts from the top, as the API's does.
    answer = await dashboard.page.request.get(dashboard.url(f"/runs?cursor={uuid.uuid4()}"))
    assert answer.status == 200
