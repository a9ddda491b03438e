"""Tasks: the durable steps (io.runTask, io.wait, io.logger, ...) a run records while its job executes.

A task is kept as the ServerTask the trigger.dev v2 SDK reads (camelCase keys, ISO dates).
"""

from datetime import UTC, datetime
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


OPEN: frozenset[TaskStatus] = frozenset({TaskStatus.PENDING, TaskStatus.WAITING, TaskStatus.RUNNING})

_COPIED = ("icon", "description", "params", "properties", "style", "operation", "parentId", "displayKey")


def task_id(run_id: UUID, idempotency_key: str) -> str:
    return str(uuid5(run_id, idempotency_key))


def iso(value: datetime) -> str:
    """An ISO time in UTC with milliseconds and a Z, as the trigger.dev API writes them."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def new_task(
    run_id: UUID, spec: dict[str, Any], now: datetime, run_canceled: bool, callback_url: str | None = None
) -> dict[str, Any]:
    """The task the server creates for a create-task request `spec` (RunTaskBody). A task with its callback
    enabled waits until something POSTs its result to `callback_url`."""
    key = spec["idempotencyKey"]
    delay_until = spec.get("delayUntil")
    callback = spec.get("callback") or {}
    noop = bool(spec.get("noop", False))
    if run_canceled:
        status = TaskStatus.CANCELED
    elif (delay_until is not None and datetime.fromisoformat(delay_until) > now) or callback.get("enabled"):
        status = TaskStatus.WAITING
    elif noop:
        status = TaskStatus.COMPLETED
    else:
        status = TaskStatus.RUNNING
    task: dict[str, Any] = {
        "id": task_id(run_id, key),
        "idempotencyKey": key,
        "name": spec.get("name") or "Task",
        "noop": noop,
        "status": status.value,
        "startedAt": iso(now),
        "completedAt": iso(now) if status is TaskStatus.COMPLETED else None,
        "delayUntil": delay_until,
        "output": None,
        "outputProperties": None,
        "error": None,
        "attempts": 1,
        "callbackUrl": callback_url if callback.get("enabled") else None,
        "retry": spec.get("retry"),
    }
    task.update({name: spec.get(name) for name in _COPIED})
    if task["style"] is None:
        task["style"] = {"style": "normal"}
    return task


def is_open(task: dict[str, Any]) -> bool:
    return TaskStatus(task["status"]) in OPEN


def due(task: dict[str, Any], now: datetime) -> bool:
    """A waiting task whose delay has passed and that resumes when the run next executes."""
    delay_until = task.get("delayUntil")
    return (
        task["status"] == TaskStatus.WAITING and delay_until is not None and datetime.fromisoformat(delay_until) <= now
    )
