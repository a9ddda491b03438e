from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.runs import JobRun, StaleAttempt, validate_tags
from domain.status import InvalidTransition, RunStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def new_run() -> JobRun:
    return JobRun(
        id=uuid4(),
        environment_id="env",
        endpoint_id="ep",
        job_slug="job",
        job_version="1.0.0",
        event_record_id="record",
        is_test=True,
    )


def replay(run: JobRun) -> JobRun:
    """The run rebuilt from nothing but its events."""
    copy = None
    for event in run.collect_events():
        copy = event.mutate(copy)
    assert isinstance(copy, JobRun)
    return copy


def test_a_new_run_is_queued_before_any_attempt() -> None:
    run = new_run()
    assert run.status is RunStatus.QUEUED
    assert run.attempt == 0
    assert [type(e).__name__ for e in run.pending_events] == ["RunCreated"]


def test_start_then_complete_with_output() -> None:
    run = new_run()
    run.start(1, NOW, timedelta(seconds=30))
    assert run.status is RunStatus.EXECUTING
    assert run.lease_until == NOW + timedelta(seconds=30)
    run.complete(RunStatus.SUCCESS, output={"ok": True}, duration_ms=12)
    rebuilt = replay(run)
    assert (rebuilt.status, rebuilt.output, rebuilt.attempt, rebuilt.started_at) == (
        RunStatus.SUCCESS,
        {"ok": True},
        1,
        NOW,
    )
    assert rebuilt.lease_until is None


def test_failure_keeps_the_error() -> None:
    run = new_run()
    run.start(1, NOW, timedelta(seconds=30))
    run.complete(RunStatus.FAILURE, error={"message": "boom"})
    assert replay(run).error == {"message": "boom"}


def test_only_the_next_attempt_starts() -> None:
    run = new_run()
    assert not run.accepts_attempt(2)
    with pytest.raises(StaleAttempt):
        run.start(2, NOW, timedelta(seconds=1))
    run.start(1, NOW, timedelta(seconds=1))
    assert not run.accepts_attempt(1)
    with pytest.raises(StaleAttempt):
        run.start(1, NOW, timedelta(seconds=1))


def test_a_finished_run_accepts_no_attempt_and_no_second_completion() -> None:
    run = new_run()
    run.start(1, NOW, timedelta(seconds=1))
    run.complete(RunStatus.SUCCESS)
    assert not run.accepts_attempt(2)
    with pytest.raises(InvalidTransition):
        run.complete(RunStatus.FAILURE)


def test_completion_needs_a_final_status_and_a_started_run() -> None:
    run = new_run()
    with pytest.raises(ValueError, match="not a final status"):
        run.complete(RunStatus.EXECUTING)
    with pytest.raises(InvalidTransition):
        run.complete(RunStatus.SUCCESS)


def test_tags_are_limited() -> None:
    assert validate_tags(["a", "b"]) == ["a", "b"]
    with pytest.raises(ValueError, match="at most 10"):
        validate_tags([str(i) for i in range(11)])
    with pytest.raises(ValueError):
        validate_tags([""])


def test_an_event_record_keeps_what_was_received() -> None:
    from domain.event_records import EventRecord, test_event_id

    record = EventRecord(
        id=uuid4(),
        environment_id="env",
        event_id=test_event_id("user.created", 1700000000000),
        name="user.created",
        payload={"id": 1},
        context={},
        source="trigger.dev",
        sent_at="2026-01-01T00:00:00Z",
        is_test=True,
    )
    (created,) = record.collect_events()
    assert type(created).TOPIC == "jobs.EventRecord.EventRecorded"
    rebuilt = created.mutate(None)
    assert isinstance(rebuilt, EventRecord)
    assert (rebuilt.event_id, rebuilt.payload, rebuilt.is_test) == ("test:user.created:1700000000000", {"id": 1}, True)
