"""The rules of io.waitForEvent (dispatchers, callback time-outs) and of the key-value store (no I/O)."""

from datetime import timedelta
from uuid import uuid4

import pytest

from domain.dispatchers import EventDispatcher, dispatcher_id
from domain.environments import EnvironmentType
from domain.event_filter import check_filter
from domain.execution import from_body
from domain.key_value import MAX_VALUE_BYTES, BadKey, BadValue, check_value, parse_key
from domain.runs import JobRun, NextExecution
from domain.status import RunStatus
from domain.tasks import CALLBACK_TIMEOUT_OUTPUT, TaskSpec, TaskStatus
from tests.unit.runs_builder import LEASE, NOW, started_run

PROD = EnvironmentType.PRODUCTION


def dispatcher(expires_in: float = 60, payload_filter: dict[str, object] | None = None) -> EventDispatcher:
    return EventDispatcher(
        id=dispatcher_id("env", "http://x/cb"),
        environment_id="env",
        url="http://x/cb",
        run_id=str(uuid4()),
        task_id="t",
        names=["order.paid", "order.settled"],
        source="trigger.dev",
        payload_filter=payload_filter,
        context_filter=None,
        expires_at=NOW + timedelta(seconds=expires_in),
    )


def test_a_dispatcher_matches_its_names_source_and_filter_until_it_expires_once() -> None:
    waiting = dispatcher(payload_filter={"orderId": ["o-1"], "total": [{"$gt": 10}]})
    assert waiting.matches("order.paid", "trigger.dev", {"orderId": "o-1", "total": 11}, None, NOW)
    assert waiting.matches("order.settled", "trigger.dev", {"orderId": "o-1", "total": 11}, None, NOW)
    assert not waiting.matches("order.paid", "trigger.dev", {"orderId": "o-2", "total": 11}, None, NOW)
    assert not waiting.matches("order.paid", "trigger.dev", {"orderId": "o-1", "total": 5}, None, NOW)
    assert not waiting.matches("order.refunded", "trigger.dev", {"orderId": "o-1", "total": 11}, None, NOW)
    assert not waiting.matches("order.paid", "stripe", {"orderId": "o-1", "total": 11}, None, NOW)
    assert not waiting.matches("order.paid", "trigger.dev", {"orderId": "o-1", "total": 11}, None, NOW + timedelta(60))
    record = uuid4()
    waiting.match(record, "ev-1")
    assert waiting.matched_event == str(record)
    assert not waiting.matches("order.paid", "trigger.dev", {"orderId": "o-1", "total": 11}, None, NOW)


def test_one_callback_url_names_one_dispatcher_per_environment() -> None:
    assert dispatcher_id("a", "http://x/cb") == dispatcher_id("a", "http://x/cb")
    assert dispatcher_id("a", "http://x/cb") != dispatcher_id("b", "http://x/cb")


@pytest.mark.parametrize(
    "bad",
    [
        {"a": "b"},
        {"a": [None]},
        {"a": [{"$between": 5}]},
        {"a": [{"$gt": "x"}]},
        {"a": [{"$startsWith": 1}]},
        {"a": [{"$nope": 1}]},
        {"a": [{"$gt": 1, "$lt": 2}]},
        {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": ["x"]}}}}}}}}},
    ],
)
def test_a_filter_matching_could_not_evaluate_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        check_filter(bad)


def test_filters_matching_can_evaluate_are_taken() -> None:
    check_filter({"a": ["x", "y"], "b": [1, 2], "c": [{"$between": [1, 2]}, {"$exists": True}], "d": {"e": [True]}})


def callback_run(timeout: float | None) -> tuple[JobRun, str]:
    run = started_run()
    spec = TaskSpec(idempotency_key="wait", name="Wait for Event", callback=True, callback_timeout_seconds=timeout)
    task = run.create_task(spec, NOW, lambda id: f"http://x/api/v1/runs/{run.id}/tasks/{id}/callback/s")
    return run, task.id


def test_a_callback_task_times_out_after_its_seconds_or_an_hour() -> None:
    run, task_id = callback_run(10)
    assert run.tasks[task_id].callback_timeout_at == NOW + timedelta(seconds=10)
    default, default_id = callback_run(None)
    assert default.tasks[default_id].callback_timeout_at == NOW + timedelta(hours=1)
    never, never_id = callback_run(0)
    assert never.tasks[never_id].callback_timeout_at is None
    plain = started_run().create_task(TaskSpec(idempotency_key="plain"), NOW)
    assert plain.callback_timeout_at is None


def test_a_timed_out_callback_fails_its_task_and_resumes_the_run_waiting_for_it() -> None:
    run, task_id = callback_run(10)
    answer = {"status": "RESUME_WITH_TASK", "task": {"id": task_id, "status": "WAITING"}}
    assert run.finish(from_body(answer), NOW, 5, PROD) is None  # waits for the callback, not a time
    assert (run.status, run.waiting_task) == (RunStatus.WAITING_TO_CONTINUE, task_id)
    later = NOW + timedelta(seconds=10)
    assert run.time_out_callback(task_id, later)
    task = run.tasks[task_id]
    assert (task.status, task.output, task.completed_at) == (TaskStatus.ERRORED, CALLBACK_TIMEOUT_OUTPUT, later)
    assert run.due_execution() == NextExecution(2, run.pending_events[-1].timestamp)
    assert not run.time_out_callback(task_id, later)  # once only
    run.start(2, later, LEASE)
    assert run.status is RunStatus.EXECUTING


def test_a_callback_that_came_first_makes_the_time_out_a_no_op() -> None:
    run, task_id = callback_run(10)
    run.complete_task(task_id, {"id": "ev"}, None, NOW)
    assert not run.time_out_callback(task_id, NOW + timedelta(seconds=10))
    assert run.tasks[task_id].status is TaskStatus.COMPLETED


def test_a_run_whose_callback_timed_out_before_it_answered_executes_again_at_once() -> None:
    run, task_id = callback_run(10)
    assert run.time_out_callback(task_id, NOW)
    answer = {"status": "RESUME_WITH_TASK", "task": {"id": task_id, "status": "WAITING"}}
    assert run.finish(from_body(answer), NOW, 5, PROD) == NextExecution(2, NOW)


def test_store_keys_are_percent_decoded_strictly_and_limited() -> None:
    assert parse_key(b"run%3Aabc%3Aa%2Fb%20%C3%BC") == "run:abc:a/b ü"
    for bad in (b"", b"%FF", b"a%00b", b"k" * 1025, "ü".encode() * 513):
        with pytest.raises(BadKey):
            parse_key(bad)
    assert parse_key(b"k" * 1024) == "k" * 1024


def test_store_values_are_utf8_text_of_at_most_256_kib() -> None:
    assert check_value(b'{"a": 1}') == '{"a": 1}'
    assert check_value(b"") == ""
    assert check_value(b"x" * MAX_VALUE_BYTES) == "x" * MAX_VALUE_BYTES
    with pytest.raises(BadValue) as too_large:
        check_value(b"x" * (MAX_VALUE_BYTES + 1))
    assert too_large.value.too_large
    for bad in (b"\xff", b"a\x00"):
        with pytest.raises(BadValue) as refused:
            check_value(bad)
        assert not refused.value.too_large
