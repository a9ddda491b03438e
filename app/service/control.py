"""Operators' controls over runs: cancel (one, or every open run of a job) and continue."""

from datetime import UTC, datetime
from uuid import UUID

from app.adapters.reads import ReadModels
from app.service.environments import EnvironmentInfo
from app.service.writes import RunWriter
from domain.runs import JobRun
from domain.status import RunStatus


class Control:
    def __init__(self, reads: ReadModels, writer: RunWriter) -> None:
        self.reads = reads
        self.writer = writer

    async def cancel(self, env: EnvironmentInfo, run_id: UUID) -> JobRun:
        """Cancel a run that has not ended: its open tasks are canceled and its queued executions withdrawn;
        an execution in flight finds the run canceled when it returns and records nothing."""

        def cancel(run: JobRun) -> JobRun:
            run.cancel("Run canceled")
            return run

        return await self.writer.change(run_id, env.id, cancel)

    async def cancel_job_runs(self, env: EnvironmentInfo, job_slug: str) -> tuple[list[str], list[str]]:
        """Cancel every open run of the job; the ids canceled, and those that could not be."""
        canceled: list[str] = []
        failed: list[str] = []
        for run_id in await self.reads.open_runs_of_job(env.id, job_slug):
            run = await self.cancel(env, run_id)
            (canceled if run.status is RunStatus.CANCELED else failed).append(str(run_id))
        return canceled, failed

    async def continue_run(self, env: EnvironmentInfo, run_id: UUID) -> JobRun:
        """Continue a run that ended without success, or one waiting: it executes again at once."""

        def continue_(run: JobRun) -> JobRun:
            run.continue_run(datetime.now(UTC))
            return run

        return await self.writer.change(run_id, env.id, continue_)
