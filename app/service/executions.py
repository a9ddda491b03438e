"""The write side of executing runs: starting an attempt (within its concurrency limit), holding its lease,
recording how it ended; and rescuing attempts whose worker died or whose message is nowhere."""

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from app.adapters.store import ConcurrencyConflict, EventStore, UnitOfWork
from app.errors import NotFound
from app.observability import record as observed
from app.service.writes import CONFLICT_RETRIES, RunWriter
from domain import execution
from domain.environments import EnvironmentType
from domain.event_records import EventRecord
from domain.queues import concurrency_key
from domain.runs import JobRun, NextExecution, UnknownTask
from domain.status import RunStatus

log = logging.getLogger(__name__)

CONCURRENCY_RECHECK = timedelta(milliseconds=200)
GROUP_PREFIX = concurrency_key("")


class Executions:
    def __init__(self, store: EventStore, writer: RunWriter, lease: timedelta) -> None:
        self.store = store
        self.writer = writer
        self.lease = lease

    async def load(self, run_id: UUID, event_record_id: UUID) -> tuple[JobRun | None, EventRecord | None]:
        """The run and its event record (in one query: concurrent loads are coalesced)."""
        run, record = await asyncio.gather(self.store.get(run_id, JobRun), self.store.get(event_record_id, EventRecord))
        return run, record

    async def end_before_executing(self, run: JobRun, status: RunStatus, reason: str) -> bool:
        """End the run without calling its endpoint; False when another writer changed it first."""
        run.complete(status, error={"message": reason, "name": "Error"})
        return await self.writer.try_commit(run)

    async def start(self, run: JobRun, attempt: int) -> datetime | str:
        """Start the attempt, unless the run's concurrency limit is reached: then it waits, as a later message.
        Returns when it started, or why it did not ("deferred", "duplicate")."""
        try:
            if not (run.concurrency_key and run.concurrency_limit):
                started = datetime.now(UTC)
                run.start(attempt, started, self.lease)
                await self.writer.commit(run)
                observed.run_started(run, started)
                return started
            async with self.store.transaction() as uow:
                # Starts of runs that share a key take turns, so the count below cannot be raced.
                await uow.lock(f"{run.environment_id}:{run.concurrency_key}")
                if await uow.executing(UUID(run.environment_id), run.concurrency_key) >= await self._limit(uow, run):
                    due = datetime.now(UTC) + CONCURRENCY_RECHECK * (1 + random.random())
                    await uow.enqueue(self.writer.topics.execution(run, attempt, due))
                    return "deferred"
                # Started only now, after the slot was taken: no start is dated before a slot was free.
                started = datetime.now(UTC)
                run.start(attempt, started, self.lease)
                await self.writer.save(uow, run)
        except ConcurrencyConflict:
            log.info("run %s changed meanwhile (another worker); skipped", run.id)
            return "duplicate"
        observed.run_started(run, started)
        return started

    async def _limit(self, uow: UnitOfWork, run: JobRun) -> int:
        """A named group's limit is its queue's now (it may have been set since the run was created)."""
        assert run.concurrency_key is not None and run.concurrency_limit is not None
        if run.concurrency_key.startswith(GROUP_PREFIX):
            name = run.concurrency_key.removeprefix(GROUP_PREFIX)
            if (limit := await uow.queue_limit(UUID(run.environment_id), name)) is not None:
                return limit
        return run.concurrency_limit

    async def extend_lease(self, run_id: UUID, attempt: int) -> None:
        until = datetime.now(UTC) + self.lease

        def extend(run: JobRun) -> bool:
            return run.extend_lease(attempt, until)

        await self.writer.change(run_id, None, extend)

    async def finish(
        self,
        run: JobRun,
        attempt: int,
        outcome: execution.Outcome,
        subscriptions: dict[str, bool] | None,
        started: datetime,
        environment_type: EnvironmentType,
    ) -> str:
        """Record the outcome on the run. The SDK may have written tasks to it meanwhile (and the lease was
        extended): on a conflict the run is read again and the outcome applied to it as it is now. An answer
        naming a task the run as loaded before the call lacks (created during it) is applied to the run read
        again; one naming a task the run never had fails the run."""
        read_again = False
        for _ in range(CONFLICT_RETRIES):
            next_execution: NextExecution | None = None
            if not run.executing(attempt):
                log.warning(
                    "run %s: the answer of attempt %d came after the run moved on (%s, attempt %d); "
                    "it is recorded as stale and changes nothing",
                    run.id,
                    attempt,
                    run.status,
                    run.attempt,
                )
                run.discard_stale_answer(attempt, outcome.status.value if outcome.status else outcome.next.value)
                label = "stale"
            else:
                if subscriptions is not None:
                    run.subscribe_endpoint(subscriptions["SUCCESS"], subscriptions["FAILURE"])
                now = datetime.now(UTC)
                duration_ms = int((now - started).total_seconds() * 1000)
                try:
                    next_execution = run.finish(outcome, now, duration_ms, environment_type)
                except UnknownTask as unknown:
                    if not read_again:
                        run, read_again = await self._reload(run.id), True
                        continue
                    message = f"the endpoint's answer names task {unknown.task_id!r}, which this run does not have"
                    outcome = execution.invalid_answer(message)
                    run = await self._reload(run.id)
                    continue
                label = "completed" if run.is_terminal else "continued"
            if await self.writer.try_commit(run, next_execution):
                return label
            run, read_again = await self._reload(run.id), True
        raise ConcurrencyConflict(f"run {run.id} kept changing while its execution was recorded")

    async def _reload(self, run_id: UUID) -> JobRun:
        run = await self.store.get(run_id, JobRun)
        assert run is not None
        return run

    async def fail_unprocessable(self, run_id: str, attempt: int, reason: str) -> None:
        """The worker gave up on this execution (it failed every time): the run it was due for fails with the
        reason, rather than wait for an execution that will never come."""
        try:
            key = UUID(run_id)
        except ValueError:
            return
        error: dict[str, Any] = {"message": f"the worker could not execute this run: {reason}", "name": "Unprocessable"}

        def fail(run: JobRun) -> None:
            if run.accepts_attempt(attempt):
                run.complete(RunStatus.FAILURE, error=error)

        try:
            await self.writer.change(key, None, fail)
        except NotFound:
            pass

    async def rescue(self, run_id: UUID) -> bool:
        """The lease of the run's attempt expired (its worker is gone): schedule a new attempt at once."""
        now = datetime.now(UTC)
        return await self.writer.change(run_id, None, lambda run: run.rescue(now) is not None)

    async def requeue(self, run_id: UUID) -> bool:
        """Queue the run's next execution again: no message carries it."""
        return await self.writer.change(run_id, None, lambda run: run.requeue())
