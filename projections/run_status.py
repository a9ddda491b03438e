"""The run-status read model: one row per run, what GET /api/v2/runs/{runId} answers from."""

from collections.abc import Iterator
from typing import Any

from domain.runs import JobRun
from domain.status import RunStatus
from projections import tables
from projections.changes import Change, Kind, as_uuid

# Every event class `changes` matches (tests/unit/test_projector_events.py checks): the others skip it.
EVENTS = (
    JobRun.RunCreated,
    JobRun.RunStarted,
    JobRun.RunRetryScheduled,
    JobRun.RunYielded,
    JobRun.RunRescued,
    JobRun.RunAutoYielded,
    JobRun.RunWaiting,
    JobRun.RunResumed,
    JobRun.RunRequeued,
    JobRun.RunLeaseExtended,
    JobRun.RunCanceled,
    JobRun.RunContinued,
    JobRun.RunCompleted,
)


def changes(event: Any) -> Iterator[Change]:
    at = event.timestamp
    key = {"id": event.originator_id}
    match event:
        case JobRun.RunCreated():
            yield Change(
                tables.run_status,
                key,
                {
                    "environment_id": as_uuid(event.environment_id),
                    "job_slug": event.job_slug,
                    "job_version": event.job_version,
                    "event_record_id": as_uuid(event.event_record_id),
                    "status": RunStatus.QUEUED.value,
                    "attempt": 0,
                    "is_test": event.is_test,
                    "priority": event.priority,
                    "tags": event.tags or [],
                    "concurrency_key": event.concurrency_key,
                    "next_due_at": at,
                    "created_at": at,
                    "updated_at": at,
                },
                Kind.UPSERT,
            )
        case JobRun.RunStarted():
            yield Change(
                tables.run_status,
                key,
                {
                    "status": RunStatus.EXECUTING.value,
                    "attempt": event.attempt,
                    "updated_at": at,
                    "lease_until": event.lease_until,
                    "next_due_at": None,
                },
                fill={"started_at": event.started_at},
            )
        case JobRun.RunRetryScheduled():
            yield _waiting(key, RunStatus.WAITING_TO_EXECUTE, at, event.retry_at)
        case JobRun.RunYielded() | JobRun.RunRescued():
            yield _waiting(key, RunStatus.WAITING_TO_EXECUTE, at, at)
        case JobRun.RunAutoYielded():
            yield _waiting(key, RunStatus.WAITING_TO_EXECUTE, at, event.due_at)
        case JobRun.RunWaiting():
            yield _waiting(key, RunStatus.WAITING_TO_CONTINUE, at, event.resume_at)
        case JobRun.RunResumed() | JobRun.RunRequeued():
            yield Change(tables.run_status, key, {"next_due_at": at, "updated_at": at})
        case JobRun.RunLeaseExtended():
            yield Change(tables.run_status, key, {"lease_until": event.lease_until})
        case JobRun.RunCanceled():
            yield Change(
                tables.run_status,
                key,
                {
                    "status": RunStatus.CANCELED.value,
                    "error": {"message": event.reason, "name": "Canceled"},
                    "updated_at": at,
                    "completed_at": at,
                },
            )
        case JobRun.RunContinued():
            yield Change(
                tables.run_status,
                key,
                {
                    "status": RunStatus.QUEUED.value,
                    "output": None,
                    "error": None,
                    "updated_at": at,
                    "completed_at": None,
                },
            )
        case JobRun.RunCompleted():
            yield Change(
                tables.run_status,
                key,
                {
                    "status": event.status,
                    "output": event.output,
                    "error": event.error,
                    "updated_at": at,
                    "completed_at": at,
                },
            )


def _waiting(key: dict[str, Any], status: RunStatus, at: Any, due: Any) -> Change:
    return Change(
        tables.run_status, key, {"status": status.value, "updated_at": at, "lease_until": None, "next_due_at": due}
    )
