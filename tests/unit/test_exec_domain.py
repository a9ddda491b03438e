"""Auto-yields, cheap replays (cached tasks, the noop-task bloom filter) and server-performed tasks, in the
domain (no I/O)."""

from datetime import timedelta
from typing import Any

import pytest

from domain import fetch_operation as ops
from domain import policies, task_cache
from domain.bloom import BloomFilter, hash53
from domain.execution import from_body
from domain.runs import NextExecution, UnknownTask
from domain.status import RunStatus
from domain.tasks import Task, TaskSpec, TaskStatus
from tests.unit.runs_builder import LEASE, NOW, PROD, started_run

# -- auto-yield ---------------------------------------------------------------------------------------------


def auto_yield_with(task: Task, output: str = '{"v":1}') -> dict[str, Any]:
    return {
        "status": "AUTO_YIELD_EXECUTION_WITH_COMPLETED_TASK",
        "id": task.id,
        "output": output,
        "properties": [{"label": "rows", "text": "3"}],
        "data": {"location": "before_complete_task", "timeRemaining": 200, "timeElapsed": 2500, "limit": 2650},
    }


def test_an_auto_yield_with_a_completed_task_completes_it_and_continues_at_once() -> None:
    run = started_run()
    task = run.create_task(TaskSpec("long", name="long"), NOW)
    assert run.finish(from_body(auto_yield_with(task)), NOW, 2500, PROD) == NextExecution(2, NOW)
    assert run.status is RunStatus.WAITING_TO_EXECUTE
    done = run.tasks[task.id]
    assert (done.status, done.output, done.output_properties) == (
        TaskStatus.COMPLETED,
        {"v": 1},
        [{"label": "rows", "text": "3"}],
    )
    assert [t.id for t in run.completed_tasks()] == [task.id]  # the next execution replays past it


def test_auto_yields_are_not_io_yields() -> None:
    """Neither counted against the 100 yields nor sent back as `yieldedExecutions`: only the execution limits
    bound them."""
    run = started_run()
    for attempt in range(2, 150):
        body = {"status": "AUTO_YIELD_EXECUTION", "location": "start_task", "timeRemaining": 1, "timeElapsed": 1}
        assert run.finish(from_body(body), NOW, 1, PROD) == NextExecution(attempt, NOW)
        run.start(attempt, NOW, LEASE)
    assert (run.yields, run.yielded_keys) == (0, [])
    assert run.limit_reached() is None
    assert policies.over_limits(policies.MAX_EXECUTIONS, timedelta()) is not None


def test_a_rate_limited_run_waits_for_the_reset() -> None:
    run = started_run()
    reset = NOW + timedelta(seconds=30)
    body = {"status": "AUTO_YIELD_RATE_LIMIT", "reset": int(reset.timestamp() * 1000)}
    assert run.finish(from_body(body), NOW, 1, PROD) == NextExecution(2, reset)


def test_an_auto_yield_naming_a_task_the_run_lacks_raises_unknown_task() -> None:
    """The run as loaded before the call lacks a task created during it: the service reads it again."""
    run = started_run()
    stranger = Task("nope", "k", "x", False, TaskStatus.RUNNING, NOW)
    with pytest.raises(UnknownTask):
        run.finish(from_body(auto_yield_with(stranger)), NOW, 1, PROD)
    assert run.status is RunStatus.EXECUTING and not [e for e in run.pending_events if "Task" in type(e).__name__]


def test_a_parallel_child_that_auto_yielded_with_its_task_completes_it() -> None:
    run = started_run()
    parent = run.create_task(TaskSpec("p", name="parallel"), NOW)
    child = run.create_task(TaskSpec("c", name="child"), NOW)
    body = {
        "status": "RESUME_WITH_PARALLEL_TASK",
        "task": {"id": parent.id},
        "childErrors": [auto_yield_with(child, '"done"')],
    }
    assert run.finish(from_body(body), NOW, 1, PROD) == NextExecution(2, NOW)
    assert (run.tasks[child.id].status, run.tasks[child.id].output) == (TaskStatus.COMPLETED, "done")


