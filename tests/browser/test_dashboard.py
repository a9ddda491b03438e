"""The dashboard in Chromium on the real stack and the real SDK endpoint of tests/compat: signing in, the Test
tab, run pages, run control, inert markup, scoping, CSRF and the CSP."""

import asyncio
import json
import re

import httpx
import pytest
from playwright.async_api import Page, expect

from app.container import Container
from app.dashboard.session import SESSION_COOKIE
from app.service.environments import EnvironmentInfo
from domain.environments import EnvironmentType
from tests.browser.conftest import Dashboard

pytestmark = pytest.mark.compat

RUN_URL = re.compile(r".*/runs/[0-9a-f-]{36}$")


async def settled(page: Page, status: str) -> None:
    """Wait until the run page shows `status`. The page updates itself when live updates exist; until then it
    is reloaded between waits (the assertion is the same either way: what the page shows)."""
    shown = page.locator("#run-live [data-status]")
    async with asyncio.timeout(90):
        while True:
            try:
                await expect(shown).to_have_attribute("data-status", status, timeout=2_000)
                return
            except AssertionError:
                await page.reload()


async def run_test(board: Dashboard, job: str, payload: str | None) -> str:
    """From the Jobs page: the job, its Test tab, `payload` (None: as prefilled), Run test; the run page's URL."""
    page = board.page
    await page.goto(board.url("/jobs"))
    await page.get_by_role("link", name=job, exact=True).click()
    await page.get_by_role("link", name="Test", exact=True).click()
    if payload is not None:
        await page.get_by_label("Payload").fill(payload)
    await page.get_by_role("button", name="Run test").click()
    await expect(page).to_have_url(RUN_URL)
    return page.url


