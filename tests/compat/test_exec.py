"""trigger.dev v2 jobs of the real SDK that need the server to do more than record: server-performed tasks
(io.backgroundFetch, backgroundFetchResponse, backgroundPoll), auto-yield with a completed task, and cheap
replays of runs with many tasks (the noop-task bloom filter, lazily loaded cached tasks)."""

import asyncio
import contextlib
import hashlib
import json
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
import pytest

from app.container import Container
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from domain.bloom import NOOP_TASK_SET_SIZE, BloomFilter
from tests.helpers import finished, start_test_run
from tests.http_peer import HttpPeer
from tests.node_endpoint import COMPAT_DIR, node_endpoint
from tests.recording_proxy import GatedPeer, RecordingProxy


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings, with io.backgroundPoll allowed a 1 s interval, and what a test asks for."""
    return replace(settings, fetch_poll_min_interval_seconds=1.0, **getattr(request, "param", {}))


class CountingPeer(HttpPeer):
    """A real HTTP target that answers from a script (the last answer repeats) and counts what it got."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        super().__init__(self._answer)
        self.answers = list(answers)
        self.times: list[float] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        self.times.append(time.monotonic())
        self.headers.append(headers)
        self.bodies.append(body)
        status, content = self.answers[min(len(self.times), len(self.answers)) - 1]
        return status, json.dumps(content)


async def history(container: Container, run_id: str) -> list[Any]:
    return list(await container.store.load_events(UUID(run_id)))


