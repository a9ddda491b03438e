"""Saving a run together with what its new events set in motion: the next execution, notifications."""

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from sqlalchemy import text

from app.codec import DomainEvent
from app.errors import NotFound
from app.messages import ExecuteJobRun, NotifyRun, lane_topic, outbox_message
from app.store import ConcurrencyConflict, EventStore, OutboxMessage, UnitOfWork
from domain.runs import JobRun, NextExecution

T = TypeVar("T")
ENDINGS = (JobRun.RunCompleted, JobRun.RunCanceled)
_WITHDRAW = text("DELETE FROM outbox WHERE key = :key AND headers ->> 'type' = 'ExecuteJobRun'")
CONFLICT_RETRIES = 8


def execution_outbox(topic: str, run: JobRun, attempt: int, due_at: datetime | None = None) -> OutboxMessage:
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
    return outbox_message(lane_topic(topic, run.priority), str(run.id), message, due_at, headers)


async def save_run(uow: UnitOfWork, topic: str, run: JobRun, next_execution: NextExecution | None = None) -> None:
    """Save the run's new events in this transaction, with what they set in motion."""
    await _save_events(uow, topic, run, run.collect_events(), next_execution)


async def commit_run(store: EventStore, topic: str, run: JobRun, next_execution: NextExecution | None = None) -> None:
    """Save the run as save_run does, in a transaction shared with other writes of this process (a cancel,
    which withdraws queued executions, in one of its own)."""
    events = run.collect_events()
    if _cancels(events):
        async with store.transaction() as uow:
            await _save_events(uow, topic, run, events, next_execution)
        return
    await store.commit(events, _followups(topic, run, events, next_execution))


async def _save_events(
    uow: UnitOfWork, topic: str, run: JobRun, events: Sequence[DomainEvent], next_execution: NextExecution | None
) -> None:
    await uow.append(events)
    if _cancels(events):
        await uow.conn.execute(_WITHDRAW, {"key": str(run.id)})
    if messages := _followups(topic, run, events, next_execution):
        await uow.enqueue(*messages)


def _cancels(events: Sequence[DomainEvent]) -> bool:
    return any(isinstance(event, JobRun.RunCanceled) for event in events)


def _followups(
    topic: str, run: JobRun, events: Sequence[DomainEvent], next_execution: NextExecution | None
) -> list[OutboxMessage]:
    """The outbox rows the new events call for: the next execution, and notifications when the run ended."""
    messages = []
    if next_execution is not None:
        messages.append(execution_outbox(topic, run, next_execution.attempt, next_execution.due_at))
    if run.is_terminal and any(isinstance(event, ENDINGS) for event in events):
        for target in run.notification_targets():
            messages.append(outbox_message(topic, str(run.id), NotifyRun(str(run.id), target, 1)))
    return messages


async def change_run(
    store: EventStore,
    topic: str,
    run_id: UUID,
    environment_id: UUID | None,
    change: Callable[[JobRun], T | Awaitable[T]],
) -> T:
    """Load the run, apply `change`, save with its follow-ups; reloads and re-applies on a conflicting write."""
    for _ in range(CONFLICT_RETRIES):
        run = await store.get(run_id, JobRun)
        if run is None or (environment_id is not None and run.environment_id != str(environment_id)):
            raise NotFound(f"run {run_id} not found")
        result = change(run)
        if isinstance(result, Awaitable):
            result = await result
        next_execution = run.due_execution()
        try:
            await commit_run(store, topic, run, next_execution)
        except ConcurrencyConflict:
            continue
        return result
    raise ConcurrencyConflict(f"run {run_id} kept changing under this write")
