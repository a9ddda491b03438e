"""The run-status read model: one row per run, what GET /api/v2/runs/{runId} answers from."""

from collections.abc import Sequence
from typing import Any

from domain.runs import JobRun
from domain.status import RunStatus
from projections import tables
from projections.changes import Change, Handler, Kind, Projector, as_uuid

_QUEUED = RunStatus.QUEUED.value
_EXECUTING = RunStatus.EXECUTING.value
_CANCELED = RunStatus.CANCELED.value
_TO_EXECUTE = RunStatus.WAITING_TO_EXECUTE.value
_TO_CONTINUE = RunStatus.WAITING_TO_CONTINUE.value
_UPSERT = Kind.UPSERT  # read once: an enum member read from its class is slow, and a replay makes one a run


def _created(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (
        Change(
            tables.run_status,
            {"id": event.originator_id},
            {
                "environment_id": as_uuid(event.environment_id),
                "job_slug": event.job_slug,
                "job_version": event.job_version,
                "event_record_id": as_uuid(event.event_record_id),
                "status": _QUEUED,
                "attempt": 0,
                "is_test": event.is_test,
                "priority": event.priority,
                "tags": event.tags or [],
                "concurrency_key": event.concurrency_key,
                "next_due_at": at,
                "created_at": at,
                "updated_at": at,
            },
            _UPSERT,
        ),
    )


def _started(event: Any) -> Sequence[Change]:
    return (
        Change(
            tables.run_status,
            {"id": event.originator_id},
            {
                "status": _EXECUTING,
                "attempt": event.attempt,
                "updated_at": event.timestamp,
                "lease_until": event.lease_until,
                "next_due_at": None,
            },
            fill={"started_at": event.started_at},
        ),
    )


def _retry_scheduled(event: Any) -> Sequence[Change]:
    return (_waiting(event, _TO_EXECUTE, event.retry_at),)


def _yielded(event: Any) -> Sequence[Change]:
    return (_waiting(event, _TO_EXECUTE, event.timestamp),)


def _auto_yielded(event: Any) -> Sequence[Change]:
    return (_waiting(event, _TO_EXECUTE, event.due_at),)


def _waiting_to_continue(event: Any) -> Sequence[Change]:
    return (_waiting(event, _TO_CONTINUE, event.resume_at),)


def _due_now(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (Change(tables.run_status, {"id": event.originator_id}, {"next_due_at": at, "updated_at": at}),)


def _lease_extended(event: Any) -> Sequence[Change]:
    return (Change(tables.run_status, {"id": event.originator_id}, {"lease_until": event.lease_until}),)


def _canceled(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (
        Change(
            tables.run_status,
            {"id": event.originator_id},
            {
                "status": _CANCELED,
                "error": {"message": event.reason, "name": "Canceled"},
                "updated_at": at,
                "completed_at": at,
            },
        ),
    )


def _continued(event: Any) -> Sequence[Change]:
    return (
        Change(
            tables.run_status,
            {"id": event.originator_id},
            {"status": _QUEUED, "output": None, "error": None, "updated_at": event.timestamp, "completed_at": None},
        ),
    )


def _completed(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (
        Change(
            tables.run_status,
            {"id": event.originator_id},
            {
                "status": event.status,
                "output": event.output,
                "error": event.error,
                "updated_at": at,
                "completed_at": at,
            },
        ),
    )


def _waiting(event: Any, status: str, due: Any) -> Change:
    return Change(
        tables.run_status,
        {"id": event.originator_id},
        {"status": status, "updated_at": event.timestamp, "lease_until": None, "next_due_at": due},
    )


# What each event class changes; a class matches the first entry it is (or derives from).
HANDLERS: dict[type, Handler] = {
    JobRun.RunCreated: _created,
    JobRun.RunStarted: _started,
    JobRun.RunRetryScheduled: _retry_scheduled,
    JobRun.RunYielded: _yielded,
    JobRun.RunRescued: _yielded,
    JobRun.RunAutoYielded: _auto_yielded,
    JobRun.RunWaiting: _waiting_to_continue,
    JobRun.RunResumed: _due_now,
    JobRun.RunRequeued: _due_now,
    JobRun.RunLeaseExtended: _lease_extended,
    JobRun.RunCanceled: _canceled,
    JobRun.RunContinued: _continued,
    JobRun.RunCompleted: _completed,
}
changes = Projector(HANDLERS)
EVENTS = changes.events
handler_for = changes.handler_for
