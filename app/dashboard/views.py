"""What a run's page shows, gathered once: the run, its timing, payload and outcome, its tasks as a nested
timeline drawn to scale, its statuses, attempts and retries, and its event history. `render_run_fragment`
renders the part of the page that changes while the run goes on (what a live update replaces)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from app.dashboard.web import render_fragment
from app.errors import NotFound
from app.service import JobsService
from app.service.environments import EnvironmentInfo
from domain.event_records import EventRecord
from domain.runs import JobRun
from domain.status import RunStatus, can_transition, is_terminal
from domain.tasks import Task

SCALE = 1000  # the width of a timeline bar's SVG viewBox
MIN_BAR = 4  # a task too short to see still shows
MAX_DEPTH_CLASS = 4
LIVE_REGION_ID = "run-live"

# The run's events that say how its attempts went, and how each reads.
_ATTEMPT_EVENTS = {
    "RunStarted": "started",
    "RunRetryScheduled": "failed; retry scheduled",
    "RunWaiting": "waits",
    "RunYielded": "yielded",
    "RunAutoYielded": "yielded (time limit)",
    "RunRescued": "rescued (its lease expired)",
    "RunRequeued": "requeued",
    "RunContinued": "continued",
    "RunCanceled": "canceled",
    "RunCompleted": "ended",
}


@dataclass
class TaskRow:
    task: Task
    depth: int
    x: float
    width: float
    seconds: float | None
    children: list["TaskRow"] = field(default_factory=list)

    @property
    def label(self) -> str:
        """What the task is called: its key as the SDK shows it (io.runTask's first argument), else its name."""
        return self.task.display_key or self.task.name

    @property
    def depth_class(self) -> str:
        return f"depth-{min(self.depth, MAX_DEPTH_CLASS)}"


@dataclass
class RunView:
    run: JobRun
    row: Any  # the run's row of the run-status read model
    payload: Any
    event_id: str | None
    tasks: list[TaskRow]  # in order, each after its parent
    attempts: list[dict[str, Any]]
    task_retries: list[dict[str, Any]]
    history: list[dict[str, Any]]
    duration_seconds: float | None

    @property
    def status(self) -> RunStatus:
        return self.run.status

    @property
    def outcome(self) -> Any:
        return self.run.output

    @property
    def can_cancel(self) -> bool:
        return not is_terminal(self.run.status)

    @property
    def can_continue(self) -> bool:
        return can_transition(self.run.status, RunStatus.QUEUED)

    @property
    def is_live(self) -> bool:
        return not is_terminal(self.run.status)


async def run_view(service: JobsService, env: EnvironmentInfo, run_id: UUID) -> RunView:
    """Everything the run page shows; NotFound when the run is not the environment's."""
    run = await service.runs.get(env, run_id)
    row = await service.reads.run(env.id, run_id)
    if row is None:
        raise NotFound(f"run {run_id} not found")
    history = await service.runs.history_of(run_id)
    record = await service.runs.store.get(UUID(run.event_record_id), EventRecord)
    now = datetime.now(UTC)
    started = row.started_at or row.created_at
    ended = row.completed_at
    seconds = (ended - started).total_seconds() if ended and row.started_at else None
    return RunView(
        run=run,
        row=row,
        payload=record.payload if record is not None else None,
        event_id=record.event_id if record is not None else None,
        tasks=timeline(list(run.tasks.values()), started, ended or now),
        attempts=[_attempt(event) for event in history if event["type"] in _ATTEMPT_EVENTS],
        task_retries=_task_retries(history, run.tasks),
        history=history,
        duration_seconds=seconds,
    )


def timeline(tasks: list[Task], start: datetime, end: datetime) -> list[TaskRow]:
    """The tasks nested under their parents (in the order they started), each bar placed on one scale from the
    run's start (or its first task's) to its end (or now)."""
    now = datetime.now(UTC)
    first = min([start, *(task.started_at for task in tasks)])
    last = max([end, *((task.completed_at or now) for task in tasks)])
    span = max((last - first).total_seconds(), 1e-3)
    known = {task.id for task in tasks}
    children: dict[str | None, list[Task]] = {}
    for task in sorted(tasks, key=lambda t: t.started_at):
        parent = task.parent_id if task.parent_id in known else None
        children.setdefault(parent, []).append(task)

    ordered: list[TaskRow] = []

    def visit(parent: str | None, depth: int) -> None:
        for task in children.get(parent, []):
            finish = task.completed_at or now
            x = (task.started_at - first).total_seconds() / span * SCALE
            width = max((finish - task.started_at).total_seconds() / span * SCALE, MIN_BAR)
            seconds = (task.completed_at - task.started_at).total_seconds() if task.completed_at else None
            ordered.append(TaskRow(task, depth, round(min(x, SCALE - MIN_BAR), 2), round(width, 2), seconds))
            visit(task.id, depth + 1)

    visit(None, 0)
    return ordered


def _attempt(event: dict[str, Any]) -> dict[str, Any]:
    data = event["data"]
    detail = ""
    if event["type"] == "RunRetryScheduled":
        detail = f"{_message(data.get('error'))}; retries at {data.get('retry_at')}"
    elif event["type"] == "RunWaiting":
        detail = f"until {data['resume_at']}" if data.get("resume_at") else "for a task"
    elif event["type"] == "RunCompleted":
        detail = str(data.get("status", ""))
    elif event["type"] in ("RunYielded", "RunAutoYielded", "RunRescued", "RunCanceled"):
        detail = str(data.get("reason", ""))
    return {
        "time": event["time"],
        "attempt": data.get("attempt"),
        "what": _ATTEMPT_EVENTS[event["type"]],
        "detail": detail,
        "duration_ms": data.get("duration_ms"),
    }


def _task_retries(history: list[dict[str, Any]], tasks: dict[str, Task]) -> list[dict[str, Any]]:
    retries = []
    for event in history:
        if event["type"] in ("TaskRetryScheduled", "TaskOperationRetryScheduled"):
            data = event["data"]
            task = tasks.get(data.get("task_id", ""))
            reason = _message(data.get("error")) if "error" in data else str(data.get("reason", ""))
            retries.append(
                {
                    "time": event["time"],
                    "task": task.name if task else data.get("task_id"),
                    "reason": reason,
                    "retry_at": data.get("retry_at"),
                }
            )
    return retries


def _message(error: Any) -> str:
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    return "" if error is None else str(error)


async def render_run_fragment(service: JobsService, env: EnvironmentInfo, run_id: UUID, csrf_token: str = "") -> str:
    """The run page's live region (`<section id="run-live">`) as HTML, for a live update to swap in (NotFound when
    the run is not the environment's). Its control forms carry `csrf_token`; rendered without one (once for
    every subscriber), the page's script fills in the page's own token when it swaps the region in."""
    return render_fragment("_run_live.html", view=await run_view(service, env, run_id), csrf_token=csrf_token)