# -- cached tasks and the noop set -----------------------------------------------------------------------------


def completed_tasks(count: int, pad: int = 100) -> list[Task]:
    run = started_run()
    tasks = []
    for i in range(count):
        task = run.create_task(TaskSpec(f"k{i}", name="t"), NOW)
        tasks.append(run.complete_task(task.id, {"i": i, "pad": "x" * pad}, None, NOW))
    return tasks


def test_cached_tasks_fill_the_budget_in_order_and_name_the_first_left_out() -> None:
    tasks = completed_tasks(10)
    size = len(task_cache._encoder.encode(task_cache.cached(tasks[0])))
    chosen, cursor = task_cache.page(tasks, budget=size * 4 + 5)
    assert [t["idempotencyKey"] for t in chosen] == ["k0", "k1", "k2", "k3"]
    assert cursor == tasks[4].id
    assert set(chosen[0]) == {"id", "idempotencyKey", "status", "noop", "output", "parentId"}
    everything, none = task_cache.page(tasks, budget=10**6)
    assert len(everything) == 10 and none is None


def test_a_page_starts_at_its_cursor_and_a_task_too_big_for_any_page_is_skipped() -> None:
    tasks = completed_tasks(6)
    chosen, cursor = task_cache.page_from(tasks, tasks[2].id)
    assert [t["idempotencyKey"] for t in chosen] == ["k2", "k3", "k4", "k5"] and cursor is None
    assert task_cache.page_from(tasks, "unknown") == ([], None)
    big = completed_tasks(1, pad=5000) + completed_tasks(2)
    chosen, cursor = task_cache.page(big, budget=1000)
    assert [t["output"]["i"] for t in chosen] == [0, 1] and cursor is None
    limited, cursor = task_cache.page(tasks, budget=10**6, limit=2)
    assert len(limited) == 2 and cursor == tasks[2].id


def test_noop_tasks_go_in_the_bloom_filter_not_the_cache() -> None:
    run = started_run()
    log = run.create_task(TaskSpec("log-1", name="log", noop=True), NOW)
    work = run.create_task(TaskSpec("work"), NOW)
    run.complete_task(work.id, 1, None, NOW)
    tasks = list(run.tasks.values())
    assert [t.id for t in task_cache.replayable(tasks)] == [work.id]
    serialized = task_cache.noop_set(tasks)
    assert serialized is not None and len(serialized) == 5464
    bloom = BloomFilter.deserialize(serialized)
    assert bloom.test(log.idempotency_key) and not bloom.test("work")
    assert task_cache.noop_set([run.tasks[work.id]]) is None


def test_the_hash_reads_utf16_code_units_as_javascript_does() -> None:
    # The bits @trigger.dev/core-backend's BloomFilter(1009) sets under Node (tests/compat checks many more keys).
    assert [hash53(key) % 1009 for key in ("", "a", "🙂")] == [822, 432, 73]
    bloom = BloomFilter(1009)
    bloom.add("🙂")
    assert bloom.bits[73 // 8] == 1 << (73 % 8) and sum(bloom.bits) == bloom.bits[73 // 8]
    assert BloomFilter.deserialize(bloom.serialize(), 1009).test("🙂")


# -- server-performed tasks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "pattern", "expected"),
    [
        (429, "429", True),
        (430, "429", False),
        (503, "500-599", True),
        (499, "500-599", False),
        (404, "4xx", True),
        (504, "4xx", False),
        (421, "42x", True),
        (431, "42x", False),
        (403, "401, 403", True),
        (404, "401,403", False),
        (200, "all", True),
        (500, "abc-", False),
    ],
)
def test_status_ranges(status: int, pattern: str, expected: bool) -> None:
    assert ops.status_in_range(status, pattern) is expected