def names(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


# -- item 4: server-performed tasks ------------------------------------------------------------------------

BACKOFF_5XX = {"500-599": {"strategy": "backoff", "limit": 4, "minTimeoutInMs": 200, "factor": 1, "randomize": False}}


async def test_background_fetch_is_performed_by_the_server_and_a_5xx_retried(
    api: httpx.AsyncClient, container: Container
) -> None:
    async with CountingPeer((500, {"busy": 1}), (503, {"busy": 2}), (200, {"answer": 42})) as peer:
        payload = {
            "url": peer.url("/thing?x=1"),
            "requestInit": {"method": "POST", "headers": {"x-token": "t"}, "body": '{"q": 1}'},
            "options": {"retry": BACKOFF_5XX},
        }
        run = await finished(api, await start_test_run(api, "exec-fetch", payload), timeout=60)
    assert run["status"] == "SUCCESS", run
    assert run["output"]["body"] == {"answer": 42}
    assert len(peer.times) == 3  # two 5xx answers, retried per the task's retry options, then the 200
    assert peer.times[1] - peer.times[0] >= 0.2 and peer.times[2] - peer.times[1] >= 0.2  # minTimeoutInMs
    assert peer.bodies == [b'{"q": 1}'] * 3 and all(h["x-token"] == "t" for h in peer.headers)
    calls = run["output"]["calls"]
    assert calls["after"] == 1 and calls["executions"] == 2  # waited once for the fetch, then resumed
    fetch = next(t for t in run["tasks"] if t["name"].startswith("fetch "))
    assert (fetch["status"], fetch["attempts"], fetch["output"]) == ("COMPLETED", 3, {"answer": 42})
    events = names(await history(container, run["id"]))
    assert events.count("TaskOperationRetryScheduled") == 2 and events.count("TaskCompleted") == 2


async def test_a_4xx_is_retried_only_when_the_retry_options_name_it(api: httpx.AsyncClient) -> None:
    retry = {"429": {"strategy": "backoff", "limit": 3, "minTimeoutInMs": 100, "factor": 1, "randomize": False}}
    async with CountingPeer((429, {"slow": "down"}), (200, {"ok": True})) as peer:
        payload = {"url": peer.url("/limited"), "options": {"retry": retry}}
        run = await finished(api, await start_test_run(api, "exec-fetch", payload))
    assert run["status"] == "SUCCESS", run
    assert run["output"]["body"] == {"ok": True} and len(peer.times) == 2

    async with CountingPeer((404, {"message": "no such thing"})) as missing:
        payload = {"url": missing.url("/missing"), "options": {"retry": retry}}
        failed = await finished(api, await start_test_run(api, "exec-fetch", payload))
    assert failed["status"] == "FAILURE", failed
    assert failed["output"]["message"] == "no such thing"  # the answer's JSON body is the task's error
    assert len(missing.times) == 1  # a 404 is not in the retry options: no second request
    fetch = next(t for t in failed["tasks"] if t["name"].startswith("fetch "))
    assert fetch["status"] == "ERRORED"
    assert not any(t["name"] == "Task" for t in failed["tasks"])  # the job stopped at the failed fetch


async def test_background_fetch_response_gives_status_headers_and_body(api: httpx.AsyncClient) -> None:
    async with CountingPeer((201, {"id": "abc"})) as peer:
        payload = {"kind": "response", "url": peer.url("/created")}
        run = await finished(api, await start_test_run(api, "exec-fetch", payload))
    assert run["status"] == "SUCCESS", run
    response = run["output"]["response"]
    assert (response["status"], response["data"]) == (201, {"id": "abc"})
    assert response["headers"]["content-type"] == "application/json"


async def test_background_poll_requests_until_the_filter_matches(api: httpx.AsyncClient) -> None:
    pending, done = (200, {"state": "pending"}), (200, {"state": "done", "value": 7})
    async with CountingPeer(pending, pending, pending, done) as peer:
        poll = {
            "url": peer.url("/job/1"),
            "interval": 1,
            "timeout": 30,
            "responseFilter": {"status": [200], "body": {"state": ["done"]}},
        }
        run = await finished(api, await start_test_run(api, "exec-fetch", {"kind": "poll", "poll": poll}), 60)
    assert run["status"] == "SUCCESS", run
    assert run["output"]["body"] == {"state": "done", "value": 7}
    assert len(peer.times) == 4  # matched on the fourth request, and not asked again
    poll_task = next(t for t in run["tasks"] if t["name"].startswith("poll "))
    attempts = [t for t in run["tasks"] if t["name"] == "poll attempt"]
    assert [(t["parentId"], t["noop"], t["params"]["body"]["state"]) for t in attempts] == [
        (poll_task["id"], True, state) for state in ("pending", "pending", "pending", "done")
    ]
    assert attempts[0]["description"] == f"GET {poll['url']} 200"
    gaps = [later - earlier for earlier, later in zip(peer.times, peer.times[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # the poll's interval
    await asyncio.sleep(1.5)
    assert len(peer.times) == 4


async def test_a_fetch_that_times_out_is_retried_per_its_timeout_options(api: httpx.AsyncClient) -> None:
    timeout = {"durationInMs": 1000, "retry": {"limit": 2, "minTimeoutInMs": 100, "randomize": False}}
    async with GatedPeer() as peer:  # never answers while the run lasts
        payload = {"url": peer.url("/never"), "options": {"timeout": timeout}}
        run = await finished(api, await start_test_run(api, "exec-fetch", payload), timeout=60)
        peer.gate.set()
    assert run["status"] == "FAILURE", run
    assert run["output"]["message"] == "Fetch timed out after 1000ms"
    assert peer.requests == 2  # the first attempt and its one retry (limit 2)


async def test_a_fetch_to_a_private_address_is_refused_by_the_url_policy(api: httpx.AsyncClient) -> None:
    run = await finished(api, await start_test_run(api, "exec-fetch", {"url": "http://10.1.2.3:9/secret"}))
    assert run["status"] == "FAILURE", run
    assert "private address" in run["output"]["message"]
    assert "JOBS_ALLOWED_PRIVATE_NETWORKS" in run["output"]["message"]


# -- item 6: auto-yield -------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{"run_chunk_execution_limit_ms": 3000}], indirect=True)
async def test_tasks_longer_than_a_chunk_yield_and_each_body_runs_once(
    api: httpx.AsyncClient, container: Container
) -> None:
    run = await finished(api, await start_test_run(api, "exec-auto-yield", {"tasks": 3, "ms": 2300}), 90)
    assert run["status"] == "SUCCESS", run
    output = run["output"]
    assert output["results"] == [{"i": 1}, {"i": 2}, {"i": 3}]
    assert [output["calls"][f"long-{i}"] for i in (1, 2, 3)] == [1, 1, 1]  # each body ran exactly once
    events = await history(container, run["id"])
    yields = [e for e in events if type(e).__name__ == "RunAutoYielded"]
    # Each 2.3 s body ends with less than 500 ms of its 2.65 s chunk (3 s less the 350 ms margin) left: the SDK
    # yields with the task's output, and the service completes the task for it.
    assert len([e for e in yields if "with a completed task" in e.reason]) == 3
    assert output["calls"]["executions"] == names(events).count("RunStarted") == len(yields) + 1 >= 4
    assert {t["status"] for t in run["tasks"]} == {"COMPLETED"}
    assert "RunRescued" not in names(events)  # no attempt was left to its lease's expiry (the bug's symptom)


# -- item 7: cheap replays ----------------------------------------------------------------------------------


@dataclass
class Measured:
    run: dict[str, Any]
    execute_job_bytes: list[int]
    task_posts: int
    stats: list[dict[str, Any]]
    last_body: dict[str, Any]


@contextlib.asynccontextmanager
async def measured_endpoint(
    stack: httpx.AsyncClient, environment: EnvironmentInfo, settings: Settings
) -> AsyncIterator[tuple[RecordingProxy, RecordingProxy]]:
    """A Node SDK endpoint of its own, with a recording proxy on each side: the service's calls to it, and its
    calls to the service."""
    async with RecordingProxy(f"http://127.0.0.1:{settings.port}") as to_service:
        with contextlib.ExitStack() as processes:
            sdk = await asyncio.to_thread(processes.enter_context, node_endpoint(api_url=to_service.url()))
            base = sdk.url.removesuffix("/api/trigger")
            async with RecordingProxy(base) as to_endpoint:
                stack.headers["Authorization"] = f"Bearer {environment.api_key}"
                body = {"id": sdk.endpoint_id, "url": to_endpoint.url("/api/trigger")}
                registered = await stack.post("/api/v1/endpoints", json=body)
                assert registered.status_code == 200, registered.text
                yield to_endpoint, to_service
            await asyncio.to_thread(processes.close)


async def many_tasks(stack: httpx.AsyncClient, environment: EnvironmentInfo, settings: Settings) -> Measured:
    async with measured_endpoint(stack, environment, settings) as (to_endpoint, to_service):
        run_id = await start_test_run(stack, "exec-many-tasks", {"tasks": 500, "yieldEvery": 50, "pad": 100})
        run = await finished(stack, run_id, timeout=240)
    executions = [r for r in to_endpoint.requests if r.action == "EXECUTE_JOB"]
    return Measured(
        run,
        [r.request_bytes for r in executions],
        len([r for r in to_service.of("POST", f"/api/v1/runs/{run_id}/tasks") if r.path.endswith("/tasks")]),
        run["output"]["stats"] if run["status"] == "SUCCESS" else [],
        json.loads(executions[-1].body),
    )


def created(measured: Measured) -> int:
    """How many tasks the run created: every io.runTask, and each log the bloom filter did not skip."""
    return len(measured.run["tasks"]) if measured.run["status"] == "SUCCESS" else 500


def report(label: str, measured: Measured) -> None:
    sizes = measured.execute_job_bytes
    print(
        f"\n[{label}] 500-task run: {len(sizes)} EXECUTE_JOB calls, bytes mean {sum(sizes) // len(sizes)}, "
        f"max {max(sizes)}, total {sum(sizes)}; task POSTs {measured.task_posts} "
        f"({measured.task_posts - created(measured)} beyond the {created(measured)} tasks created); "
        f"run {seconds(measured.run):.1f} s"
    )


def seconds(run: dict[str, Any]) -> float:
    return (datetime.fromisoformat(run["completedAt"]) - datetime.fromisoformat(run["startedAt"])).total_seconds()


def assert_every_task_once(measured: Measured) -> None:
    run = measured.run
    assert run["status"] == "SUCCESS", run
    output, stats = run["output"], run["output"]["stats"]
    assert output["sum"] == sum(range(0, 500, 2))
    assert (output["bodies"], output["mostRuns"]) == (250, 1)  # every io.runTask body ran exactly once
    assert len(measured.execute_job_bytes) == len(stats) == 10  # 9 io.yield calls: 10 executions
    # Execution e replays 25 e io.runTask calls: from the cache, or asked for again (a miss).
    assert [s["cachedTaskHits"] + s["cachedTaskMisses"] for s in stats] == [25 * e for e in range(10)]
    # Execution e replays the 25 e logs of earlier ones from the filter. As in trigger.dev (one hash, 32,768
    # bits), a new log whose bit another key set is skipped too: each such hit is a log never created.
    false_hits = sum(s["noopCachedTaskHits"] - 25 * e for e, s in enumerate(stats))
    assert all(s["noopCachedTaskHits"] >= 25 * e for e, s in enumerate(stats))
    tasks = run["tasks"]
    assert {t["status"] for t in tasks} == {"COMPLETED"}
    assert len([t for t in tasks if not t["noop"]]) == 250
    assert len([t for t in tasks if t["noop"]]) == 250 - false_hits


async def test_a_run_of_500_tasks_replays_from_the_cache_without_asking_again(
    stack: httpx.AsyncClient, environment: EnvironmentInfo, settings: Settings
) -> None:
    measured = await many_tasks(stack, environment, settings)
    report("default budget", measured)
    assert_every_task_once(measured)
    # Each replay took every completed task from EXECUTE_JOB's `tasks` or, for logs, from the bloom filter:
    # the only task requests are those that created a task.
    assert measured.task_posts == created(measured)
    assert all(s["cachedTaskMisses"] == 0 and s["lazyLoadedCachedTasks"] == 0 for s in measured.run["output"]["stats"])
    body = measured.last_body
    assert len(body["tasks"]) == 225 and "cachedTaskCursor" not in body
    assert len(body["noopTasksSet"]) == 5464  # 32,768 bits in base64
    # The tests' endpoint time-out (30 s) is below the default chunk limit (60 s): the SDK is told 30 s - 350 ms.
    assert body["runChunkExecutionLimit"] == settings.endpoint_timeout_seconds * 1000 - 350
    assert body["autoYieldConfig"]["beforeExecuteTaskThreshold"] == 1500


@pytest.mark.parametrize("settings", [{"cached_tasks_bytes": 12_000}], indirect=True)
async def test_tasks_over_the_byte_budget_are_loaded_lazily_with_a_cursor(
    stack: httpx.AsyncClient, environment: EnvironmentInfo, settings: Settings
) -> None:
    measured = await many_tasks(stack, environment, settings)
    report("12,000-byte budget", measured)
    assert_every_task_once(measured)
    assert max(measured.execute_job_bytes) < 12_000 + 8_000  # the tasks' share stays within the budget
    body = measured.last_body
    assert "cachedTaskCursor" in body and 0 < len(body["tasks"]) < 225
    stats = measured.run["output"]["stats"]
    assert sum(s["lazyLoadedCachedTasks"] for s in stats) > 0
    # A page comes with the answer to a task request: the first task past the budget is asked for once per
    # page, and the page brings the next ones; a few requests beyond the tasks created, not one per replay.
    extra = measured.task_posts - created(measured)
    assert 0 < extra == sum(s["cachedTaskMisses"] for s in stats) <= 30


BLOOM_SCRIPT = """
const { BloomFilter } = require("@trigger.dev/core-backend");
const keys = JSON.parse(require("fs").readFileSync(0, "utf8"));
const all = new BloomFilter(BloomFilter.NOOP_TASK_SET_SIZE);
keys.forEach((key) => all.add(key));
const each = keys.map((key) => {
  const filter = new BloomFilter(1009);
  filter.add(key);
  return filter.serialize();
});
const fromPython = BloomFilter.deserialize(process.argv[1], BloomFilter.NOOP_TASK_SET_SIZE);
process.stdout.write(JSON.stringify({
  size: BloomFilter.NOOP_TASK_SET_SIZE,
  all: all.serialize(),
  each,
  seen: keys.map((key) => fromPython.test(key)),
}));
"""


def test_the_bloom_filter_is_byte_for_byte_the_sdks() -> None:
    """Python builds the filter, the real @trigger.dev/core-backend reads it (and builds its own to compare)."""
    keys = [hashlib.sha256(f"run:task {i}".encode()).hexdigest() for i in range(300)]
    keys += ["", "a", "ключ", "🙂 emoji (a surrogate pair)", "x" * 1000]
    ours = BloomFilter()
    for key in keys:
        ours.add(key)
    node = subprocess.run(
        ["node", "-e", BLOOM_SCRIPT, ours.serialize()],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        cwd=COMPAT_DIR,
        timeout=30,
        check=True,
    )
    theirs = json.loads(node.stdout)
    assert theirs["size"] == NOOP_TASK_SET_SIZE
    assert theirs["all"] == ours.serialize()
    singles = []
    for key in keys:
        single = BloomFilter(1009)  # a prime size: every bit of the 53-bit hash counts
        single.add(key)
        singles.append(single.serialize())
    assert theirs["each"] == singles
    assert all(theirs["seen"])
