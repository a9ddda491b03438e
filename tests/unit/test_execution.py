from datetime import UTC, datetime

import pytest

from domain.execution import CompletedTask, Next, TaskRef, from_body, from_response, from_transport_failure
from domain.status import RunStatus

TASK = {"id": "t1", "status": "WAITING", "delayUntil": "2026-01-01T00:00:05.000Z"}


def test_success_keeps_the_output() -> None:
    outcome = from_response(200, {"status": "SUCCESS", "output": {"n": 1}})
    assert (outcome.next, outcome.status, outcome.output) == (Next.COMPLETE, RunStatus.SUCCESS, {"n": 1})


def test_error_fails_the_run_with_the_error_and_the_task() -> None:
    error = {"message": "boom", "name": "Error", "stack": "at x"}
    outcome = from_response(200, {"status": "ERROR", "error": error, "task": {"id": "t9"}})
    assert (outcome.status, outcome.error, outcome.task) == (RunStatus.FAILURE, error, TaskRef("t9"))


def test_invalid_payload_and_unresolved_auth() -> None:
    errors = [{"path": ["n"], "message": "Required"}]
    invalid = from_response(200, {"status": "INVALID_PAYLOAD", "errors": errors})
    assert invalid.status is RunStatus.INVALID_PAYLOAD
    assert invalid.error is not None and invalid.error["errors"] == errors
    assert from_response(200, {"status": "UNRESOLVED_AUTH_ERROR", "issues": {}}).status is RunStatus.UNRESOLVED_AUTH


def test_resume_retry_and_parallel_tasks() -> None:
    assert from_body({"status": "RESUME_WITH_TASK", "task": TASK}).next is Next.RESUME
    retry = from_body(
        {"status": "RETRY_WITH_TASK", "task": TASK, "error": {"message": "x"}, "retryAt": "2026-01-01T00:00:01.000Z"}
    )
    assert (retry.next, retry.retry_at) == (Next.RETRY_TASK, datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    parallel = from_body(
        {
            "status": "RESUME_WITH_PARALLEL_TASK",
            "task": TASK,
            "childErrors": [{"status": "RESUME_WITH_TASK", "task": TASK}],
        }
    )
    assert parallel.next is Next.PARALLEL
    assert [child.next for child in parallel.children] == [Next.RESUME]


def test_an_io_yield_continues_as_a_new_chunk() -> None:
    assert from_body({"status": "YIELD_EXECUTION", "key": "k"}).next is Next.YIELD


@pytest.mark.parametrize(
    "body",
    [
        {"status": "AUTO_YIELD_EXECUTION", "location": "start_task", "timeRemaining": 1, "timeElapsed": 2},
        {"status": "AUTO_YIELD_RATE_LIMIT", "reset": 1},
        {"status": "AUTO_YIELD_EXECUTION_WITH_COMPLETED_TASK", "id": "t1", "output": '{"v":5}', "data": {}},
    ],
)
def test_auto_yields_continue_as_a_new_chunk(body: dict[str, object]) -> None:
    assert from_body(body).next is Next.AUTO_YIELD


def test_a_yield_with_a_completed_task_carries_it() -> None:
    properties = [{"label": "l", "text": "t"}]
    body = {
        "status": "AUTO_YIELD_EXECUTION_WITH_COMPLETED_TASK",
        "id": "t1",
        "output": '{"v":5}',
        "properties": properties,
        "data": {"location": "before_complete_task", "timeRemaining": 300, "timeElapsed": 2400, "limit": 2650},
    }
    outcome = from_body(body)
    assert outcome.completed_task == CompletedTask("t1", '{"v":5}', properties)
    assert outcome.reason == "auto-yield at before_complete_task with a completed task"


def test_a_rate_limited_endpoint_is_executed_again_when_the_limit_resets() -> None:
    outcome = from_body({"status": "AUTO_YIELD_RATE_LIMIT", "reset": 1767225605000})
    assert outcome.retry_at == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert from_body({"status": "AUTO_YIELD_RATE_LIMIT", "reset": "soon"}).status is RunStatus.FAILURE


def test_canceled() -> None:
    assert from_body({"status": "CANCELED", "task": TASK}).next is Next.CANCELED


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_4xx_other_than_408_fails_the_run(status: int) -> None:
    outcome = from_response(status, None)
    assert (outcome.next, outcome.status) == (Next.COMPLETE, RunStatus.FAILURE)
    assert outcome.error is not None
    assert outcome.error["message"] == f"Endpoint responded with {status} status code"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_is_retried(status: int) -> None:
    assert from_response(status, None).next is Next.RETRY_RUN


@pytest.mark.parametrize("status", [408, 504])
def test_408_and_504_continue_as_a_new_chunk(status: int) -> None:
    assert from_response(status, None).next is Next.YIELD


def test_an_answer_outside_the_schema_fails_the_run() -> None:
    bodies = [
        None,
        [],
        {"status": 3},
        {"output": 1},
        {"status": "NOPE"},
        {"status": "RESUME_WITH_TASK"},
        {"status": "RETRY_WITH_TASK", "task": TASK, "retryAt": "soon"},
    ]
    for body in bodies:
        outcome = from_response(200, body)
        assert (outcome.next, outcome.status) == (Next.COMPLETE, RunStatus.FAILURE), body
        assert outcome.error is not None and outcome.error["name"] == "InvalidEndpointResponse"


def test_no_answer_is_retried_and_a_time_out_continues() -> None:
    assert from_transport_failure("connection refused").next is Next.RETRY_RUN
    assert from_transport_failure("read timed out", timed_out=True).next is Next.YIELD