def test_retry_times_follow_the_cores_calculate_retry_at() -> None:
    options = {"limit": 5, "factor": 1.8, "minTimeoutInMs": 1000, "maxTimeoutInMs": 60000, "randomize": False}
    delays = [ops.calculate_retry_at(options, attempts, NOW, 0) for attempts in range(5)]
    assert [(d - NOW).total_seconds() if d else None for d in delays] == [1.0, 1.0, 1.8, 3.24, None]
    randomized = ops.calculate_retry_at({**options, "randomize": True}, 2, NOW, 0.5)
    assert randomized == NOW + timedelta(milliseconds=2700)
    capped = ops.calculate_retry_at({**options, "limit": 100, "maxTimeoutInMs": 5000}, 50, NOW, 0)
    assert capped == NOW + timedelta(seconds=5)


def test_reset_headers_in_each_format() -> None:
    assert ops.reset_at("1767225660", "unix_timestamp", NOW) == NOW + timedelta(minutes=1)
    assert ops.reset_at("1767225660000", "unix_timestamp_in_ms", NOW) == NOW + timedelta(minutes=1)
    assert ops.reset_at("2026-01-01T00:01:00Z", "iso_8601", NOW) == NOW + timedelta(minutes=1)
    assert ops.reset_at("1m30.5s", "iso_8601_duration_openai_variant", NOW) == NOW + timedelta(seconds=90.5)
    assert ops.reset_at("6ms", "iso_8601_duration_openai_variant", NOW) == NOW + timedelta(milliseconds=6)
    assert ops.reset_at("soon", "unix_timestamp", NOW) is None
    assert ops.reset_at("1", "unknown", NOW) is None


def fetch(retry: dict[str, Any] | None = None, **params: Any) -> ops.Operation:
    return ops.parse("fetch", {"url": "https://api.example.com/x", "retry": retry, **params})


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> ops.Response:
    return ops.Response(status, headers or {}, body, body is not None)


def test_a_fetch_completes_with_the_json_body_or_fails_with_it() -> None:
    assert ops.after_response(fetch(), answer(200, {"a": 1}), 1, NOW, 0) == ops.complete({"a": 1})
    assert ops.after_response(fetch(), answer(200), 1, NOW, 0) == ops.complete(None)
    assert ops.after_response(fetch(), answer(404, {"message": "gone"}), 1, NOW, 0) == ops.fail({"message": "gone"})
    assert ops.after_response(fetch(), answer(500), 1, NOW, 0) == ops.fail({"message": "Fetch failed with status 500"})
    response = ops.parse("fetch-response", {"url": "https://x.test/"})
    assert ops.after_response(response, answer(201, [1], {"etag": "e"}), 1, NOW, 0) == ops.complete(
        {"data": [1], "headers": {"etag": "e"}, "status": 201}
    )


def test_a_failed_fetch_is_retried_per_its_strategies() -> None:
    backoff = {"strategy": "backoff", "limit": 3, "minTimeoutInMs": 100, "factor": 2, "randomize": False}
    op = fetch({"5xx": backoff})
    first = ops.after_response(op, answer(502), 1, NOW, 0)
    assert (first.decision, first.retry_at) == (ops.Decision.RETRY, NOW + timedelta(milliseconds=100))
    second = ops.after_response(op, answer(502), 2, NOW, 0)
    assert second.retry_at == NOW + timedelta(milliseconds=100)  # factor^max(attempts - 1, 0): still 1
    assert ops.after_response(op, answer(502), 3, NOW, 0).decision is ops.Decision.FAIL  # the limit: 3 attempts
    assert ops.after_response(op, answer(404), 1, NOW, 0).decision is ops.Decision.FAIL
    filtered = fetch({"4xx": {**backoff, "bodyFilter": {"code": ["busy"]}}})
    assert ops.after_response(filtered, answer(409, {"code": "busy"}), 1, NOW, 0).decision is ops.Decision.RETRY
    assert ops.after_response(filtered, answer(409, {"code": "other"}), 1, NOW, 0).decision is ops.Decision.FAIL
    headers = fetch({"429": {"strategy": "headers", "resetHeader": "X-Reset", "resetFormat": "unix_timestamp"}})
    limited = ops.after_response(headers, answer(429, None, {"x-reset": "1767225630"}), 1, NOW, 0)
    assert limited.retry_at == NOW + timedelta(seconds=30)
    assert ops.after_response(headers, answer(429), 1, NOW, 0).decision is ops.Decision.FAIL


