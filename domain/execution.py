"""How the answer to an EXECUTE_JOB call decides what happens next (the trigger.dev v2 rules)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from domain.status import RunStatus
from domain.times import instant


class Next(Enum):
    COMPLETE = "complete"  # the run ends with `status`
    RETRY_RUN = "retry_run"  # the execution failed: back off and execute again
    RESUME = "resume"  # a task waits: execute again when it is due (`task`)
    RETRY_TASK = "retry_task"  # a task failed and is retried at `retry_at`
    PARALLEL = "parallel"  # several child outcomes at once (`children`)
    YIELD = "yield"  # execute again at once, as a new chunk (io.yield: counted against the yield limit)
    AUTO_YIELD = "auto_yield"  # the SDK ran out of its chunk's time: execute again at `retry_at` or at once
    CANCELED = "canceled"  # the run was canceled meanwhile; nothing more


@dataclass(frozen=True, slots=True)
class TaskRef:
    """The task an answer names: which one, and when it is due (a wait's end), if it says."""

    id: str
    delay_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class CompletedTask:
    """AUTO_YIELD_EXECUTION_WITH_COMPLETED_TASK: the task's body ran; its output (serialized JSON) is recorded
    by the server, as the SDK had no time left to call the complete-task route itself."""

    id: str
    output: Any
    properties: Any = None


@dataclass(frozen=True)
class Outcome:
    next: Next
    status: RunStatus | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    task: TaskRef | None = None
    retry_at: datetime | None = None
    reason: str = ""
    completed_task: "CompletedTask | None" = None  # a task the SDK finished but left to the server to complete
    children: tuple["Outcome", ...] = field(default_factory=tuple)


def complete(status: RunStatus, output: Any = None, error: dict[str, Any] | None = None) -> Outcome:
    return Outcome(Next.COMPLETE, status=status, output=output, error=error)


def from_transport_failure(reason: str, timed_out: bool = False) -> Outcome:
    """No answer: a time-out is a chunk that ran out of time; anything else is retried with backoff."""
    if timed_out:
        return Outcome(Next.YIELD, reason=f"execution timed out: {reason}")
    return Outcome(Next.RETRY_RUN, error={"message": reason, "name": "EndpointUnreachable"})


def from_response(http_status: int, body: Any) -> Outcome:
    if http_status in (408, 504):
        return Outcome(Next.YIELD, reason=f"endpoint answered {http_status}: continuing as a new chunk")
    if http_status >= 500:
        return Outcome(
            Next.RETRY_RUN, error={"message": f"Endpoint responded with {http_status} status code", "name": "Error"}
        )
    if not 200 <= http_status < 300:
        return complete(
            RunStatus.FAILURE, error={"message": f"Endpoint responded with {http_status} status code", "name": "Error"}
        )
    return from_body(body)


def from_body(body: Any) -> Outcome:
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        return invalid_answer("the endpoint's answer is not an execution response")
    reader = _READERS.get(body["status"])
    if reader is None:
        return invalid_answer(f"unknown execution status {body['status']!r}")
    try:
        return reader(body)
    except (KeyError, TypeError, ValueError) as error:
        return invalid_answer(f"malformed {body['status']} answer: {error}")


def _success(body: dict[str, Any]) -> Outcome:
    return complete(RunStatus.SUCCESS, output=body.get("output"))


def _error(body: dict[str, Any]) -> Outcome:
    return Outcome(Next.COMPLETE, status=RunStatus.FAILURE, error=_error_object(body.get("error")), task=_task(body))


def _invalid_payload(body: dict[str, Any]) -> Outcome:
    errors = body.get("errors", [])
    return complete(
        RunStatus.INVALID_PAYLOAD, error={"message": "Invalid payload", "name": "InvalidPayload", "errors": errors}
    )


def _unresolved_auth(body: dict[str, Any]) -> Outcome:
    issues = body.get("issues", {})
    return complete(
        RunStatus.UNRESOLVED_AUTH, error={"message": "Unresolved auth", "name": "UnresolvedAuth", "issues": issues}
    )


def _resume(body: dict[str, Any]) -> Outcome:
    return Outcome(Next.RESUME, task=_required_task(body))


def _retry_task(body: dict[str, Any]) -> Outcome:
    return Outcome(
        Next.RETRY_TASK,
        task=_required_task(body),
        error=_error_object(body.get("error")),
        retry_at=instant(body["retryAt"]),
    )


def _parallel(body: dict[str, Any]) -> Outcome:
    children = tuple(from_body(child) for child in body.get("childErrors", []))
    return Outcome(Next.PARALLEL, task=_required_task(body), children=children)


def _yield(body: dict[str, Any]) -> Outcome:
    return Outcome(Next.YIELD, reason=str(body.get("key", "")))


def _auto_yield(body: dict[str, Any]) -> Outcome:
    return Outcome(Next.AUTO_YIELD, reason=f"auto-yield at {body.get('location', 'unknown')}")


def _auto_yield_with_task(body: dict[str, Any]) -> Outcome:
    if not isinstance(body.get("id"), str):
        raise ValueError("no task id")
    data = body.get("data")
    location = data.get("location", "unknown") if isinstance(data, dict) else "unknown"
    completed = CompletedTask(body["id"], body.get("output"), body.get("properties"))
    return Outcome(Next.AUTO_YIELD, reason=f"auto-yield at {location} with a completed task", completed_task=completed)


def _rate_limited(body: dict[str, Any]) -> Outcome:
    """AUTO_YIELD_RATE_LIMIT: execute again once the endpoint's rate limit resets (`reset`, epoch ms)."""
    reset = body.get("reset")
    if not isinstance(reset, int | float) or isinstance(reset, bool):
        raise ValueError("no numeric reset")
    return Outcome(Next.AUTO_YIELD, reason="rate limited", retry_at=_from_epoch_ms(reset))


def _from_epoch_ms(value: float) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("reset is not a time") from None


def _canceled(body: dict[str, Any]) -> Outcome:
    return Outcome(Next.CANCELED, task=_task(body))


_READERS = {
    "SUCCESS": _success,
    "ERROR": _error,
    "INVALID_PAYLOAD": _invalid_payload,
    "UNRESOLVED_AUTH_ERROR": _unresolved_auth,
    "RESUME_WITH_TASK": _resume,
    "RETRY_WITH_TASK": _retry_task,
    "RESUME_WITH_PARALLEL_TASK": _parallel,
    "YIELD_EXECUTION": _yield,
    "AUTO_YIELD_EXECUTION": _auto_yield,
    "AUTO_YIELD_EXECUTION_WITH_COMPLETED_TASK": _auto_yield_with_task,
    "AUTO_YIELD_RATE_LIMIT": _rate_limited,
    "CANCELED": _canceled,
}


def _task(body: dict[str, Any]) -> TaskRef | None:
    task = body.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("id"), str):
        return None
    delay = task.get("delayUntil")
    return TaskRef(task["id"], instant(delay) if isinstance(delay, str) else None)


def _required_task(body: dict[str, Any]) -> TaskRef:
    task = _task(body)
    if task is None:
        raise ValueError("no task")
    return task


def _error_object(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict) and isinstance(raw.get("message"), str):
        return {k: raw[k] for k in ("message", "name", "stack") if k in raw}
    return {"message": str(raw), "name": "Error"}


def invalid_answer(message: str) -> Outcome:
    return complete(RunStatus.FAILURE, error={"message": message, "name": "InvalidEndpointResponse"})
