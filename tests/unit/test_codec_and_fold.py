from datetime import UTC, datetime, timedelta
from uuid import uuid4

import msgspec

from app.adapters.codec import decode_event, encode_event
from domain.runs import JobRun
from domain.status import RunStatus
from domain.tasks import Task, TaskSpec
from projections import tables
from projections.apply import Fold
from projections.registry import changes_for


def finished_run() -> JobRun:
    run = JobRun(
        id=uuid4(),
        environment_id=str(uuid4()),
        endpoint_id=str(uuid4()),
        job_slug="job",
        job_version="1",
        event_record_id=str(uuid4()),
        is_test=False,
        tags=["a"],
    )
    run.start(1, datetime(2026, 1, 1, tzinfo=UTC), timedelta(seconds=5))
    run.complete(RunStatus.SUCCESS, output=[1, 2])
    return run


def test_events_survive_encoding_with_their_explicit_topics() -> None:
    events = finished_run().collect_events()
    stored = [encode_event(e) for e in events]
    assert [s.topic for s in stored] == ["jobs.JobRun.RunCreated", "jobs.JobRun.RunStarted", "jobs.JobRun.RunCompleted"]
    decoded = [decode_event(*s) for s in stored]
    assert [d.__dict__ for d in decoded] == [e.__dict__ for e in events]
    assert isinstance(decoded[1].__dict__["lease_until"], datetime)


def test_fold_builds_the_run_status_row() -> None:
    events = finished_run().collect_events()
    fold = Fold()
    fold.apply(changes_for(events))
    (row,) = fold.table_rows(tables.run_status)
    assert row["status"] == "SUCCESS"
    assert row["output"] == [1, 2]
    assert row["tags"] == ["a"]
    assert row["started_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert row["completed_at"] == events[-1].timestamp
    assert row["created_at"] == events[0].timestamp


def test_an_update_without_a_row_changes_nothing() -> None:
    events = finished_run().collect_events()
    fold = Fold()
    fold.apply(changes_for(events[1:]))
    assert fold.table_rows(tables.run_status) == []


def test_a_task_is_stored_and_read_back_as_its_class() -> None:
    run = finished_run()
    run.collect_events()
    run.create_task(TaskSpec("k", name="fetch", delay_until=datetime(2026, 1, 2, tzinfo=UTC)), datetime.now(UTC))
    (started,) = run.collect_events()
    stored = encode_event(started)
    assert msgspec.json.decode(stored.state)["class_version"] == 2
    decoded = decode_event(*stored)
    assert isinstance(decoded.__dict__["task"], Task)
    assert decoded.__dict__ == started.__dict__


def test_an_event_stored_in_an_older_shape_is_upcast_when_read() -> None:
    """A TaskStarted of version 1 (the SDK's camelCase task) and an EventRecorded of version 1 (a `sent_at`
    that was not a time), exactly as an earlier release stored them."""
    run_id, record_id = uuid4(), uuid4()
    task_v1 = {
        "timestamp": "2026-01-01T00:00:00.000001+00:00",
        "originator_topic": "jobs.JobRun",
        "task": {
            "id": "t1",
            "idempotencyKey": "k",
            "name": "Task",
            "noop": False,
            "status": "WAITING",
            "startedAt": "2026-01-01T00:00:00.000Z",
            "completedAt": None,
            "delayUntil": "2026-01-01T00:00:05.000Z",
            "output": None,
            "outputProperties": None,
            "error": None,
            "attempts": 1,
            "callbackUrl": None,
            "retry": None,
            "icon": "clock",
            "description": None,
            "params": {"seconds": 5},
            "properties": None,
            "style": {"style": "minimal"},
            "operation": None,
            "parentId": "p1",
            "displayKey": "wait",
        },
    }
    started = decode_event(run_id, 3, "jobs.JobRun.TaskStarted", msgspec.json.encode(task_v1))
    task = started.__dict__["task"]
    assert isinstance(task, Task)
    assert (task.idempotency_key, task.status, task.parent_id, task.display_key) == ("k", "WAITING", "p1", "wait")
    assert task.delay_until == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert task.style == {"style": "minimal"} and task.params == {"seconds": 5}
    recorded_v1 = {
        "timestamp": "2026-01-01T00:00:00.000001+00:00",
        "originator_topic": "jobs.EventRecord",
        "environment_id": str(uuid4()),
        "event_id": "e1",
        "name": "order.placed",
        "payload": {},
        "context": {},
        "source": "trigger.dev",
        "sent_at": "yesterday",
        "is_test": False,
        "deliver_at": None,
    }
    recorded = decode_event(record_id, 1, "jobs.EventRecord.EventRecorded", msgspec.json.encode(recorded_v1))
    assert recorded.__dict__["sent_at"] == datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    record = recorded.mutate(None)
    assert record.sent_at == recorded.__dict__["sent_at"]


def test_an_index_stored_before_dynamic_schedules_were_kept_reads_back_with_none() -> None:
    indexed_v1 = {
        "timestamp": "2026-01-01T00:00:00.000001+00:00",
        "originator_topic": "jobs.Endpoint",
        "environment_id": str(uuid4()),
        "jobs": [{"id": "j", "version": "1.0.0"}],
    }
    indexed = decode_event(uuid4(), 2, "jobs.Endpoint.EndpointIndexed", msgspec.json.encode(indexed_v1))
    assert indexed.__dict__["dynamic_schedules"] == [] and indexed.__dict__["jobs"] == [{"id": "j", "version": "1.0.0"}]
