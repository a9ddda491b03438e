"""JobRun: one execution of a job version for one event, from creation to a final status."""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.status import RunStatus, check_transition, is_terminal

MAX_TAGS = 10


class JobRun(Aggregate):
    TOPIC = "jobs.JobRun"

    class Created(Aggregate.Created):
        TOPIC = "jobs.JobRun.Created"

    class RunCreated(Aggregate.Created):
        TOPIC = "jobs.JobRun.RunCreated"
        environment_id: str
        endpoint_id: str
        job_slug: str
        job_version: str
        event_record_id: str
        is_test: bool
        priority: int
        tags: list[str] | None
        queue: str
        callback_url: str | None

    class RunStarted(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunStarted"
        attempt: int
        started_at: datetime
        lease_until: datetime

    class RunCompleted(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunCompleted"
        status: str
        output: Any
        error: dict[str, Any] | None
        duration_ms: int

    @event(RunCreated)
    def __init__(
        self,
        id: UUID,
        environment_id: str,
        endpoint_id: str,
        job_slug: str,
        job_version: str,
        event_record_id: str,
        is_test: bool,
        priority: int = 0,
        tags: list[str] | None = None,
        queue: str = "default",
        callback_url: str | None = None,
    ) -> None:
        self.environment_id = environment_id
        self.endpoint_id = endpoint_id
        self.job_slug = job_slug
        self.job_version = job_version
        self.event_record_id = event_record_id
        self.is_test = is_test
        self.priority = priority
        self.tags = list(tags or [])
        self.queue = queue
        self.callback_url = callback_url
        self.status = RunStatus.QUEUED
        self.attempt = 0
        self.lease_until: datetime | None = None
        self.started_at: datetime | None = None
        self.output: Any = None
        self.error: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.status)

    def accepts_attempt(self, attempt: int) -> bool:
        """Whether a delivery for `attempt` is the next one; anything else is a duplicate or stale."""
        return not self.is_terminal and attempt == self.attempt + 1

    def start(self, attempt: int, now: datetime, lease: timedelta) -> None:
        if not self.accepts_attempt(attempt):
            raise StaleAttempt(self.id, attempt, self.attempt)
        check_transition(self.status, RunStatus.EXECUTING)
        self._started(attempt=attempt, started_at=now, lease_until=now + lease)

    @event(RunStarted)
    def _started(self, attempt: int, started_at: datetime, lease_until: datetime) -> None:
        self.attempt = attempt
        self.lease_until = lease_until
        self.status = RunStatus.EXECUTING
        if self.started_at is None:
            self.started_at = started_at

    def complete(
        self, status: RunStatus, output: Any = None, error: dict[str, Any] | None = None, duration_ms: int = 0
    ) -> None:
        if not is_terminal(status):
            raise ValueError(f"{status} is not a final status")
        check_transition(self.status, status)
        self._completed(status=status.value, output=output, error=error, duration_ms=duration_ms)

    @event(RunCompleted)
    def _completed(self, status: str, output: Any, error: dict[str, Any] | None, duration_ms: int) -> None:
        self.status = RunStatus(status)
        self.output = output
        self.error = error
        self.lease_until = None


class StaleAttempt(Exception):
    def __init__(self, run_id: UUID, attempt: int, current: int) -> None:
        super().__init__(f"run {run_id}: attempt {attempt} is not next after {current}")
        self.run_id = run_id
        self.attempt = attempt
        self.current = current


def validate_tags(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise ValueError(f"a run takes at most {MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        if not tag or len(tag) > 64:
            raise ValueError("each tag must be 1 to 64 characters")
    return tags
