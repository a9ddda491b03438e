"""Writing runs: a run's new events, in one transaction with what they set in motion (the next execution,
notifications), each message routed to its topic here and nowhere else."""

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from app.adapters.codec import DomainEvent
from app.adapters.messages import (
    ExecuteJobRun,
    Message,
    NotifyRun,
    PerformTask,
    TimeOutCallback,
    lane_topic,
    outbox_message,
)
from app.adapters.store import ConcurrencyConflict, EventStore, OutboxMessage, UnitOfWork
from app.errors import NotFound
from app.observability import record as observed
from domain.runs import JobRun, NextExecution
from domain.tasks import TaskStatus

T = TypeVar("T")
ENDINGS = (JobRun.RunCompleted, JobRun.RunCanceled)
CONFLICT_RETRIES = 8


class Topics:
    """Which topic each message goes to: executions to their priority lane, the rest to the base topic."""

    def __init__(self, base: str) -> None:
        self.base = base

    def execution(self, run: JobRun, attempt: int, due_at: datetime | None = None) -> OutboxMessage:
        """The outbox row that starts `attempt` of the run: on its priority lane, with its tags as a header."""
        message = ExecuteJobRun(
            run_id=str(run.id),
            event_record_id=run.event_record_id,
            job_slug=run.job_slug,
            job_version=run.job_version,
            attempt=attempt,
            priority=run.priority,
            tags=run.tags,
        )
        headers = {"tags": ",".join(run.tags)} if run.tags else None
        return outbox_message(lane_topic(self.base, run.priority), str(run.id), message, due_at, headers)

    def message(self, key: str, message: Message, due_at: datetime | None = None) -> OutboxMessage:
        return outbox_message(self.base, key, message, due_at)


class RunWriter:
    def __init__(self, store: EventStore, topics: Topics) -> None:
        self.store = store
        self.topics = topics

    async def save(self, uow: UnitOfWork, run: JobRun, next_execution: NextExecution | None = None) -> None:
        """Save the run's new events in this transaction, with what they set in motion."""
        await self._save_events(uow, run, run.collect_events(), next_execution)

    async def commit(self, run: JobRun, next_execution: NextExecution | None = None) -> None:
        """Save the run as `save` does, in a transaction shared with other writes of this process (a cancel,
        which withdraws queued executions, in one of its own)."""
        events = run.collect_events()
        if _cancels(events):
            async with self.store.transaction() as uow:
                await self._save_events(uow, run, events, next_execution)
        else:
            await self.store.commit(events, self._followups(run, events, next_execution))
        if run.is_terminal and any(isinstance(event, ENDINGS) for event in events):
            observed.run_finished(run)

    async def try_commit(self, run: JobRun, next_execution: NextExecution | None = None) -> bool:
        """Commit, unless another writer changed the run first (then False)."""
        try:
            await self.commit(run, next_execution)
        except ConcurrencyConflict:
            return False
        return True

    async def change(
        self, run_id: UUID, environment_id: UUID | None, change: Callable[[JobRun], T | Awaitable[T]]
    ) -> T:
        """Load the run, apply `change`, save with its follow-ups; reloads and re-applies on a conflicting
        write. A run of another environment is not found."""
        for _ in range(CONFLICT_RETRIES):
            run = await self.store.get(run_id, JobRun)
            if run is None or (environment_id is not None and run.environment_id != str(environment_id)):
                raise NotFound(f"run {run_id} not found")
            result = change(run)
            if isinstance(result, Awaitable):
                result = await result
            if await self.try_commit(run, run.due_execution()):
                return result
        raise ConcurrencyConflict(f"run {run_id} kept changing under this write")

    async def _save_events(
        self, uow: UnitOfWork, run: JobRun, events: Sequence[DomainEvent], next_execution: NextExecution | None
    ) -> None:
        await uow.append(events)
        if _cancels(events):
            await uow.withdraw_executions(str(run.id))
        if messages := self._followups(run, events, next_execution):
            await uow.enqueue(*messages)

    def _followups(
        self, run: JobRun, events: Sequence[DomainEvent], next_execution: NextExecution | None
    ) -> list[OutboxMessage]:
        """The outbox rows the new events call for: the next execution, notifications when the run ended, and
        the time-out of a task that starts waiting for its callback."""
        messages = []
        for event in events:
            if isinstance(event, JobRun.TaskStarted) and event.task.callback_timeout_at is not None:
                # keyed by the task: a row keyed by the run would read as its execution (the rescuer's check)
                timeout = TimeOutCallback(str(run.id), event.task.id)
                key = f"{run.id}/{event.task.id}"
                messages.append(self.topics.message(key, timeout, event.task.callback_timeout_at))
        if next_execution is not None:
            messages.append(self.topics.execution(run, next_execution.attempt, next_execution.due_at))
        messages.extend(self._operations(run, events))
        if run.is_terminal and any(isinstance(event, ENDINGS) for event in events):
            for target in run.notification_targets():
                messages.append(self.topics.message(str(run.id), NotifyRun(str(run.id), target, 1)))
        return messages

    def _operations(self, run: JobRun, events: Sequence[DomainEvent]) -> list[OutboxMessage]:
        """A server-performed task that starts (or runs again after a continue) is performed by a worker; a
        retried attempt, at its time."""
        messages = []
        for event in events:
            if isinstance(event, JobRun.TaskOperationRetryScheduled):
                messages.append(self._perform(run, event.task_id, event.attempt, event.retry_at))
            elif isinstance(event, JobRun.TaskStarted | JobRun.TaskResumed):
                task = run.tasks.get(event.task.id if isinstance(event, JobRun.TaskStarted) else event.task_id)
                if task is not None and task.operation and task.status is TaskStatus.RUNNING:
                    messages.append(self._perform(run, task.id, task.attempts))
        return messages

    def _perform(self, run: JobRun, task_id: str, attempt: int, due_at: datetime | None = None) -> OutboxMessage:
        return self.topics.message(str(run.id), PerformTask(str(run.id), task_id, attempt), due_at)


def _cancels(events: Sequence[DomainEvent]) -> bool:
    return any(isinstance(event, JobRun.RunCanceled) for event in events)
