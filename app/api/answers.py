"""What the API answers: one msgspec Struct per shape, camelCase on the wire, each shaped from what the service
returns. Litestar builds the OpenAPI document's response schemas from them.

The trigger.dev v2 SDK parses several answers with the zod schemas of @trigger.dev/core 2.3.18 (named beside
each Struct). A field those mark `.optional()` but not `.nullable()` is left out when absent (msgspec.UNSET),
never sent as null; a `.nullable()` one is always sent, null or not."""

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from litestar.openapi.spec import OpenAPIFormat
from litestar.params import KwargDefinition
from msgspec import UNSET, UnsetType

from domain.event_records import EventRecord
from domain.jobs import is_enabled
from domain.runs import JobRun
from domain.status import RunStatus
from domain.tasks import Task, TaskStatus
from domain.times import iso, iso_or_none

# A time as the API writes it: ISO 8601 in UTC, with a Z (domain.times.iso: to the millisecond).
Instant = Annotated[str, KwargDefinition(format=OpenAPIFormat.DATE_TIME)]


class Answer(msgspec.Struct, rename="camel"):
    """Fields in snake_case here, camelCase on the wire."""


# -- errors ---------------------------------------------------------------------------------------------


class ErrorAnswer(msgspec.Struct):
    """The shape of every error answer. app.api.common.error_response writes it as a dict, since a ClientError
    may carry fields of its own; app.api.http_limits writes its 414 and 431 the same way."""

    message: str
    error: str  # the same message: the trigger.dev SDK reads it from a 4xx answer
    status_code: int
    detail: str
    status: RunStatus | UnsetType = UNSET  # a refused transition: the run's status
    errors: list[Any] | dict[str, Any] | UnsetType = UNSET  # a body that does not match its schema: what does not
    run_id: str | UnsetType = msgspec.field(default=UNSET, name="runId")  # a reused Idempotency-Key: its run
    request_id: str | UnsetType = msgspec.field(default=UNSET, name="requestId")  # a 5xx: the X-Request-ID


# -- health ---------------------------------------------------------------------------------------------


class Health(Answer):
    status: Literal["ok"]


class Ready(Answer):
    ready: bool
    database: bool
    broker: bool


# -- catalog ----------------------------------------------------------------------------------------------


class IndexedJob(Answer):
    id: str
    version: str


class RegisteredEndpoint(Answer):
    id: str
    slug: str
    url: str
    jobs: list[IndexedJob]

    @classmethod
    def of(cls, endpoint: Any) -> "RegisteredEndpoint":
        jobs = [IndexedJob(job["id"], job["version"]) for job in endpoint.jobs]
        return cls(str(endpoint.id), endpoint.slug, endpoint.url, jobs)


class JobVersionInfo(Answer):
    version: str
    endpoint_id: str
    # As the endpoint's index described them (trigger.dev JobMetadata), not checked further.
    event: Any
    trigger: Any
    enabled: bool
    concurrency_limit: Any
    created_at: Instant

    @classmethod
    def of(cls, row: Any) -> "JobVersionInfo":
        metadata = row.metadata
        return cls(
            version=row.version,
            endpoint_id=str(row.endpoint_id),
            event=metadata.get("event"),
            trigger=metadata.get("trigger"),
            enabled=is_enabled(metadata),
            concurrency_limit=metadata.get("concurrencyLimit"),
            created_at=iso(row.created_at),
        )


class Job(Answer):
    id: str
    slug: str
    title: str
    version: str
    event: str
    endpoint_id: str
    created_at: Instant
    updated_at: Instant

    @classmethod
    def of(cls, row: Any) -> "Job":
        return cls(*_job_fields(row))


class JobWithVersions(Job):
    versions: list[JobVersionInfo]

    @classmethod
    def with_versions(cls, row: Any, versions: list[Any]) -> "JobWithVersions":
        return cls(*_job_fields(row), [JobVersionInfo.of(version) for version in versions])


def _job_fields(row: Any) -> tuple[str, str, str, str, str, str, str, str]:
    return (
        row.slug,
        row.slug,
        row.title,
        row.latest_version,
        row.event_name,
        str(row.endpoint_id),
        iso(row.created_at),
        iso(row.updated_at),
    )


class JobList(Answer):
    jobs: list[Job]


class JobVersionList(Answer):
    versions: list[JobVersionInfo]


# -- runs -------------------------------------------------------------------------------------------------


class TestJobResponse(Answer):
    run_id: str
    event_id: str
    status: Literal["QUEUED"]  # a str, not RunStatus.QUEUED: an enum costs the hot route 80 ns to encode


class CreatedRun(Answer):
    """InvokeJobResponseSchema; also what a rerun answers."""

    id: str


class RunState(Answer):
    id: str
    status: RunStatus


class StatusUpdate(Answer):
    """StatusUpdateSchema: every field optional, none nullable."""

    label: str | UnsetType = UNSET
    state: Literal["loading", "success", "failure"] | UnsetType = UNSET
    data: dict[str, Any] | UnsetType = UNSET


