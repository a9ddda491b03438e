"""The dashboard's live feed on the real stack: many listeners cost one query per look, every listener sees a
run's changes, a listener that does not read is dropped, and the feed stops with its last listener."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.db import create_engine
from app.dashboard import run_events
from app.dashboard.live import LiveFeed, Subscription
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from tests.browser.test_dashboard_http import signed_in
from tests.helpers import finished, start_test_run, wait_for


@pytest.fixture
async def feed_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The feed's own engine, so that every statement counted is the feed's."""
    engine = create_engine(settings.required_database_url, 2)
    yield engine
    await engine.dispose()


def count_statements(engine: AsyncEngine) -> list[str]:
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


async def statuses_seen(subscription: Subscription, run_id: uuid.UUID, seen: list[str]) -> None:
    async for batch in subscription.changes():
        seen.extend(row.status for row in batch if row.id == run_id)


async def test_many_listeners_one_query_per_look_and_every_one_sees_the_run(
    api: httpx.AsyncClient, environment: EnvironmentInfo, feed_engine: AsyncEngine
) -> None:
    statements = count_statements(feed_engine)
    feed = LiveFeed(feed_engine, interval=0.1)
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [await stack.enter_async_context(feed.subscribe(environment.id)) for _ in range(40)]
        other_env = await stack.enter_async_context(feed.subscribe(uuid.uuid4()))
        # Executing for 0.5 s, five looks: each listener sees it executing, whatever the machine's speed (a run
        # executing for less than a look, as two-steps' executions can on a fast machine, may go unseen).
        run_id = uuid.UUID(await start_test_run(api, "sleeps", {"ms": 500}))
        subscriptions.append(await stack.enter_async_context(feed.subscribe(environment.id, run_id)))
        seen: list[list[str]] = [[] for _ in subscriptions]
        readers = [
            asyncio.create_task(statuses_seen(s, run_id, into)) for s, into in zip(subscriptions, seen, strict=True)
        ]
        assert (await finished(api, str(run_id)))["status"] == "SUCCESS"
        await wait_for(_all_saw(seen, "SUCCESS"))
        assert feed.listeners == 42
        looks = feed.looks
        assert looks >= 2
        # One statement per look, however many listen (reading the runs per listener would be 40 a look).
        assert len(statements) == looks, statements[:5]
        assert all("EXECUTING" in statuses for statuses in seen), seen
        assert other_env.queue.empty()
        for reader in readers:
            reader.cancel()
    await wait_for(_stopped(feed))
    await feed.close()


async def test_a_listener_that_does_not_read_is_dropped_and_the_others_go_on(
    api: httpx.AsyncClient, environment: EnvironmentInfo, feed_engine: AsyncEngine
) -> None:
    feed = LiveFeed(feed_engine, interval=0.05, queue_size=2)
    async with feed.subscribe(environment.id) as idle, feed.subscribe(environment.id) as reading:
        seen: list[str] = []
        run_ids = [uuid.UUID(await start_test_run(api, "two-steps", {"n": i})) for i in range(3)]
        reader = asyncio.create_task(_read_all(reading, seen))
        for run_id in run_ids:
            assert (await finished(api, str(run_id)))["status"] == "SUCCESS"
        await wait_for(_truthy(lambda: idle.dropped))
        assert [batch async for batch in idle.changes()] == []  # its stream ends at once
        await wait_for(_truthy(lambda: seen.count("SUCCESS") == 3))
        assert not reading.dropped
        assert feed.listeners == 1
        reader.cancel()
    await wait_for(_stopped(feed))
    async with feed.subscribe(environment.id) as again:  # a new listener starts it again
        assert feed.running
        late = uuid.UUID(await start_test_run(api, "return-value", {}))
        async for batch in again.changes():
            if any(row.id == late and row.status == "SUCCESS" for row in batch):
                break
    await feed.close()
    assert not feed.running


async def _read_all(subscription: Subscription, seen: list[str]) -> None:
    async for batch in subscription.changes():
        seen.extend(row.status for row in batch)


def _all_saw(seen: list[list[str]], status: str) -> Any:
    async def check() -> bool:
        return all(status in statuses for statuses in seen)

    return check


def _stopped(feed: LiveFeed) -> Any:
    return _truthy(lambda: not feed.running)


def _truthy(condition: Any) -> Any:
    async def check() -> bool:
        return bool(condition())

    return check


async def test_the_pages_open_on_one_run_share_each_render(
    api: httpx.AsyncClient, environment: EnvironmentInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders: list[uuid.UUID] = []
    render = run_events.render_run_fragment

    async def counted(service: Any, env: Any, run_id: uuid.UUID, csrf_token: str = "") -> str:
        renders.append(run_id)
        return await render(service, env, run_id, csrf_token)

    monkeypatch.setattr(run_events, "render_run_fragment", counted)
    pages = 20
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=60) as browser:
        await signed_in(browser, environment.api_key)
        run_id = await start_test_run(api, "hello-world", {"waitSeconds": 1})

        async def watch() -> list[str]:
            events = []
            async with browser.stream("GET", f"/runs/{run_id}/events") as stream:
                assert stream.status_code == 200
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        events.append(line.removeprefix("event: "))
            return events

        seen = await asyncio.gather(*(watch() for _ in range(pages)))
    assert all(events[-1] == "end" and events.count("run") >= 2 for events in seen), seen
    updates = max(events.count("run") for events in seen) - 1  # after each page's first region
    assert updates >= 1
    # One render per page as it opens, then one per change of the run for all the pages together.
    assert len(renders) <= pages + updates, (len(renders), updates)


async def test_closing_the_feed_ends_every_stream(feed_engine: AsyncEngine, environment: EnvironmentInfo) -> None:
    feed = LiveFeed(feed_engine, interval=0.05)
    async with feed.subscribe(environment.id) as listing, feed.subscribe(environment.id, uuid.uuid4()) as one_run:
        await wait_for(_truthy(lambda: feed.looks >= 2))
        await feed.close()  # what the API's shutdown does, so that the server need not wait for open pages
        assert [batch async for batch in listing.changes()] == []
        assert [batch async for batch in one_run.changes()] == []
        assert not feed.running
    async with feed.subscribe(environment.id) as late:
        assert [batch async for batch in late.changes()] == []
        assert not feed.running