def test_time_outs_and_unreachable_targets() -> None:
    op = fetch(timeout={"durationInMs": 50, "retry": {"limit": 2, "minTimeoutInMs": 10, "randomize": False}})
    assert op.request.timeout_ms == 1000  # at least a second, as trigger.dev
    assert ops.after_timeout(op, 1, NOW, 0).retry_at == NOW + timedelta(milliseconds=10)
    assert ops.after_timeout(op, 2, NOW, 0) == ops.fail({"message": "Fetch timed out after 1000ms"})
    for attempts in range(1, ops.UNREACHABLE_ATTEMPTS):
        assert ops.after_unreachable(fetch(), "refused", attempts, NOW).decision is ops.Decision.RETRY
    last = ops.after_unreachable(fetch(), "refused", ops.UNREACHABLE_ATTEMPTS, NOW)
    assert last == ops.fail({"message": "Fetch failed: refused"})


def test_a_poll_matches_its_filter_or_asks_again_after_its_interval() -> None:
    params = {"url": "https://x.test/s", "interval": 20, "timeout": 60, "responseFilter": {"status": [200]}}
    poll = ops.parse("fetch-poll", {**params, "responseFilter": {"status": [200], "body": {"state": ["done"]}}})
    assert poll.request.timeout_ms == 5000
    assert ops.after_response(poll, answer(200, {"state": "done"}), 1, NOW, 0) == ops.complete({"state": "done"})
    again = ops.after_response(poll, answer(200, {"state": "busy"}), 1, NOW, 0)
    assert (again.decision, again.retry_at) == (ops.Decision.RETRY, NOW + timedelta(seconds=20))
    assert ops.after_response(poll, answer(500, {"state": "done"}), 1, NOW, 0).decision is ops.Decision.RETRY
    assert ops.poll_expired(poll, NOW, NOW + timedelta(seconds=59)) is None
    assert ops.poll_expired(poll, NOW, NOW + timedelta(seconds=61)) == ops.fail(
        {"message": "Task timed out after 60 seconds"}
    )
    with pytest.raises(ops.InvalidOperation, match="interval"):
        ops.parse("fetch-poll", {**params, "interval": 2})
    assert ops.parse("fetch-poll", {**params, "interval": 2}, min_poll_interval=1).interval_seconds == 2


@pytest.mark.parametrize(
    "params",
    [
        None,
        {"url": 3},
        {"url": "https://x.test", "requestInit": {"method": "GE T"}},
        {"url": "https://x.test", "requestInit": {"headers": {"a\nb": "v"}}},
        {"url": "https://x.test", "requestInit": {"headers": {"a": "v\r\nInjected: 1"}}},
        {"url": "https://x.test", "requestInit": {"body": {"not": "a string"}}},
        {"url": "https://x.test", "retry": {"500": {"strategy": "guess"}}},
    ],
)
def test_params_an_operation_cannot_take(params: Any) -> None:
    with pytest.raises(ops.InvalidOperation):
        ops.parse("fetch", params)


def test_redacted_header_values_are_put_back_together() -> None:
    token = {"__redactedString": True, "strings": ["Bearer ", ""], "interpolations": ["s3cret"]}
    op = ops.parse("fetch", {"url": "https://x.test", "requestInit": {"method": "post", "headers": {"a": token}}})
    assert (op.request.method, op.request.headers) == ("POST", {"a": "Bearer s3cret"})


