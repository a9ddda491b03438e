"""Tasks: the durable steps (io.runTask, io.wait, io.logger, ...) a run records while its job executes."""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ERRORED = "ERRORED"
    CANCELED = "CANCELED"


# trigger.dev v2: a task waiting for its callback fails after `callback.timeoutInSeconds` (one hour unless
# given; 0 or less: never), with this output, and the run executes again.
DEFAULT_CALLBACK_TIMEOUT_SECONDS = 3600
MAX_CALLBACK_TIMEOUT_SECONDS = 365 * 24 * 3600
CALLBACK_TIMEOUT_OUTPUT = "Remote callback timeout - no requests received"

OPEN: frozenset[TaskStatus] = frozenset({TaskStatus.PENDING, TaskStatus.WAITING, TaskStatus.RUNNING})
ENDED: frozenset[TaskStatus] = frozenset({TaskStatus.COMPLETED, TaskStatus.ERRORED, TaskStatus.CANCELED})


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What the SDK asks for when it creates a task (its RunTaskBody)."""

    idempotency_key: str
    name: str | None = None
    noop: bool = False
    delay_until: datetime | None = None
    callback: bool = False  # the task waits for a POST to its callback URL
    callback_timeout_seconds: float | None = None  # how long it waits (None: the default, <= 0: for ever)
    retry: dict[str, Any] | None = None
    icon: str | None = None
    description: str | None = None
    params: Any = None
    properties: list[dict[str, Any]] | None = None
    style: dict[str, Any] | None = None
    operation: str | None = None
    parent_id: str | None = None
    display_key: str | None = None


@dataclass(slots=True)
class Task:
    """A task of a run, as the run's events made it (its fields change as the task goes on)."""

    id: str
    idempotency_key: str
    name: str
    noop: bool
    status: TaskStatus
    started_at: datetime
    completed_at: datetime | None = None
    delay_until: datetime | None = None
    output: Any = None
    output_properties: Any = None
    attempts: int = 1
    callback_url: str | None = None
    retry: dict[str, Any] | None = None
    icon: str | None = None
    description: str | None = None
    params: Any = None
    properties: list[dict[str, Any]] | None = None
    style: dict[str, Any] = field(default_factory=lambda: {"style": "normal"})
    operation: str | None = None
    parent_id: str | None = None
    display_key: str | None = None
    callback_timeout_at: datetime | None = None  # when a task waiting for its callback fails

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def has_ended(self) -> bool:
        return self.status in ENDED

    def due(self, now: datetime) -> bool:
        """A waiting task whose delay has passed and that resumes when the run next executes."""
        return self.status is TaskStatus.WAITING and self.delay_until is not None and self.delay_until <= now

    def copy(self) -> "Task":
        return replace(self)


def task_id(run_id: UUID, idempotency_key: str) -> str:
    return str(uuid5(run_id, idempotency_key))


def new_task(run_id: UUID, spec: TaskSpec, now: datetime, run_canceled: bool, callback_url: str | None = None) -> Task:
    """The task the server creates for a create-task request. A task with its callback enabled waits until
    something POSTs its result to `callback_url`."""
    if run_canceled:
        status = TaskStatus.CANCELED
    elif (spec.delay_until is not None and spec.delay_until > now) or spec.callback:
        status = TaskStatus.WAITING
    elif spec.noop:
        status = TaskStatus.COMPLETED
    else:
        status = TaskStatus.RUNNING
    return Task(
        id=task_id(run_id, spec.idempotency_key),
        idempotency_key=spec.idempotency_key,
        name=spec.name or "Task",
        noop=spec.noop,
        status=status,
        started_at=now,
        completed_at=now if status is TaskStatus.COMPLETED else None,
        delay_until=spec.delay_until,
        callback_url=callback_url if spec.callback else None,
        retry=spec.retry,
        icon=spec.icon,
        description=spec.description,
        params=spec.params,
        properties=spec.properties,
        style=spec.style if spec.style is not None else {"style": "normal"},
        operation=spec.operation,
        parent_id=spec.parent_id,
        display_key=spec.display_key,
        callback_timeout_at=_callback_timeout(spec, now) if status is TaskStatus.WAITING else None,
    )


def _callback_timeout(spec: TaskSpec, now: datetime) -> datetime | None:
    if not spec.callback:
        return None
    seconds = spec.callback_timeout_seconds
    if seconds is None:
        seconds = DEFAULT_CALLBACK_TIMEOUT_SECONDS
    if seconds <= 0:
        return None
    return now + timedelta(seconds=min(seconds, MAX_CALLBACK_TIMEOUT_SECONDS))


_RENAMED = {
    "idempotencyKey": "idempotency_key",
    "startedAt": "started_at",
    "completedAt": "completed_at",
    "delayUntil": "delay_until",
    "outputProperties": "output_properties",
    "callbackUrl": "callback_url",
    "parentId": "parent_id",
    "displayKey": "display_key",
}


def task_from_v1(stored: dict[str, Any]) -> dict[str, Any]:
    """A task as the first version of TaskStarted kept it (the SDK's camelCase keys) in today's shape."""
    task = {_RENAMED.get(key, key): value for key, value in stored.items() if key != "error"}
    if task.get("style") is None:
        task["style"] = {"style": "normal"}
    return task
