"""The benchmark's dashboard phase: end-to-end runs/s with `pages` run pages open on their live streams, beside
the same measurement without them (each twice: without, with, with, without; the means), and the dashboard's
page times under that load.

The open pages watch runs of the no-op endpoint's `parked` job, which stay live (each execution asks to run
again in an hour), as a user watches a run that has not ended: the streams stay open, and the API process's
one live feed reads every change the measured runs make."""

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import aiohttp
from sqlalchemy import text

from app.container import Container
from app.tools.bench.figures import Report, percentile
from app.tools.bench.load import ApiConnections, LoadError
from app.tools.bench.measure import SERVICE_KINDS, settle, submit, wait_succeeded
from app.tools.bench.stack import BenchStack

_PARKED = text("SELECT count(*) FROM run_status WHERE id = ANY(:ids) AND status = 'WAITING_TO_EXECUTE'")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGES = ("jobs", "runs", "run")
ORDER = (False, True, True, False)  # whether the pages are open, pass by pass


async def dashboard_phase(
    stack: BenchStack,
    container: Container,
    api: ApiConnections,
    report: Report,
    runs: int,
    concurrency: int,
    pages: int,
) -> None:
    connector = aiohttp.TCPConnector(limit=pages + 8)
    jar = aiohttp.CookieJar(unsafe=True)  # the API is at an IP address, whose cookies aiohttp drops by default
    async with aiohttp.ClientSession(stack.api_url, connector=connector, cookie_jar=jar) as web:
        await _sign_in(web, stack.api_key)
        parked = await _park(api, container, pages)
        rates: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        some_run = ""
        # Without, with, with, without: on a shared machine one pair is mostly noise, and a drift over the
        # passes (tables growing) weighs on both sides alike.
        for number, open_pages in enumerate(ORDER, 1):
            label = f"with {pages} run pages open on their live streams" if open_pages else "no page open"
            print(f"# dashboard, pass {number}: {runs} TestJobs to SUCCESS, {label}")
            async with contextlib.AsyncExitStack() as streams:
                if open_pages:
                    alive = await streams.enter_async_context(_open_streams(web, parked))
                before = cpu_seconds(stack)
                rate, some_run = await _end_to_end(container, api, runs, concurrency)
                cpu[open_pages].append((cpu_seconds(stack) - before) / runs * 1000)
                rates[open_pages].append(rate)
                print(f"#   {rate:.0f} runs/s, {cpu[open_pages][-1]:.2f} ms of CPU a run")
                if open_pages:
                    streams_alive = sum(1 for still in alive.values() if still)
            await settle(container)
        print(
            f"# dashboard: {runs} TestJobs again, {pages} pages open, asking for the jobs, runs and a run page in turn"
        )
        async with _open_streams(web, parked):
            stop = asyncio.Event()
            sampler = asyncio.create_task(_page_times(web, some_run, stop))
            await _end_to_end(container, api, runs, concurrency)
            stop.set()
            times = await sampler
    baseline, loaded = (sum(rates[side]) / len(rates[side]) for side in (False, True))
    cpu_without, cpu_with = (sum(cpu[side]) / len(cpu[side]) for side in (False, True))
    report.add("dashboard_baseline_end_to_end_runs_per_s", baseline, "runs/s")
    report.add("dashboard_run_pages_open", streams_alive, "pages")
    report.add("end_to_end_runs_per_s_with_dashboard_pages", loaded, "runs/s")
    report.add("dashboard_pages_throughput_change_pct", (loaded / baseline - 1) * 100, "%", "within 10")
    # What the stack spends (every role, PostgreSQL, the broker): on a shared machine, steadier than runs/s.
    report.add("dashboard_baseline_stack_cpu_ms_per_run", cpu_without, "ms")
    report.add("stack_cpu_ms_per_run_with_dashboard_pages", cpu_with, "ms")
    for page in PAGES:
        for p in (50, 99):
            report.add(f"dashboard_page_{page}_p{p}", percentile(times[page], p), "ms")