class StatusRecord(Answer):
    """JobRunStatusRecordSchema: `state` and `data` are optional, not nullable."""

    key: str
    label: str
    history: list[StatusUpdate]
    state: Literal["loading", "success", "failure"] | UnsetType = UNSET
    data: dict[str, Any] | UnsetType = UNSET

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> "StatusRecord":
        """From a status as JobRun keeps it: a dict holding `state` and `data` only once they were set."""
        return cls(
            record["key"],
            record["label"],
            [StatusUpdate(**update) for update in record["history"]],
            record.get("state", UNSET),
            record.get("data", UNSET),
        )


def _statuses(run: JobRun) -> list[StatusRecord]:
    return [StatusRecord.of(record) for record in run.statuses.values()]


class RunTask(Answer):
    """A task of a run as GetRunSchema lists it (RunTaskSchema, with the details the SDK's TaskSchema adds)."""

    id: str
    name: str
    icon: str | None
    started_at: Instant
    completed_at: Instant | None
    status: TaskStatus
    display_key: str | None
    params: Any
    output: Any
    output_properties: Any
    error: str | None
    parent_id: str | None
    style: dict[str, Any]
    description: str | None
    properties: list[dict[str, Any]] | None
    idempotency_key: str
    attempts: int
    noop: bool

    @classmethod
    def of(cls, task: Task) -> "RunTask":
        return cls(
            id=task.id,
            name=task.name,
            icon=task.icon,
            started_at=iso(task.started_at),
            completed_at=iso_or_none(task.completed_at),
            status=task.status,
            display_key=task.display_key,
            params=task.params,
            output=task.output,
            output_properties=task.output_properties,
            error=None,
            parent_id=task.parent_id,
            style=task.style,
            description=task.description,
            properties=task.properties,
            idempotency_key=task.idempotency_key,
            attempts=task.attempts,
            noop=task.noop,
        )


class Run(Answer):
    """GetRunSchema: `nextCursor` is optional, not nullable; this service gives every task at once."""

    id: str
    status: RunStatus
    started_at: Instant | None
    updated_at: Instant
    completed_at: Instant | None
    output: Any  # the error, for a run that failed
    tasks: list[RunTask]
    statuses: list[StatusRecord]
    next_cursor: str | UnsetType = UNSET

    @classmethod
    def of(cls, row: Mapping[Any, Any], run: JobRun) -> "Run":
        """From the run's row of the run-status read model and the run itself."""
        return cls(
            id=str(row["id"]),
            status=row["status"],
            started_at=iso_or_none(row["started_at"]),
            updated_at=iso(row["updated_at"]),
            completed_at=iso_or_none(row["completed_at"]),
            output=row["error"] if row["error"] is not None else row["output"],
            tasks=[RunTask.of(task) for task in run.tasks.values()],
            statuses=_statuses(run),
        )


class RunOutcome(Answer):
    id: str
    status: RunStatus
    output: Any  # the error, for a run that failed


class RunStatuses(Answer):
    """GetRunStatusesSchema."""

    run: RunOutcome
    statuses: list[StatusRecord]

    @classmethod
    def of(cls, run: JobRun) -> "RunStatuses":
        output = run.error if run.error is not None else run.output
        return cls(RunOutcome(str(run.id), run.status, output), _statuses(run))


class RunSummary(Answer):
    id: str
    job_slug: str
    version: str
    status: RunStatus
    started_at: Instant | None
    updated_at: Instant
    completed_at: Instant | None
    tags: list[str]
    priority: int
    is_test: bool

    @classmethod
    def of(cls, row: Any) -> "RunSummary":
        return cls(
            id=str(row.id),
            job_slug=row.job_slug,
            version=row.job_version,
            status=row.status,
            started_at=iso_or_none(row.started_at),
            updated_at=iso(row.updated_at),
            completed_at=iso_or_none(row.completed_at),
            tags=row.tags,
            priority=row.priority,
            is_test=row.is_test,
        )


class RunPage(Answer):
    """GetRunsSchema (with more about each run): `nextCursor` is there only when there are more runs."""

    runs: list[RunSummary]
    next_cursor: str | UnsetType = UNSET

    @classmethod
    def of(cls, rows: list[Any], next_cursor: str | None) -> "RunPage":
        return cls([RunSummary.of(row) for row in rows], UNSET if next_cursor is None else next_cursor)


class CanceledRuns(Answer):
    """CancelRunsForJobSchema."""

    cancelled_run_ids: list[str]
    failed_to_cancel_run_ids: list[str]


class RunEvent(Answer):
    version: int
    type: str
    time: Instant  # to the microsecond: usable as `at`
    data: dict[str, Any]


class RunHistory(Answer):
    events: list[RunEvent]

    @classmethod
    def of(cls, history: list[dict[str, Any]]) -> "RunHistory":
        return cls([RunEvent(**event) for event in history])


# -- tasks ------------------------------------------------------------------------------------------------


