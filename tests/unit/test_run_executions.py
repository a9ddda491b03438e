"""How a run moves through executions: retries, waits, yields, tasks and limits (no I/O)."""

from datetime import timedelta

from domain import policies
from domain.environments import EnvironmentType
from domain.execution import from_body, from_response, from_transport_failure
from domain.runs import JobRun, NextExecution
from domain.status import RunStatus
from domain.tasks import Task, TaskSpec
from domain.times import iso, iso_or_none
from tests.unit.runs_builder import LEASE, NOW, PROD, started_run


def sdk(task: Task) -> dict[str, object]:
    """The task as the SDK sends it back in an answer."""
    return {"id": task.id, "status": task.status.value, "delayUntil": iso_or_none(task.delay_until)}


def test_backoff_is_one_and_a_half_to_the_n_times_500_ms() -> None:
    assert [policies.retry_delay(n).total_seconds() for n in (1, 2, 3)] == [0.75, 1.125, 1.6875]


def test_a_failed_execution_is_retried_with_backoff_then_fails_after_ten() -> None:
    run = started_run()
    for failure in range(1, 10):
        scheduled = run.finish(from_response(503, None), NOW, 10, PROD)
        assert scheduled == NextExecution(failure + 1, NOW + policies.retry_delay(failure))
        assert run.status is RunStatus.WAITING_TO_EXECUTE
        run.start(failure + 1, NOW, LEASE)
    assert run.finish(from_response(503, None), NOW, 10, PROD) is None
    assert run.status is RunStatus.FAILURE
    assert run.error is not None and "503" in run.error["message"]
    assert run.execution_ms == 100


def test_a_development_environment_does_not_retry() -> None:
    run = started_run()
    assert run.finish(from_transport_failure("refused"), NOW, 1, EnvironmentType.DEVELOPMENT) is None
    assert run.status is RunStatus.FAILURE


def test_a_wait_resumes_at_the_tasks_delay_and_completes_it_then() -> None:
    run = started_run()
    delay = NOW + timedelta(seconds=5)
    task = run.create_task(TaskSpec("w", name="wait", noop=True, delay_until=delay), NOW)
    assert task.status == "WAITING"
    scheduled = run.finish(from_body({"status": "RESUME_WITH_TASK", "task": sdk(task)}), NOW, 5, PROD)
    assert scheduled == NextExecution(2, delay)
    assert run.status is RunStatus.WAITING_TO_CONTINUE
    run.start(2, delay, LEASE)
    assert run.tasks[task.id].status == "COMPLETED"
    assert run.completed_tasks() == []  # a completed noop task is not replayed from `tasks`


def test_a_task_retry_waits_until_retry_at_and_counts_the_attempt() -> None:
    run = started_run()
    task = run.create_task(TaskSpec("t", name="flaky"), NOW)
    retry_at = NOW + timedelta(seconds=1)
    body = {"status": "RETRY_WITH_TASK", "task": sdk(task), "error": {"message": "x"}, "retryAt": iso(retry_at)}
    assert run.finish(from_body(body), NOW, 5, PROD) == NextExecution(2, retry_at)
    assert run.tasks[task.id].status == "WAITING"
    run.start(2, retry_at, LEASE)
    again = run.create_task(TaskSpec("t", name="flaky"), retry_at)
    assert (again.status, again.attempts) == ("RUNNING", 2)
    run.complete_task(task.id, '"ok"', None, retry_at, serialized_output=True)
    assert [(t.id, t.idempotency_key, t.status, t.noop, t.output, t.parent_id) for t in run.completed_tasks()] == [
        (task.id, "t", "COMPLETED", False, "ok", None)
    ]


def test_a_yield_continues_at_once_until_a_hundred() -> None:
    run = started_run()
    for attempt in range(2, 102):
        assert run.finish(from_body({"status": "YIELD_EXECUTION", "key": f"k{attempt}"}), NOW, 1, PROD) == (
            NextExecution(attempt, NOW)
        )
        run.start(attempt, NOW, LEASE)
    assert run.finish(from_body({"status": "YIELD_EXECUTION", "key": "last"}), NOW, 1, PROD) is None
    assert run.status is RunStatus.FAILURE


