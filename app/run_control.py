"""Operators' controls over runs: cancel, continue, rerun."""

from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import text

from app import commands
from app.environments import EnvironmentInfo
from app.run_writes import change_run
from app.store import EventStore
from domain.runs import JobRun
from domain.status import TERMINAL

_OPEN_RUNS_OF_JOB = text(
    "SELECT id FROM run_status WHERE environment_id = :env AND job_slug = :job AND NOT (status = ANY(:terminal))"
)


class RunControl:
    def __init__(self, store: EventStore, topic: str) -> None:
        self.store = store
        self.topic = topic

    async def cancel(self, env: EnvironmentInfo, run_id: UUID) -> JobRun:
        """Cancel a run that has not ended: its open tasks are canceled and its queued executions withdrawn;
        an execution in flight finds the run canceled when it returns and records nothing."""

        def cancel(run: JobRun) -> JobRun:
            run.cancel("Run canceled")
            return run

        return await change_run(self.store, self.topic, run_id, env.id, cancel)

    async def cancel_job_runs(self, env: EnvironmentInfo, job_slug: str) -> tuple[list[str], list[str]]:
        async with self.store.engine.connect() as conn:
            params = {"env": env.id, "job": job_slug, "terminal": [s.value for s in TERMINAL]}
            run_ids = (await conn.execute(_OPEN_RUNS_OF_JOB, params)).scalars().all()
        canceled: list[str] = []
        failed: list[str] = []
        for run_id in run_ids:
            run = await self.cancel(env, run_id)
            (canceled if run.status.value == "CANCELED" else failed).append(str(run_id))
        return canceled, failed

    async def continue_run(self, env: EnvironmentInfo, run_id: UUID) -> JobRun:
        def continue_(run: JobRun) -> JobRun:
            run.continue_run(datetime.now(UTC))
            return run

        return await change_run(self.store, self.topic, run_id, env.id, continue_)

    async def rerun(self, env: EnvironmentInfo, run_id: UUID) -> UUID:
        return await commands.rerun(self.store, self.topic, env, run_id)
