"""Server-performed tasks are durable work: the PerformTask message is written with the task, a handling that
dies mid-request is done again, and an attempt is recorded once however often it is handled."""

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from app.adapters.messages import ExecuteJobRun, PerformTask
from app.container import Container
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from app.worker.performer import TaskPerformer
from domain.environments import EnvironmentType
from domain.execution import from_body
from domain.fetch_operation import fail
from domain.runs import JobRun
from domain.status import RunStatus
from domain.tasks import TaskSpec, TaskStatus
from tests.helpers import outbox_messages, start_roles, stop_roles, wait_for
from tests.recording_proxy import GatedPeer


async def run_waiting_on_a_fetch(container: Container, url: str) -> tuple[JobRun, str]:
    """A run whose job asked for io.backgroundFetch and is waiting for it, as its execution left it."""
    now = datetime.now(UTC)
    run = JobRun(
        id=uuid4(),
        environment_id=str(uuid4()),
        endpoint_id="endpoint",
        job_slug="job",
        job_version="1.0.0",
        event_record_id=str(uuid4()),
        is_test=True,
    )
    run.start(1, now, timedelta(seconds=30))
    spec = TaskSpec("fetch-key", name="fetch 127.0.0.1/slow", operation="fetch", params={"url": url})
    task = run.create_task(spec, now)
    run.finish(from_body({"status": "RESUME_WITH_TASK", "task": {"id": task.id}}), now, 5, EnvironmentType.DEVELOPMENT)
    await container.service.executions.writer.commit(run)
    return run, task.id


async def completions(container: Container, run: JobRun) -> int:
    return [type(e).__name__ for e in await container.store.load_events(run.id)].count("TaskCompleted")


def performer(container: Container) -> TaskPerformer:
    return TaskPerformer(container.service, container.endpoint_client, container.url_policy)


async def test_a_fetch_cut_short_is_performed_again_and_recorded_once(container: Container) -> None:
    async with GatedPeer() as peer:
        run, task_id = await run_waiting_on_a_fetch(container, f"http://127.0.0.1:{peer.port}/slow")
        # The work item was written in the transaction that created the task.
        (message,) = [m for m in await outbox_messages(container.engine) if isinstance(m, PerformTask)]
        assert message == PerformTask(str(run.id), task_id, 1)

        dying = asyncio.create_task(performer(container).handle(message))
        await wait_for(lambda: asyncio.sleep(0, peer.requests == 1))
        dying.cancel()  # the worker is gone mid-request: nothing was recorded, the message was not done
        await asyncio.gather(dying, return_exceptions=True)
        reloaded = await container.store.get(run.id, JobRun)
        assert reloaded is not None and reloaded.tasks[task_id].status is TaskStatus.RUNNING

        peer.gate.set()
        assert await performer(container).handle(message) == "complete"  # delivered again: performed again
        assert await performer(container).handle(message) == "duplicate"  # and again: nothing more happens
    assert peer.requests == 2
    assert await completions(container, run) == 1
    done = await container.store.get(run.id, JobRun)
    assert done is not None and done.tasks[task_id].output == {"n": 2}
    executions = [m for m in await outbox_messages(container.engine) if isinstance(m, ExecuteJobRun)]
    assert [m.attempt for m in executions] == [2]  # the run waiting on the fetch goes on


async def test_two_handlings_at_once_record_the_attempt_once(container: Container) -> None:
    async with GatedPeer() as peer:
        run, task_id = await run_waiting_on_a_fetch(container, f"http://127.0.0.1:{peer.port}/slow")
        message = PerformTask(str(run.id), task_id, 1)
        both = [asyncio.create_task(performer(container).handle(message)) for _ in range(2)]
        await wait_for(lambda: asyncio.sleep(0, peer.requests == 2))
        peer.gate.set()
        assert sorted(await asyncio.gather(*both)) == ["complete", "duplicate"]
    assert await completions(container, run) == 1


async def test_a_worker_stopped_mid_request_leaves_the_fetch_to_the_next_one(
    container: Container, settings: Settings
) -> None:
    """The real roles: a worker that goes away while its request is in flight (cut off after 0.5 s) never
    finishes the message; the next worker is delivered it again and performs the request again."""
    settings = replace(settings, shutdown_seconds=0.5)
    async with GatedPeer() as peer:
        roles = await start_roles(settings, "relay", "worker")
        run, task_id = await run_waiting_on_a_fetch(container, f"http://127.0.0.1:{peer.port}/slow")
        await wait_for(lambda: asyncio.sleep(0, peer.requests == 1), timeout=30)
        await stop_roles(roles)
        stopped = await container.store.get(run.id, JobRun)
        assert stopped is not None and stopped.tasks[task_id].status is TaskStatus.RUNNING

        peer.gate.set()
        roles = await start_roles(settings, "relay", "worker")
        try:

            async def completed() -> bool:
                again = await container.store.get(run.id, JobRun)
                return again is not None and again.tasks[task_id].status is TaskStatus.COMPLETED

            await wait_for(completed, timeout=60)
        finally:
            await stop_roles(roles)
    assert peer.requests == 2
    assert await completions(container, run) == 1


async def test_continuing_a_run_whose_fetch_failed_performs_the_fetch_again(container: Container) -> None:
    async with GatedPeer() as peer:
        peer.gate.set()
        run, task_id = await run_waiting_on_a_fetch(container, f"http://127.0.0.1:{peer.port}/again")
        assert await container.service.operations.record(run.id, task_id, 1, fail({"message": "Fetch failed"}))

        def give_up(failed: JobRun) -> None:
            failed.complete(RunStatus.FAILURE, error={"message": "Fetch failed"})

        await container.service.executions.writer.change(run.id, None, give_up)
        environment = EnvironmentInfo(UUID(run.environment_id), "test", EnvironmentType.DEVELOPMENT, "key")
        await container.service.control.continue_run(environment, run.id)
        performs = [m for m in await outbox_messages(container.engine) if isinstance(m, PerformTask)]
        assert performs == [PerformTask(str(run.id), task_id, 1)] * 2  # the first is still there: never handled
        assert await performer(container).handle(performs[-1]) == "complete"
    assert peer.requests == 1
    done = await container.store.get(run.id, JobRun)
    assert done is not None and done.tasks[task_id].status is TaskStatus.COMPLETED