async def test_sign_in_and_out(dashboard: Dashboard, environment: EnvironmentInfo, api: httpx.AsyncClient) -> None:
    page = dashboard.page
    run_id = (await api.post("/api/v1/jobs/hello-world/test", json={"payload": {"name": "Jobs page"}})).json()["runId"]
    response = await page.goto(dashboard.url("/"))
    assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
    await expect(page.get_by_label("API key")).to_be_visible()
    await dashboard.screenshot("sign-in", keep=True)
    await dashboard.sign_in(environment.api_key)
    await expect(page.get_by_role("link", name="hello-world", exact=True)).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="hello-world", exact=True))
    await expect(row).to_contain_text("Hello world")
    await expect(row).to_contain_text("1.0.0")
    await expect(row).to_contain_text("event dash.hello")
    await expect(row.get_by_role("link", name=re.compile(r"QUEUED|EXECUTING|SUCCESS"))).to_have_attribute(
        "href", f"/runs/{run_id}"
    )
    await expect(row.get_by_role("cell").last).to_contain_text("1")
    await expect(page.get_by_text(environment.slug, exact=False).first).to_be_visible()
    await dashboard.screenshot("jobs", keep=True)
    cookie = next(c for c in await page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and environment.api_key not in cookie["value"]
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await page.goto(dashboard.url("/jobs"))
    await expect(page.get_by_label("API key")).to_be_visible()


async def test_a_wrong_key_is_refused(dashboard: Dashboard) -> None:
    page = dashboard.page
    await page.goto(dashboard.url("/"))
    await page.get_by_label("API key").fill("tr_dev_not_a_key_of_anyone")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("That API key is not valid")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert SESSION_COOKIE not in {c["name"] for c in await page.context.cookies()}
    await dashboard.screenshot("wrong-key")


async def test_hello_world_from_the_test_tab(dashboard: Dashboard, environment: EnvironmentInfo) -> None:
    page = dashboard.page
    await dashboard.sign_in(environment.api_key)
    await page.get_by_role("link", name="hello-world", exact=True).click()
    await page.get_by_role("link", name="Test", exact=True).click()
    editor = page.get_by_label("Payload")
    await expect(editor).to_have_value(re.compile(r'"name": "Ada"'))  # the index's first example
    await dashboard.screenshot("test-tab", keep=True)
    await page.get_by_role("button", name="Nobody").click()  # another example
    await expect(editor).to_have_value("{}")
    await editor.fill('{"name": "Grace <b>Hopper</b>"}')
    await page.get_by_role("button", name="Run test").click()
    await expect(page).to_have_url(RUN_URL)
    await settled(page, "SUCCESS")
    live = page.locator("#run-live")
    await expect(live.get_by_text("Status: SUCCESS")).to_be_visible()
    await expect(live.locator("pre.output")).to_contain_text('"greeting": "Hello, Grace <b>Hopper</b>!"')
    await expect(page.locator("pre.payload")).to_contain_text('"name": "Grace <b>Hopper</b>"')
    await expect(live.locator("dl.timing").first).to_contain_text("Completed")
    # The timeline: compose nested under greet, each bar drawn, each output on expand.
    greet = live.locator("li.task.depth-0").filter(has=page.get_by_text("greet", exact=True))
    compose = live.locator("li.task.depth-1").filter(has=page.get_by_text("compose", exact=True))
    await expect(greet).to_contain_text("COMPLETED")
    await expect(compose.locator("svg.bar rect")).to_have_count(1)
    await compose.get_by_text("Details of compose").click()
    await expect(compose.locator("pre.task-output")).to_contain_text("Hello, Grace <b>Hopper</b>!")
    await expect(live.get_by_role("cell", name="Greeted")).to_be_visible()  # io.createStatus
    await expect(live.get_by_role("cell", name="started")).to_be_visible()  # attempt 1
    await expect(live.get_by_role("button", name="Cancel run")).to_have_count(0)
    await expect(live.get_by_role("button", name="Rerun")).to_be_visible()
    await dashboard.screenshot("run-success", keep=True)
    await live.get_by_text(re.compile(r"\d+ events")).click()
    await expect(live.locator("ol.history")).to_contain_text("RunCompleted")
    # The job's Runs tab lists it; its Versions tab, the version indexed.
    run_id = page.url.rsplit("/", 1)[1]
    await page.get_by_role("link", name="hello-world", exact=True).click()
    await expect(page.get_by_role("link", name=run_id)).to_be_visible()
    await page.get_by_role("link", name="Versions", exact=True).click()
    await expect(page.get_by_role("cell", name="1.0.0", exact=True)).to_be_visible()


async def test_a_failing_jobs_error_is_shown(dashboard: Dashboard, environment: EnvironmentInfo) -> None:
    page = dashboard.page
    await dashboard.sign_in(environment.api_key)
    await run_test(dashboard, "throws", "{}")
    await settled(page, "FAILURE")
    await expect(page.locator("#run-live .run-error")).to_contain_text("boom from compat job")
    await dashboard.screenshot("run-failure", keep=True)
    # Continued, it executes again (and fails again): a second attempt on the same page.
    await page.get_by_role("button", name="Continue").click()
    await expect(page.locator("#run-live").get_by_role("cell", name="continued")).to_be_visible()
    await settled(page, "FAILURE")
    await expect(page.locator("#run-live dl.timing").first.locator("dd").last).to_have_text("2")  # Attempt
    assert dashboard.dialogs == ["Continue this run from where it stopped?"]


async def test_a_waiting_run_is_canceled_from_its_page(dashboard: Dashboard, environment: EnvironmentInfo) -> None:
    page = dashboard.page
    await dashboard.sign_in(environment.api_key)
    await run_test(dashboard, "waits", '{"seconds": 600}')
    await settled(page, "WAITING_TO_CONTINUE")
    sleep = page.locator("#run-live li.task").filter(has=page.get_by_text("sleep", exact=True))
    await expect(sleep).to_contain_text("WAITING")
    dashboard.accept = False  # first say no: nothing happens
    await page.get_by_role("button", name="Cancel run").click()
    await expect(page.locator("#run-live [data-status]")).to_have_attribute("data-status", "WAITING_TO_CONTINUE")
    assert dashboard.dialogs == ["Cancel this run? Its open tasks are canceled too."]
    dashboard.accept = True
    await page.get_by_role("button", name="Cancel run").click()
    await settled(page, "CANCELED")
    await expect(sleep).to_contain_text("CANCELED")
    await expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert len(dashboard.dialogs) == 2
    await dashboard.screenshot("run-canceled")


async def test_a_rerun(dashboard: Dashboard, environment: EnvironmentInfo) -> None:
    page = dashboard.page
    await dashboard.sign_in(environment.api_key)
    first = await run_test(dashboard, "hello-world", '{"name": "Rerun"}')
    await settled(page, "SUCCESS")
    await page.get_by_role("button", name="Rerun").click()
    await expect(page).not_to_have_url(first)
    await expect(page).to_have_url(RUN_URL)
    await settled(page, "SUCCESS")
    await expect(page.locator("pre.payload")).to_contain_text('"name": "Rerun"')
    await expect(page.locator("#run-live pre.output")).to_contain_text("Hello, Rerun!")
    assert dashboard.dialogs == ["Run this job again with the same event, as a new run?"]


MARKUP = {
    "taskName": "<script>window.__xss = 6</script>",
    "html": "<img src=x onerror=window.__xss=5>",
    "note": "<script>window.__xss = 7</script>",
}


async def test_markup_renders_as_text_and_runs_nothing(dashboard: Dashboard, environment: EnvironmentInfo) -> None:
    page = dashboard.page
    await dashboard.sign_in(environment.api_key)
    await run_test(dashboard, "dash-markup", json.dumps(MARKUP))
    await settled(page, "SUCCESS")
    live = page.locator("#run-live")
    await expect(live.locator("li.task .task-name").first).to_have_text(MARKUP["taskName"])
    await expect(live.locator("pre.output")).to_contain_text("<img src=x onerror=window.__xss=4>")
    await expect(live.get_by_role("cell", name="<img src=x onerror=window.__xss=3>")).to_be_visible()
    await expect(page.locator("pre.payload")).to_contain_text(MARKUP["note"])
    await live.locator("li.task details summary").first.click()
    await expect(live.locator("pre.task-output").first).to_contain_text(MARKUP["html"])
    assert await page.evaluate("typeof window.__xss") == "undefined"
    assert await page.locator("img").count() == 0
    scripts = await page.locator("script").evaluate_all("nodes => nodes.map(n => n.getAttribute('src'))")
    assert scripts == ["/static/dashboard.js", "/static/live.js"]
    assert dashboard.dialogs == []
    await dashboard.screenshot("run-markup")
    # The jobs page and the job's runs tab show the same run's markup inertly too.
    await page.goto(dashboard.url("/jobs/dash-markup"))
    assert await page.evaluate("typeof window.__xss") == "undefined"


async def test_another_environments_run_is_a_404_page(
    dashboard: Dashboard, api: httpx.AsyncClient, container: Container
) -> None:
    page = dashboard.page
    run_id = (await api.post("/api/v1/jobs/hello-world/test", json={"payload": {}})).json()["runId"]
    _, other_key = await container.service.environments.create("elsewhere", EnvironmentType.PRODUCTION)
    await dashboard.sign_in(other_key)
    response = await page.goto(dashboard.url(f"/runs/{run_id}"))
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    await dashboard.screenshot("run-404")
    response = await page.goto(dashboard.url("/runs/not-a-run"))
    assert response is not None and response.status == 404


async def test_invalid_json_is_shown_and_not_sent(
    dashboard: Dashboard, environment: EnvironmentInfo, api: httpx.AsyncClient
) -> None:
    page = dashboard.page
    await dashboard.sign_in(environment.api_key)
    await page.goto(dashboard.url("/jobs/hello-world/test"))
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    await page.get_by_label("Payload").fill('{"name": "unclosed"')
    await page.get_by_role("button", name="Run test").click()
    await expect(page.get_by_role("alert")).to_contain_text("Payload is not valid JSON")
    await expect(page.get_by_label("Payload")).to_have_attribute("aria-invalid", "true")
    await expect(page).to_have_url(dashboard.url("/jobs/hello-world/test"))
    await dashboard.screenshot("test-tab-invalid")
    assert posts == []
    runs = (await api.get("/api/v1/jobs/hello-world/runs")).json()["runs"]
    assert runs == []
    # Fixed, it goes.
    await page.get_by_label("Payload").fill('{"name": "closed"}')
    await page.get_by_role("button", name="Run test").click()
    await expect(page).to_have_url(RUN_URL)


async def test_a_post_without_the_csrf_token_is_refused(dashboard: Dashboard, environment: EnvironmentInfo) -> None:
    page = dashboard.page
    await dashboard.sign_in(environment.api_key)
    answer = await page.request.post(dashboard.url("/jobs/hello-world/test"), form={"payload": "{}"}, max_redirects=0)
    assert answer.status == 403
    assert "CSRF" in await answer.text()
    assert "content-security-policy" in answer.headers
