"""Operators' controls over runs: cancel (one, every open run of a job, or the unstarted runs of an event)
and continue."""

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from app.adapters.reads import ReadModels
from app.service.environments import EnvironmentInfo
from app.service.writes import RunWriter
from domain.event_records import EventRecord
from domain.runs import JobRun
from domain.status import RunStatus

# What trigger.dev v2's cancelRunsForEvent cancels: runs that have not started executing.
NOT_STARTED = frozenset({"PENDING", "QUEUED", "WAITING_ON_CONNECTIONS", "PREPROCESSING", "STARTED"})


class Control:
    def __init__(self, reads: ReadModels, writer: RunWriter) -> None:
        self.reads = reads
        self.writer = writer

    async def cancel(self, env: EnvironmentInfo, run_id: UUID) -> JobRun:
        """Cancel a run that has not ended: its open tasks are canceled and its queued executions withdrawn;
        an execution in flight finds the run canceled when it returns and records nothing."""

        return await self.writer.change(run_id, env.id, _cancel)

    async def cancel_job_runs(self, env: EnvironmentInfo, job_slug: str) -> tuple[list[str], list[str]]:
        """Cancel every open run of the job; the ids canceled, and those that could not be."""
        return await self._cancel_all(env, await self.reads.open_runs_of_job(env.id, job_slug), _cancel)

    async def cancel_event_runs(self, env: EnvironmentInfo, record: EventRecord) -> tuple[list[str], list[str]]:
        """Cancel the runs the event started that have not started executing, as trigger.dev v2 did (one that
        executes or waits goes on); the ids canceled, and those that could not be (they started meanwhile)."""
        rows = await self.reads.runs_of_event(env.id, record.id)
        unstarted = [row.id for row in rows if row.status in NOT_STARTED]
        return await self._cancel_all(env, unstarted, _cancel_if_not_started)

    async def _cancel_all(
        self, env: EnvironmentInfo, run_ids: list[UUID], cancel: Callable[[JobRun], JobRun]
    ) -> tuple[list[str], list[str]]:
        canceled: list[str] = []
        failed: list[str] = []
        for run_id in run_ids:
            run = await self.writer.change(run_id, env.id, cancel)
            (canceled if run.status is RunStatus.CANCELED else failed).append(str(run_id))
        return canceled, failed

    async def continue_run(self, env: EnvironmentInfo, run_id: UUID) -> JobRun:
        """Continue a run that ended without success, or one waiting: it executes again at once."""

        def continue_(run: JobRun) -> JobRun:
            run.continue_run(datetime.now(UTC))
            return run

        return await self.writer.change(run_id, env.id, continue_)


def _cancel(run: JobRun) -> JobRun:
    run.cancel("Run canceled")
    return run


def _cancel_if_not_started(run: JobRun) -> JobRun:
    if run.status.value in NOT_STARTED:
        run.cancel("Run canceled")
    return run