def test_an_operation_attempt_is_recorded_once_and_ends_the_wait() -> None:
    run = started_run()
    task = run.create_task(TaskSpec("f", name="fetch", operation="fetch", params={"url": "https://x.test"}), NOW)
    assert task.status is TaskStatus.RUNNING and run.operation_due(task.id, 1) is not None
    assert run.finish(from_body({"status": "RESUME_WITH_TASK", "task": {"id": task.id}}), NOW, 1, PROD) is None
    assert run.waiting_task == task.id  # no execution until the operation is done
    retry_at = NOW + timedelta(seconds=1)
    assert run.record_operation(task.id, 1, ops.retry(retry_at, "HTTP 503"), NOW)
    assert run.tasks[task.id].attempts == 2 and run.status is RunStatus.WAITING_TO_CONTINUE
    assert not run.record_operation(task.id, 1, ops.complete({"late": True}), NOW)  # a stale attempt
    assert run.record_operation(task.id, 2, ops.complete({"ok": True}), NOW)
    assert run.tasks[task.id].output == {"ok": True}
    assert run.due_execution() == NextExecution(2, run.pending_events[-1].timestamp)
    assert not run.record_operation(task.id, 2, ops.complete({"twice": True}), NOW)  # ended: not again


def test_a_failed_operation_resumes_the_run_so_the_job_sees_the_error() -> None:
    run = started_run()
    task = run.create_task(TaskSpec("f", operation="fetch", params={"url": "https://x.test"}), NOW)
    run.finish(from_body({"status": "RESUME_WITH_TASK", "task": {"id": task.id}}), NOW, 1, PROD)
    assert run.record_operation(task.id, 1, ops.fail({"message": "Fetch failed with status 404"}), NOW)
    assert run.tasks[task.id].status is TaskStatus.ERRORED and run.due_execution() is not None


def test_an_operation_that_ended_during_the_execution_continues_the_run_at_once() -> None:
    run = started_run()
    task = run.create_task(TaskSpec("f", operation="fetch", params={"url": "https://x.test"}), NOW)
    assert run.record_operation(task.id, 1, ops.fail({"message": "x"}), NOW)
    assert run.finish(from_body({"status": "RESUME_WITH_TASK", "task": {"id": task.id}}), NOW, 1, PROD) == (
        NextExecution(2, NOW)
    )


def test_the_chunk_limit_the_sdk_is_told() -> None:
    from app.worker.executor import Chunking

    assert Chunking().sdk_limit_ms == 59_650  # trigger.dev's 60 s less its 350 ms margin
    assert Chunking(60_000, endpoint_timeout_seconds=30).sdk_limit_ms == 29_650  # never past the call's time-out
    assert Chunking(3_000).sdk_limit_ms == 2_650


def test_each_poll_request_is_kept_as_a_noop_sub_task_once() -> None:
    run = started_run()
    poll = run.create_task(TaskSpec("p", name="poll", operation="fetch-poll", params={"url": "https://x.test"}), NOW)
    request = ops.PollAttempt("GET", "https://x.test", 200, {"etag": "1"}, {"state": "busy"})
    assert run.record_operation(poll.id, 1, ops.retry(NOW, "no match"), NOW, request)
    assert not run.record_operation(poll.id, 1, ops.retry(NOW, "no match"), NOW, request)  # stale: not again
    (attempt,) = [t for t in run.tasks.values() if t.name == "poll attempt"]
    assert (attempt.parent_id, attempt.noop, attempt.status) == (poll.id, True, TaskStatus.COMPLETED)
    assert attempt.params == {"status": 200, "headers": {"etag": "1"}, "body": {"state": "busy"}}
    assert attempt.description == "GET https://x.test 200"
