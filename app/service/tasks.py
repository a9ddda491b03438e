"""What the trigger.dev SDK asks of a run while its job executes: tasks and status updates."""

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from app.adapters.store import EventStore
from app.errors import NotFound
from app.service.writes import RunWriter
from domain import task_cache
from domain.runs import JobRun
from domain.tasks import Task, TaskSpec


@dataclass(frozen=True, slots=True)
class CachedPage:
    """A page of a run's completed tasks for the SDK's cache, and where the next one starts (None: no more)."""

    tasks: list[dict[str, Any]]
    cursor: str | None


class Tasks:
    def __init__(
        self,
        store: EventStore,
        writer: RunWriter,
        api_url: str,
        secret_key: Callable[[UUID], Awaitable[str]],
        page_bytes: int = task_cache.PAGE_BUDGET_BYTES,
    ) -> None:
        self.store = store
        self.writer = writer
        self.api_url = api_url
        self.secret_key = secret_key
        self.page_bytes = page_bytes

    async def create(self, env_id: UUID, run_id: UUID, spec: TaskSpec) -> Task:
        """The task of this idempotency key: the existing one, or a new one."""
        task, _ = await self.create_and_page(env_id, run_id, spec, None)
        return task

    async def create_and_page(
        self, env_id: UUID, run_id: UUID, spec: TaskSpec, cursor: str | None
    ) -> tuple[Task, CachedPage | None]:
        """`create`, and with a cursor (the SDK's `X-Cached-Tasks-Cursor`) the next page of the run's completed
        tasks from it: the SDK loads them lazily when its EXECUTE_JOB could not carry them all."""
        key = await self.secret_key(env_id)

        def callback_url(task_id: str) -> str:
            secret = callback_secret(key, run_id, task_id)
            return f"{self.api_url}/api/v1/runs/{run_id}/tasks/{task_id}/callback/{secret}"

        def create(run: JobRun) -> tuple[Task, CachedPage | None]:
            task = run.create_task(spec, datetime.now(UTC), callback_url).copy()
            if not cursor:
                return task, None
            tasks, next_cursor = task_cache.page_from(list(run.tasks.values()), cursor, self.page_bytes)
            return task, CachedPage(tasks, next_cursor)

        return await self.writer.change(run_id, env_id, create)

    async def check_callback(self, run_id: UUID, task_id: str, secret: str, env_id: UUID | None = None) -> JobRun:
        """The run whose task this callback URL completes (of the environment `env_id`, when given)."""
        run = await self.store.get(run_id, JobRun)
        if run is None or task_id not in run.tasks or (env_id is not None and run.environment_id != str(env_id)):
            raise NotFound("no such task callback")
        key = await self.secret_key(UUID(run.environment_id))
        if not hmac.compare_digest(secret.encode(), callback_secret(key, run_id, task_id).encode()):
            raise NotFound("no such task callback")
        return run

    async def complete_by_callback(self, run_id: UUID, task_id: str, secret: str, output: Any) -> Task:
        """A task's callback URL was called: its body is the task's output."""
        await self.check_callback(run_id, task_id, secret)
        return await self.complete_waiting(run_id, task_id, output)

    async def complete_waiting(self, run_id: UUID, task_id: str, output: Any) -> Task:
        """Complete a task waiting for its callback (a run waiting for it executes again); one that ended
        already stays as it is."""

        def complete(run: JobRun) -> Task:
            return run.complete_task(task_id, output, None, datetime.now(UTC)).copy()

        return await self.writer.change(run_id, None, complete)

    async def time_out_callback(self, run_id: UUID, task_id: str) -> str:
        """The time a task had to receive its callback is up: it fails unless the callback came."""

        def time_out(run: JobRun) -> bool:
            return run.time_out_callback(task_id, datetime.now(UTC))

        try:
            return "timed out" if await self.writer.change(run_id, None, time_out) else "duplicate"
        except NotFound:
            return "duplicate"

    async def complete(
        self, env_id: UUID, run_id: UUID, task_id: str, output: Any, properties: Any, serialized: bool
    ) -> Task:
        def complete(run: JobRun) -> Task:
            return run.complete_task(_known(run, task_id), output, properties, datetime.now(UTC), serialized).copy()

        return await self.writer.change(run_id, env_id, complete)

    async def fail(self, env_id: UUID, run_id: UUID, task_id: str, error: Any) -> Task:
        def fail(run: JobRun) -> Task:
            return run.fail_task(_known(run, task_id), error, datetime.now(UTC)).copy()

        return await self.writer.change(run_id, env_id, fail)

    async def update_status(
        self, env_id: UUID, run_id: UUID, key: str, label: str | None, state: str | None, data: Any
    ) -> dict[str, Any]:
        def update(run: JobRun) -> dict[str, Any]:
            return dict(run.update_status(key, label, state, data))

        return await self.writer.change(run_id, env_id, update)


def callback_secret(api_key: str, run_id: UUID, task_id: str) -> str:
    return hmac.new(api_key.encode(), f"{run_id}:{task_id}".encode(), hashlib.sha256).hexdigest()[:40]


def _known(run: JobRun, task_id: str) -> str:
    if task_id not in run.tasks:
        raise NotFound(f"task {task_id!r} not found in run {run.id}")
    return task_id
