"""Runs: TestJob, invoke, reading a run, and the task API the trigger.dev SDK calls while a job executes."""

from typing import Any, Literal

import msgspec
from litestar import Response, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from app.api.answers import (
    CallbackAccepted,
    CreatedRun,
    Run,
    RunStatuses,
    ServerTask,
    StatusRecord,
    TaskWithCachedTasks,
    TestJobResponse,
)
from app.api.common import BEARER, AnyRequest, Env, Service, errors, parse_instant, parse_run_id
from app.api.requests import json_body
from app.errors import ClientError
from app.service.runs import RunOptions
from domain.runs import validate_tags
from domain.tasks import MAX_CALLBACK_TIMEOUT_SECONDS, TaskSpec

MIN_PRIORITY, MAX_PRIORITY = 0, 10
CACHED_TASKS_VERSION = "2023-09-29"
SERIALIZED_OUTPUT_VERSION = "2023-11-01"


class TestJobBody(msgspec.Struct):
    payload: Any = None
    version: str | None = None
    priority: int | None = None
    tags: list[str] = []


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


@post(
    "/api/v1/jobs/{job_slug:str}/test",
    status_code=202,
    tags=["runs"],
    summary="Start a test run of a job (TestJob)",
    security=BEARER,
    responses=errors(401, 404, 422),
)
async def test_job(
    service: Service, env: Env, job_slug: FromPath[str], data: JSONBody[TestJobBody | None] = None
) -> TestJobResponse:
    body = data or TestJobBody()
    options = run_options(body.priority, body.tags, None)
    created = await service.runs.test(env, job_slug, body.payload, body.version, options)
    return TestJobResponse(str(created.run_id), created.event_id, "QUEUED")


@post(
    "/api/v1/jobs/{job_slug:str}/invoke",
    status_code=200,
    tags=["runs"],
    summary="Invoke a job (Idempotency-Key makes a retry safe)",
    security=BEARER,
    responses=errors(401, 404, 409),
)
async def invoke_job(
    request: AnyRequest, service: Service, env: Env, job_slug: FromPath[str], data: JSONBody[InvokeBody]
) -> CreatedRun:
    given = data.options or InvokeOptions()
    options = run_options(given.priority, given.tags, given.callbackUrl)
    key = request.headers.get("idempotency-key") or None
    if key is not None and len(key) > 200:
        raise ClientError("`Idempotency-Key` is longer than 200 characters")
    return CreatedRun(str(await service.runs.invoke(env, job_slug, data.payload, data.context, options, key)))


@get(
    "/api/v2/runs/{run_id:str}",
    tags=["runs"],
    summary="A run with its tasks and statuses, now or at a past moment",
    security=BEARER,
    responses=errors(401, 404),
)
async def get_run(service: Service, env: Env, run_id: FromPath[str], at: FromQuery[str | None] = None) -> Run:
    """The run with its tasks and statuses; with `at`, as it was at that moment, rebuilt from its events."""
    key = parse_run_id(run_id)
    if at is not None:
        past, row = await service.runs.at(env, key, parse_instant(at, "at"))
        return Run.of(row, past)
    run, current = await service.runs.status(env, key)
    return Run.of(current._mapping, run)


@get(
    "/api/v2/runs/{run_id:str}/statuses",
    tags=["runs"],
    summary="A run's status, output and status records",
    security=BEARER,
    responses=errors(401, 404),
)
async def get_run_statuses(service: Service, env: Env, run_id: FromPath[str]) -> RunStatuses:
    return RunStatuses.of(await service.runs.get(env, parse_run_id(run_id)))