class ServerTask(Answer):
    """ServerTaskSchema: every field the SDK may lack is nullable, so all are sent."""

    id: str
    idempotency_key: str
    name: str
    noop: bool
    status: TaskStatus
    started_at: Instant
    completed_at: Instant | None
    delay_until: Instant | None
    output: Any
    output_properties: Any
    error: str | None
    attempts: int
    callback_url: str | None
    retry: dict[str, Any] | None
    icon: str | None
    description: str | None
    params: Any
    properties: list[dict[str, Any]] | None
    style: dict[str, Any]
    operation: str | None
    parent_id: str | None
    display_key: str | None

    @classmethod
    def of(cls, task: Task) -> "ServerTask":
        return cls(
            id=task.id,
            idempotency_key=task.idempotency_key,
            name=task.name,
            noop=task.noop,
            status=task.status,
            started_at=iso(task.started_at),
            completed_at=iso_or_none(task.completed_at),
            delay_until=iso_or_none(task.delay_until),
            output=task.output,
            output_properties=task.output_properties,
            error=None,
            attempts=task.attempts,
            callback_url=task.callback_url,
            retry=task.retry,
            icon=task.icon,
            description=task.description,
            params=task.params,
            properties=task.properties,
            style=task.style,
            operation=task.operation,
            parent_id=task.parent_id,
            display_key=task.display_key,
        )


class CachedTask(Answer):
    """CachedTaskSchema: a completed task the SDK keeps so that its job replays past it."""

    id: str
    idempotency_key: str
    status: TaskStatus
    noop: bool
    output: Any
    parent_id: str | None


class CachedTasks(Answer):
    """A page of completed tasks; `cursor` (optional, not nullable) is left out after the last page."""

    tasks: list[CachedTask]
    cursor: str | UnsetType = UNSET


class TaskWithCachedTasks(Answer):
    """RunTaskResponseWithCachedTasksBodySchema, for an SDK that sends `trigger-version: 2023-09-29`;
    `cachedTasks` is sent when it also sent a cursor (`X-Cached-Tasks-Cursor`), as trigger.dev did."""

    task: ServerTask
    cached_tasks: CachedTasks | UnsetType = UNSET

    @classmethod
    def of(cls, task: Task, tasks: list[dict[str, Any]] | None, cursor: str | None) -> "TaskWithCachedTasks":
        if tasks is None:
            return cls(ServerTask.of(task))
        page = CachedTasks([msgspec.convert(t, CachedTask) for t in tasks], UNSET if cursor is None else cursor)
        return cls(ServerTask.of(task), page)


class CallbackAccepted(Answer):
    ok: bool


# -- events -----------------------------------------------------------------------------------------------


class EventLog(Answer):
    """ApiEventLogSchema: `context`, `deliverAt`, `deliveredAt` and `cancelledAt` are nullable."""

    id: str
    name: str
    payload: Any
    context: Any
    timestamp: Instant
    deliver_at: Instant | None
    delivered_at: Instant | None
    cancelled_at: Instant | None

    @classmethod
    def of(cls, record: EventRecord) -> "EventLog":
        delivered_at = record.delivered_at if record.deliver_at else record.created_on
        return cls(
            id=record.event_id,
            name=record.name,
            payload=record.payload,
            context=record.context,
            timestamp=iso(record.sent_at),
            deliver_at=iso_or_none(record.deliver_at),
            delivered_at=iso_or_none(delivered_at),
            cancelled_at=iso_or_none(record.cancelled_at),
        )


class EventRun(Answer):
    id: str
    status: RunStatus
    started_at: Instant | None
    completed_at: Instant | None


class EventWithRuns(Answer):
    """GetEventSchema."""

    id: str
    name: str
    created_at: Instant
    updated_at: Instant
    runs: list[EventRun]

    @classmethod
    def of(cls, record: EventRecord, runs: list[Any]) -> "EventWithRuns":
        return cls(
            id=record.event_id,
            name=record.name,
            created_at=iso(record.created_on),
            updated_at=iso(record.modified_on),
            runs=[EventRun(str(r.id), r.status, iso_or_none(r.started_at), iso_or_none(r.completed_at)) for r in runs],
        )


# -- key-value store --------------------------------------------------------------------------------------


class StoreGot(Answer):
    """KeyValueStoreResponseBodySchema, GET: `value` (the stored text) is left out when the key has none."""

    action: Literal["GET"]
    key: str
    value: str | UnsetType = UNSET


class StoreSet(Answer):
    """KeyValueStoreResponseBodySchema, SET: the value now stored."""

    action: Literal["SET"]
    key: str
    value: str


class StoreDeleted(Answer):
    """KeyValueStoreResponseBodySchema, DELETE: whether there was a value to delete."""

    action: Literal["DELETE"]
    key: str
    deleted: bool


# -- event dispatchers ------------------------------------------------------------------------------------


class RegisteredDispatcher(Answer):
    """EphemeralEventDispatcherResponseBodySchema."""

    id: str