def test_an_error_with_a_task_marks_the_task_errored() -> None:
    run = started_run()
    task = run.create_task(TaskSpec("t"), NOW)
    run.finish(from_body({"status": "ERROR", "error": {"message": "bad"}, "task": sdk(task)}), NOW, 1, PROD)
    assert run.status is RunStatus.FAILURE
    assert run.tasks[task.id].status == "ERRORED"


def test_limits_end_the_run_as_timed_out() -> None:
    run = started_run()
    assert run.limit_reached() is None
    run.finish(from_response(504, None), NOW, int(policies.MAX_TOTAL_EXECUTION.total_seconds() * 1000), PROD)
    assert run.limit_reached() is not None
    assert policies.over_limits(policies.MAX_EXECUTIONS, timedelta()) is not None


def test_a_task_is_created_once_per_idempotency_key() -> None:
    run = started_run()
    first = run.create_task(TaskSpec("k", name="a"), NOW)
    second = run.create_task(TaskSpec("k", name="b"), NOW)
    assert first == second and first.name == "a"
    assert len([e for e in run.pending_events if isinstance(e, JobRun.TaskStarted)]) == 1
    assert run.create_task(TaskSpec("log", noop=True), NOW).status == "COMPLETED"


def test_completing_the_task_a_run_waits_on_resumes_it() -> None:
    run = started_run()
    task = run.create_task(TaskSpec("cb", callback=True), NOW, lambda id: f"http://cb/{id}")
    assert (task.status, task.callback_url) == ("WAITING", f"http://cb/{task.id}")
    assert run.finish(from_body({"status": "RESUME_WITH_TASK", "task": sdk(task)}), NOW, 1, PROD) is None
    assert run.waiting_task == task.id
    run.complete_task(task.id, {"done": True}, None, NOW)
    assert run.due_execution() is not None and run.due_execution().attempt == 2  # type: ignore[union-attr]


def test_statuses_keep_their_history() -> None:
    run = started_run()
    run.update_status("progress", "Working", "loading", {"p": 0.1})
    record = run.update_status("progress", None, "success", {"p": 1})
    assert record == {
        "key": "progress",
        "label": "Working",
        "state": "success",
        "data": {"p": 1},
        "history": [{"label": "Working", "state": "loading", "data": {"p": 0.1}}],
    }
    assert run.update_status("bare", None, None, None) == {"key": "bare", "label": "bare", "history": []}


def test_parallel_children_resume_at_the_earliest_and_retry_their_tasks() -> None:
    run = started_run()
    soon, later = NOW + timedelta(seconds=1), NOW + timedelta(seconds=9)
    parent = run.create_task(TaskSpec("p", name="parallel"), NOW)
    waiting = run.create_task(TaskSpec("w", noop=True, delay_until=later), NOW)
    flaky = run.create_task(TaskSpec("f"), NOW)
    body = {
        "status": "RESUME_WITH_PARALLEL_TASK",
        "task": sdk(parent),
        "childErrors": [
            {"status": "RESUME_WITH_TASK", "task": sdk(waiting)},
            {"status": "RETRY_WITH_TASK", "task": sdk(flaky), "error": {"message": "x"}, "retryAt": iso(soon)},
        ],
    }
    assert run.finish(from_body(body), NOW, 1, PROD) == NextExecution(2, soon)
    assert run.tasks[flaky.id].status == "WAITING"


def test_a_failed_parallel_child_fails_the_run() -> None:
    run = started_run()
    parent = run.create_task(TaskSpec("p"), NOW)
    body = {
        "status": "RESUME_WITH_PARALLEL_TASK",
        "task": sdk(parent),
        "childErrors": [{"status": "ERROR", "error": {"message": "child broke"}}],
    }
    assert run.finish(from_body(body), NOW, 1, PROD) is None
    assert run.status is RunStatus.FAILURE and run.error == {"message": "child broke"}