@post(
    "/api/v1/runs/{run_id:str}/tasks",
    status_code=200,
    tags=["tasks"],
    summary="Create a task of a running run, or find it again by its idempotency key",
    security=BEARER,
    responses=errors(401, 404, 409),
)
async def create_task(
    request: AnyRequest, service: Service, env: Env, run_id: FromPath[str], data: JSONBody[CreateTaskBody]
) -> Response[ServerTask | TaskWithCachedTasks]:
    spec = _task_spec(data, request)
    if request.headers.get("trigger-version") != CACHED_TASKS_VERSION:
        return Response(ServerTask.of(await service.tasks.create(env.id, parse_run_id(run_id), spec)))
    cursor = request.headers.get("x-cached-tasks-cursor") or None
    task, page = await service.tasks.create_and_page(env.id, parse_run_id(run_id), spec, cursor)
    answer = TaskWithCachedTasks.of(task, page.tasks if page else None, page.cursor if page else None)
    return Response(answer, headers={"trigger-version": CACHED_TASKS_VERSION})


@post(
    "/api/v1/runs/{run_id:str}/tasks/{task_id:str}/complete",
    status_code=200,
    tags=["tasks"],
    summary="Complete a task with its output",
    security=BEARER,
    responses=errors(401, 404, 409),
)
async def complete_task(
    request: AnyRequest,
    service: Service,
    env: Env,
    run_id: FromPath[str],
    task_id: FromPath[str],
    data: JSONBody[CompleteTaskBody],
) -> ServerTask:
    serialized = request.headers.get("trigger-version") == SERIALIZED_OUTPUT_VERSION
    completed = await service.tasks.complete(
        env.id, parse_run_id(run_id), task_id, data.output, data.properties, serialized
    )
    return ServerTask.of(completed)


@post(
    "/api/v1/runs/{run_id:str}/tasks/{task_id:str}/fail",
    status_code=200,
    tags=["tasks"],
    summary="Fail a task with its error",
    security=BEARER,
    responses=errors(401, 404, 409),
)
async def fail_task(
    service: Service, env: Env, run_id: FromPath[str], task_id: FromPath[str], data: JSONBody[FailTaskBody]
) -> ServerTask:
    error = msgspec.structs.asdict(data.error)
    error = {k: v for k, v in error.items() if v is not None}
    return ServerTask.of(await service.tasks.fail(env.id, parse_run_id(run_id), task_id, error))


@post(
    "/api/v1/runs/{run_id:str}/tasks/{task_id:str}/callback/{secret:str}",
    status_code=200,
    tags=["tasks"],
    summary="Complete a waiting task with the body posted to its secret callback URL (no API key)",
    responses=errors(404, 409),
)
async def task_callback(
    request: AnyRequest, service: Service, run_id: FromPath[str], task_id: FromPath[str], secret: FromPath[str]
) -> CallbackAccepted:
    body = await request.body()
    output = json_body(body) if body else None
    await service.tasks.complete_by_callback(parse_run_id(run_id), task_id, secret, output)
    return CallbackAccepted(True)


@put(
    "/api/v1/runs/{run_id:str}/statuses/{status_id:str}",
    status_code=200,
    tags=["tasks"],
    summary="Create or update a status record of a run",
    security=BEARER,
    responses=errors(401, 404, 409),
)
async def update_status(
    service: Service, env: Env, run_id: FromPath[str], status_id: FromPath[str], data: JSONBody[StatusBody]
) -> StatusRecord:
    if data.state is not None and data.state not in ("loading", "success", "failure"):
        raise ClientError("`state` must be one of loading, success, failure")
    record = await service.tasks.update_status(
        env.id, parse_run_id(run_id), status_id, data.label, data.state, data.data
    )
    return StatusRecord.of(record)


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
        callback_timeout_seconds=_callback_timeout(body.callback),
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


def _callback_timeout(callback: TaskCallback | None) -> float | None:
    seconds = None if callback is None else callback.timeoutInSeconds
    if seconds is not None and seconds > MAX_CALLBACK_TIMEOUT_SECONDS:
        raise ClientError(f"`callback.timeoutInSeconds` must be at most {MAX_CALLBACK_TIMEOUT_SECONDS}")
    return seconds


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
