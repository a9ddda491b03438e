"""Runs: TestJob, invoke, reading a run, and the task API the trigger.dev SDK calls while a job executes."""

from typing import Any, Literal

import msgspec
from litestar import Response, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from app.api.common import AnyRequest, Env, Service, parse_instant, parse_run_id
from app.api.requests import json_body
from app.errors import ClientError
from app.service.runs import RunOptions
from domain.runs import JobRun, validate_tags
from domain.tasks import Task, TaskSpec
from domain.times import iso_or_none as iso

MIN_PRIORITY, MAX_PRIORITY = 0, 10
CACHED_TASKS_VERSION = "2023-09-29"
SERIALIZED_OUTPUT_VERSION = "2023-11-01"


class TestJobBody(msgspec.Struct):
    payload: Any = None
    version: str | None = None
    priority: int | None = None
    tags: list[str] = []


class TestJobResponse(msgspec.Struct):
    runId: str
    eventId: str
    status: str


class InvokeOptions(msgspec.Struct):
    accountId: str | None = None
    callbackUrl: str | None = None
    priority: int | None = None
    tags: list[str] = []


class InvokeBody(msgspec.Struct):
    payload: Any = None
    context: Any = None
    options: InvokeOptions | None = None


class TaskCallback(msgspec.Struct):
    enabled: bool = False
    timeoutInSeconds: float | None = None


class CreateTaskBody(msgspec.Struct):
    """What the SDK sends to create a task (RunTaskBodyInput); the idempotency key may come as a header."""

    idempotencyKey: str | None = None
    name: str | None = None
    delayUntil: str | None = None
    retry: dict[str, Any] | None = None
    icon: str | None = None
    displayKey: str | None = None
    description: str | None = None
    properties: list[dict[str, Any]] | None = None
    params: Any = None
    style: dict[str, Any] | None = None
    callback: TaskCallback | None = None
    connectionKey: str | None = None
    operation: Literal["fetch", "fetch-response", "fetch-poll"] | None = None
    noop: bool = False
    redact: Any = None
    parallel: bool | None = None
    parentId: str | None = None


class CompleteTaskBody(msgspec.Struct):
    output: Any = None
    properties: Any = None


class TaskError(msgspec.Struct):
    message: str
    name: str | None = None
    stack: str | None = None


class FailTaskBody(msgspec.Struct):
    error: TaskError


class StatusBody(msgspec.Struct):
    label: str | None = None
    state: str | None = None
    data: dict[str, Any] | None = None


def run_options(priority: int | None, tags: list[str], callback_url: str | None) -> RunOptions:
    if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ClientError(f"`priority` must be {MIN_PRIORITY} to {MAX_PRIORITY}")
    try:
        validate_tags(tags)
    except ValueError as error:
        raise ClientError(f"`tags`: {error}") from None
    return RunOptions(priority, tuple(tags), callback_url)


@post("/api/v1/jobs/{job_slug:str}/test", status_code=202)
async def test_job(
    service: Service, env: Env, job_slug: FromPath[str], data: JSONBody[TestJobBody | None] = None
) -> TestJobResponse:
    body = data or TestJobBody()
    options = run_options(body.priority, body.tags, None)
    created = await service.runs.test(env, job_slug, body.payload, body.version, options)
    return TestJobResponse(runId=str(created.run_id), eventId=created.event_id, status="QUEUED")


@post("/api/v1/jobs/{job_slug:str}/invoke", status_code=200)
async def invoke_job(
    request: AnyRequest, service: Service, env: Env, job_slug: FromPath[str], data: JSONBody[InvokeBody]
) -> dict[str, str]:
    given = data.options or InvokeOptions()
    options = run_options(given.priority, given.tags, given.callbackUrl)
    key = request.headers.get("idempotency-key") or None
    if key is not None and len(key) > 200:
        raise ClientError("`Idempotency-Key` is longer than 200 characters")
    run_id = await service.runs.invoke(env, job_slug, data.payload, data.context, options, key)
    return {"id": str(run_id)}


@get("/api/v2/runs/{run_id:str}")
async def get_run(
    service: Service, env: Env, run_id: FromPath[str], at: FromQuery[str | None] = None
) -> dict[str, Any]:
    """The run with its tasks and statuses; with `at`, as it was at that moment, rebuilt from its events."""
    key = parse_run_id(run_id)
    if at is not None:
        past, row = await service.runs.at(env, key, parse_instant(at, "at"))
        return _run_view(row, past)
    run, current = await service.runs.status(env, key)
    return _run_view(current._mapping, run)


def _run_view(row: Any, run: JobRun) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "startedAt": iso(row["started_at"]),
        "updatedAt": iso(row["updated_at"]),
        "completedAt": iso(row["completed_at"]),
        "output": row["error"] if row["error"] is not None else row["output"],
        "tasks": [_task_view(task) for task in run.tasks.values()],
        "statuses": list(run.statuses.values()),
        "nextCursor": None,
    }


@get("/api/v2/runs/{run_id:str}/statuses")
async def get_run_statuses(service: Service, env: Env, run_id: FromPath[str]) -> dict[str, Any]:
    run = await service.runs.get(env, parse_run_id(run_id))
    output = run.error if run.error is not None else run.output
    return {
        "run": {"id": str(run.id), "status": run.status.value, "output": output},
        "statuses": list(run.statuses.values()),
    }


