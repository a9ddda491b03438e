"""Server-performed tasks (io.backgroundFetch, backgroundFetchResponse, backgroundPoll): which attempt is due,
and recording how it went. Each attempt is a PerformTask message (written with the event that calls for it);
recording is fenced by the attempt number, so a message handled twice (a crash, a redelivery) never ends a task
twice nor records a stale attempt."""

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from app.adapters.store import EventStore
from app.errors import NotFound
from app.service.writes import RunWriter
from domain.fetch_operation import PollAttempt, Result, fail
from domain.runs import JobRun
from domain.tasks import Task


@dataclass(frozen=True, slots=True)
class DueOperation:
    run: JobRun
    task: Task


class Operations:
    def __init__(self, store: EventStore, writer: RunWriter) -> None:
        self.store = store
        self.writer = writer

    async def due(self, run_id: UUID, task_id: str, attempt: int) -> DueOperation | None:
        """The task whose attempt is to be performed, or None when the message is stale or a duplicate."""
        run = await self.store.get(run_id, JobRun)
        if run is None:
            return None
        task = run.operation_due(task_id, attempt)
        return None if task is None else DueOperation(run, task.copy())

    async def record(
        self, run_id: UUID, task_id: str, attempt: int, result: Result, poll: PollAttempt | None = None
    ) -> bool:
        """Record the attempt's result (and a poll's request); False when another handling got there first."""

        def record(run: JobRun) -> bool:
            return run.record_operation(task_id, attempt, result, datetime.now(UTC), poll)

        try:
            return await self.writer.change(run_id, None, record)
        except NotFound:
            return False

    async def give_up(self, run_id: str, task_id: str, attempt: int, reason: str) -> None:
        """The worker could not handle this attempt at all (it failed every time): the task fails, naming why."""
        try:
            key = UUID(run_id)
        except ValueError:
            return
        await self.record(key, task_id, attempt, fail({"message": f"the worker could not perform this task: {reason}"}))