def cpu_seconds(stack: BenchStack) -> float:
    """CPU time (user and system) the service's processes have used so far."""
    spent = stack.cpu_seconds()
    return sum(spent.get(kind, 0.0) for kind in SERVICE_KINDS)


async def _sign_in(web: aiohttp.ClientSession, api_key: str) -> None:
    async with web.get("/") as page:
        found = _CSRF.search(await page.text())
    if found is None:
        raise LoadError("the sign-in page has no CSRF token")
    form = {"api_key": api_key, "csrf_token": found.group(1)}
    async with web.post("/sign-in", data=form, allow_redirects=False) as answer:
        if answer.status != 303:
            raise LoadError(f"signing in to the dashboard answered {answer.status}")


async def _park(api: ApiConnections, container: Container, count: int) -> list[str]:
    """`count` runs that stay live, once each has executed once (and asked to run again in an hour)."""
    run_ids = []
    for _ in range(count):
        status, answer = await api.post("/api/v1/jobs/parked/test", {"payload": {}})
        if status != 202 or not isinstance(answer, dict):
            raise LoadError(f"TestJob of `parked` answered {status}: {answer}")
        run_ids.append(str(answer["runId"]))
    async with asyncio.timeout(120):
        while True:
            async with container.engine.connect() as conn:
                waiting = (await conn.execute(_PARKED, {"ids": [UUID(r) for r in run_ids]})).scalar_one()
            if waiting == count:
                return run_ids
            await asyncio.sleep(0.1)


async def _end_to_end(container: Container, api: ApiConnections, runs: int, concurrency: int) -> tuple[float, str]:
    """Runs/s from the first submission to the last run seen SUCCESS; and one of the runs."""
    submitted: list[str] = []
    watcher = asyncio.create_task(wait_succeeded(container, submitted, expected=runs))
    first = time.time()
    await submit(api, runs, concurrency, submitted)
    seen = await watcher
    return runs / (max(seen.values()) - first), submitted[0]


@contextlib.asynccontextmanager
async def _open_streams(web: aiohttp.ClientSession, run_ids: list[str]) -> AsyncIterator[dict[str, bool]]:
    """A run page's stream per run, each open (its first region received) before this yields; whether each is
    still open, kept up to date."""
    alive: dict[str, bool] = {}
    opened: dict[str, asyncio.Event] = {run_id: asyncio.Event() for run_id in run_ids}

    async def follow(run_id: str) -> None:
        async with web.get(f"/runs/{run_id}/events", timeout=aiohttp.ClientTimeout(total=None)) as stream:
            if stream.status != 200:
                raise LoadError(f"the stream of run {run_id} answered {stream.status}")
            alive[run_id] = True
            async for line in stream.content:
                if line.startswith(b"event: run"):
                    opened[run_id].set()
        alive[run_id] = False

    tasks: list[asyncio.Future[Any]] = [asyncio.create_task(follow(run_id)) for run_id in run_ids]
    try:
        all_open = asyncio.ensure_future(asyncio.gather(*(event.wait() for event in opened.values())))
        tasks.append(all_open)
        async with asyncio.timeout(120):
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if all_open not in done:
            for task in done:
                task.result()  # the stream's error
            raise LoadError("a run page's stream ended before it sent its run")
        yield alive
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _page_times(web: aiohttp.ClientSession, run_id: str, stop: asyncio.Event) -> dict[str, list[float]]:
    """Each page in turn, as one user clicking through, until `stop`: the time to its whole answer (ms)."""
    paths = {"jobs": "/jobs", "runs": "/runs", "run": f"/runs/{run_id}"}
    times: dict[str, list[float]] = {page: [] for page in PAGES}
    while not stop.is_set():
        for page, path in paths.items():
            began = time.perf_counter()
            async with web.get(path, allow_redirects=False) as answer:
                await answer.read()
                if answer.status != 200:
                    raise LoadError(f"{path} answered {answer.status}")
            times[page].append((time.perf_counter() - began) * 1000)
    return times
