"""Writers that submit and advance runs through the event store while a rebuild runs: in the test's process,
or as a process of their own (`python -m tests.rebuild_writers DATABASE_URL STOP_FILE`, which prints one JSON
line with every run's last status and the errors it met)."""

import asyncio
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

from app.adapters.store import EventStore
from app.container import Container
from app.settings import Settings
from domain.runs import JobRun
from domain.status import RunStatus


def new_run() -> JobRun:
    return JobRun(
        id=uuid4(),
        environment_id=str(uuid4()),
        endpoint_id=str(uuid4()),
        job_slug="rebuilt",
        job_version="1.0.0",
        event_record_id=str(uuid4()),
        is_test=True,
        tags=["rebuild"],
    )


async def advance(store: EventStore, runs: dict[UUID, str]) -> None:
    """One round: a new run, and each earlier one a step further (QUEUED -> EXECUTING -> SUCCESS)."""
    run = new_run()
    await store.save(run)
    runs[run.id] = RunStatus.QUEUED.value
    for run_id, status in list(runs.items()):
        if status == RunStatus.SUCCESS.value:
            continue
        loaded = await store.get(run_id, JobRun)
        assert loaded is not None
        if status == RunStatus.QUEUED.value:
            loaded.start(1, datetime.now(UTC), timedelta(seconds=60))
        else:
            loaded.complete(RunStatus.SUCCESS, {"run": str(run_id)})
        await store.save(loaded)
        runs[run_id] = loaded.status.value


async def write_until(store: EventStore, done: "asyncio.Event", runs: dict[UUID, str]) -> int:
    rounds = 0
    while not done.is_set():
        await advance(store, runs)
        rounds += 1
        await asyncio.sleep(0)
    return rounds


def _stopped(stop_file: Path) -> bool:
    return stop_file.exists()


async def _main(database_url: str, stop_file: Path) -> None:
    container = Container.create(replace(Settings(), database_url=database_url, db_pool_size=2))
    runs: dict[UUID, str] = {}
    errors: list[str] = []
    rounds = 0
    try:
        while not _stopped(stop_file):
            try:
                await advance(container.store, runs)
                rounds += 1
                print(json.dumps({"rounds": rounds}), flush=True)
            except Exception as error:  # recorded: the test asserts there were none
                errors.append(f"{type(error).__name__}: {error}")
    finally:
        await container.close()
    print(json.dumps({"runs": {str(k): v for k, v in runs.items()}, "errors": errors, "rounds": rounds}), flush=True)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], Path(sys.argv[2])))
