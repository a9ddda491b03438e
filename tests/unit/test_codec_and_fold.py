from datetime import UTC, datetime, timedelta
from uuid import uuid4

from app.adapters.codec import decode_event, encode_event
from domain.runs import JobRun
from domain.status import RunStatus
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