@post("/api/v1/runs/{run_id:str}/tasks", status_code=200)
async def create_task(
    request: AnyRequest, service: Service, env: Env, run_id: FromPath[str], data: JSONBody[CreateTaskBody]
) -> Response[Any]:
    task = server_task(await service.tasks.create(env.id, parse_run_id(run_id), _task_spec(data, request)))
    if request.headers.get("trigger-version") == CACHED_TASKS_VERSION:
        return Response({"task": task}, headers={"trigger-version": CACHED_TASKS_VERSION})
    return Response(task)


@post("/api/v1/runs/{run_id:str}/tasks/{task_id:str}/complete", status_code=200)
async def complete_task(
    request: AnyRequest,
    service: Service,
    env: Env,
    run_id: FromPath[str],
    task_id: FromPath[str],
    data: JSONBody[CompleteTaskBody],
) -> dict[str, Any]:
    serialized = request.headers.get("trigger-version") == SERIALIZED_OUTPUT_VERSION
    completed = await service.tasks.complete(
        env.id, parse_run_id(run_id), task_id, data.output, data.properties, serialized
    )
    return server_task(completed)


@post("/api/v1/runs/{run_id:str}/tasks/{task_id:str}/fail", status_code=200)
async def fail_task(
    service: Service, env: Env, run_id: FromPath[str], task_id: FromPath[str], data: JSONBody[FailTaskBody]
) -> dict[str, Any]:
    error = msgspec.structs.asdict(data.error)
    error = {k: v for k, v in error.items() if v is not None}
    return server_task(await service.tasks.fail(env.id, parse_run_id(run_id), task_id, error))


@post("/api/v1/runs/{run_id:str}/tasks/{task_id:str}/callback/{secret:str}", status_code=200)
async def task_callback(
    request: AnyRequest, service: Service, run_id: FromPath[str], task_id: FromPath[str], secret: FromPath[str]
) -> dict[str, bool]:
    body = await request.body()
    output = json_body(body) if body else None
    await service.tasks.complete_by_callback(parse_run_id(run_id), task_id, secret, output)
    return {"ok": True}


@put("/api/v1/runs/{run_id:str}/statuses/{status_id:str}", status_code=200)
async def update_status(
    service: Service, env: Env, run_id: FromPath[str], status_id: FromPath[str], data: JSONBody[StatusBody]
) -> dict[str, Any]:
    if data.state is not None and data.state not in ("loading", "success", "failure"):
        raise ClientError("`state` must be one of loading, success, failure")
    return await service.tasks.update_status(env.id, parse_run_id(run_id), status_id, data.label, data.state, data.data)


MAX_IDEMPOTENCY_KEY = 512


def _task_spec(body: CreateTaskBody, request: AnyRequest) -> TaskSpec:
    """The task request as the domain takes it."""
    key = body.idempotencyKey or request.headers.get("idempotency-key")
    if not key:
        raise ClientError("`idempotencyKey` is required")
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ClientError(f"`idempotencyKey` is longer than {MAX_IDEMPOTENCY_KEY} characters")
    return TaskSpec(
        idempotency_key=key,
        name=body.name,
        noop=body.noop,
        delay_until=parse_instant(body.delayUntil, "delayUntil") if body.delayUntil is not None else None,
        callback=body.callback is not None and body.callback.enabled,
        retry=body.retry,
        icon=body.icon,
        description=body.description,
        params=body.params,
        properties=body.properties,
        style=body.style,
        operation=body.operation,
        parent_id=body.parentId,
        display_key=body.displayKey,
    )


def server_task(task: Task) -> dict[str, Any]:
    """The task as the SDK reads it (its ServerTask)."""
    return {
        "id": task.id,
        "idempotencyKey": task.idempotency_key,
        "name": task.name,
        "noop": task.noop,
        "status": task.status.value,
        "startedAt": iso(task.started_at),
        "completedAt": iso(task.completed_at),
        "delayUntil": iso(task.delay_until),
        "output": task.output,
        "outputProperties": task.output_properties,
        "error": None,
        "attempts": task.attempts,
        "callbackUrl": task.callback_url,
        "retry": task.retry,
        "icon": task.icon,
        "description": task.description,
        "params": task.params,
        "properties": task.properties,
        "style": task.style,
        "operation": task.operation,
        "parentId": task.parent_id,
        "displayKey": task.display_key,
    }


_VIEWED = (
    "id",
    "name",
    "icon",
    "startedAt",
    "completedAt",
    "status",
    "displayKey",
    "params",
    "output",
    "outputProperties",
    "error",
    "parentId",
    "style",
    "description",
    "properties",
    "idempotencyKey",
    "attempts",
    "noop",
)


def _task_view(task: Task) -> dict[str, Any]:
    shown = server_task(task)
    return {key: shown[key] for key in _VIEWED}


HANDLERS = [
    test_job,
    invoke_job,
    get_run,
    get_run_statuses,
    create_task,
    complete_task,
    fail_task,
    task_callback,
    update_status,
]
