"""The write side: registering endpoints, recording events and creating their runs."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

from sqlalchemy import text

from app.endpoint_client import EndpointClient, EndpointError
from app.environments import EnvironmentInfo
from app.errors import Conflict, NotFound, Unprocessable
from app.messages import DeliverEvent, outbox_message
from app.run_writes import execution_outbox
from app.store import ConcurrencyConflict, EventStore, OutboxMessage
from app.ttl_cache import TtlCache
from domain import ids
from domain.endpoints import Endpoint
from domain.event_filter import rule_matches
from domain.event_records import EventRecord, test_event_id
from domain.runs import JobRun
from domain.tasks import iso

_JOB_VERSION = text(
    "SELECT v.job_slug, v.version, v.endpoint_id, v.metadata FROM job_versions v "
    "WHERE v.environment_id = :env AND v.job_slug = :slug "
    "AND v.version = COALESCE(:version, (SELECT latest_version FROM jobs j "
    "WHERE j.environment_id = :env AND j.slug = :slug))"
)
_LATEST_VERSIONS = text(
    "SELECT v.job_slug, v.version, v.endpoint_id, v.metadata FROM jobs j JOIN job_versions v "
    "ON v.environment_id = j.environment_id AND v.job_slug = j.slug AND v.version = j.latest_version "
    "WHERE j.environment_id = :env"
)


@dataclass(frozen=True, slots=True)
class CreatedRun:
    run_id: UUID
    event_id: str


@dataclass(frozen=True, slots=True)
class RunOptions:
    priority: int | None = None
    tags: tuple[str, ...] = ()
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class JobVersion:
    job_slug: str
    version: str
    endpoint_id: str
    metadata: dict[str, Any]

    @property
    def event_name(self) -> str:
        return str((self.metadata.get("event") or {}).get("name") or self.job_slug)

    @property
    def event_source(self) -> str:
        return str((self.metadata.get("event") or {}).get("source") or "trigger.dev")

    @property
    def enabled(self) -> bool:
        return self.metadata.get("enabled", True) is not False

    @property
    def concurrency(self) -> tuple[str | None, int | None]:
        """The concurrency key and limit of this version's runs: its own, or a named group's."""
        limit = self.metadata.get("concurrencyLimit")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            return f"job:{self.job_slug}@{self.version}", limit
        if isinstance(limit, dict) and isinstance(limit.get("id"), str) and isinstance(limit.get("limit"), int):
            return f"group:{limit['id']}", max(1, limit["limit"])
        return None, None

    @property
    def default_priority(self) -> int:
        priority = self.metadata.get("priority", 0)
        return priority if isinstance(priority, int) and not isinstance(priority, bool) else 0

    def triggered_by(self, record: EventRecord) -> bool:
        trigger = self.metadata.get("trigger") or {}
        if trigger.get("type") != "static" or not self.enabled:
            return False
        return rule_matches(trigger.get("rule") or {}, record.name, record.source, record.payload, record.context)


@dataclass(frozen=True, slots=True)
class NewEvent:
    name: str
    payload: Any = None
    context: Any = None
    id: str | None = None
    timestamp: str | None = None
    source: str | None = None
    deliver_at: datetime | None = None


async def register_endpoint(
    store: EventStore, client: EndpointClient, env: EnvironmentInfo, slug: str, url: str
) -> Endpoint:
    try:
        jobs = await client.index(url, env.api_key)
    except EndpointError as error:
        raise Unprocessable(f"could not index endpoint {slug!r}: {error}") from None
    endpoint_id = ids.endpoint_id(str(env.id), slug)
    endpoint = await store.get(endpoint_id, Endpoint)
    if endpoint is None:
        endpoint = Endpoint(id=endpoint_id, environment_id=str(env.id), slug=slug, url=url)
    elif endpoint.url != url:
        endpoint.change_url(url=url)
    endpoint.index(jobs)
    await store.save(endpoint)
    return endpoint


_VersionKey = tuple[EventStore, UUID, str, str, str | None]


async def _load_job_version(key: _VersionKey) -> JobVersion:
    store, env_id, env_slug, job_slug, version = key
    async with store.engine.connect() as conn:
        row = (await conn.execute(_JOB_VERSION, {"env": env_id, "slug": job_slug, "version": version})).first()
    if row is None:
        what = f"version {version!r} of job {job_slug!r}" if version else f"job {job_slug!r}"
        raise NotFound(f"{what} not found in environment {env_slug!r}")
    return JobVersion(row.job_slug, row.version, str(row.endpoint_id), row.metadata)


_versions: TtlCache[_VersionKey, JobVersion] = TtlCache(_load_job_version, ttl_seconds=2.0)


async def job_version(store: EventStore, env: EnvironmentInfo, job_slug: str, version: str | None) -> JobVersion:
    """The job's version (the latest when none is named); cached for a moment per process, since every
    TestJob and invoke asks."""
    return await _versions.get((store, env.id, env.slug, job_slug, version))


async def test_job(
    store: EventStore,
    topic: str,
    env: EnvironmentInfo,
    job_slug: str,
    payload: Any,
    version: str | None,
    options: RunOptions = RunOptions(),
) -> CreatedRun:
    """TestJob: record a test event and create its run, with the run's execution in the outbox."""
    job = await job_version(store, env, job_slug, version)
    for attempt in range(5):
        event_id = test_event_id(job.event_name, _test_epoch_ms((env.id, job.event_name)))
        if attempt == 4:
            # Other processes keep taking the same milliseconds (several APIs testing one job very fast):
            # leave the `test:<name>:<epoch ms>` shape rather than fail the request.
            event_id = f"{event_id}:{uuid4().hex[:12]}"
        record = _record(
            env,
            event_id,
            job.event_name,
            payload if payload is not None else {},
            {},
            job.event_source,
            is_test=True,
        )
        run = _new_run(uuid4(), job, record, options)
        try:
            await _save_new(store, topic, record, [run])
        except ConcurrencyConflict:
            continue  # another process's test event of this job took this id
        return CreatedRun(run.id, record.event_id)
    raise Unprocessable("too many test runs of this job at the same moment; try again")


_last_test_ms: dict[tuple[UUID, str], int] = {}


def _test_epoch_ms(key: tuple[UUID, str]) -> int:
    """The millisecond of a test event id: now, or past the last one this process gave the same event name,
    so that concurrent TestJobs of one job here never collide (ids are `test:<name>:<epoch ms>`)."""
    now = int(time.time() * 1000)
    last = _last_test_ms.get(key, 0)
    ms = now if now > last else last + 1
    if len(_last_test_ms) > 10_000:
        _last_test_ms.clear()
    _last_test_ms[key] = ms
    return ms


async def invoke_job(
    store: EventStore,
    topic: str,
    env: EnvironmentInfo,
    job_slug: str,
    payload: Any,
    context: Any,
    options: RunOptions,
    idempotency_key: str | None,
) -> UUID:
    """Invoke a job directly. An idempotency key names one request in the environment: sent again with the
    same job, payload, context and options it gives back the same run; with anything else it is a conflict."""
    job = await job_version(store, env, job_slug, None)
    if idempotency_key:
        run_id = uuid5(UUID(str(env.id)), f"invoke:{idempotency_key}")
        event_id = f"invoke:{idempotency_key}"
    else:
        run_id, event_id = uuid4(), str(uuid4())
    record = _record(env, event_id, job.event_name, payload, context or {}, "trigger.dev", is_test=False)
    run = _new_run(run_id, job, record, options)
    try:
        await _save_new(store, topic, record, [run])
    except ConcurrencyConflict:
        if not idempotency_key:
            raise
        await _same_invocation(store, idempotency_key, run, record)
    return run_id


async def _same_invocation(store: EventStore, key: str, run: JobRun, record: EventRecord) -> None:
    """Raise Conflict unless the run this key already made is the one `run` and `record` would be."""
    first = await store.get(run.id, JobRun)
    first_record = await store.get(record.id, EventRecord)
    if first is None or first_record is None:
        raise ConcurrencyConflict(f"the first request with Idempotency-Key {key!r} is still being recorded")
    differences = [
        name
        for name, mine, theirs in (
            ("job", run.job_slug, first.job_slug),
            ("payload", record.payload, first_record.payload),
            ("context", record.context, first_record.context),
            ("options.callbackUrl", run.callback_url, first.callback_url),
            ("options.priority", run.priority, first.priority),
            ("options.tags", run.tags, first.tags),
        )
        if mine != theirs
    ]
    if differences:
        raise Conflict(
            f"Idempotency-Key {key!r} was used for another request (its {', '.join(differences)} differed): "
            "send the same request again, or use a new key",
            runId=str(first.id),
        )


async def send_event(store: EventStore, topic: str, env: EnvironmentInfo, event: NewEvent) -> EventRecord:
    """Record an event and create a run for each job it triggers (or schedule that for `deliver_at`).
    The same event id in one environment is recorded once; sending it again returns the first record."""
    now = datetime.now(UTC)
    event_id = event.id or str(uuid4())
    deliver_at = iso(event.deliver_at) if event.deliver_at else None
    record = _record(
        env,
        event_id,
        event.name,
        event.payload,
        event.context,
        event.source or "trigger.dev",
        is_test=False,
        sent_at=event.timestamp or iso(now),
        deliver_at=deliver_at,
    )
    try:
        if event.deliver_at is not None and event.deliver_at > now:
            async with store.transaction() as uow:
                await uow.save(record)
                await uow.enqueue(outbox_message(topic, str(record.id), DeliverEvent(str(record.id)), event.deliver_at))
        else:
            await _save_new(store, topic, record, await _triggered_runs(store, record))
    except ConcurrencyConflict:
        existing = await store.get(record.id, EventRecord)
        if existing is None:
            raise
        return existing
    return record


async def deliver_event(store: EventStore, topic: str, record_id: UUID) -> str:
    """Create the runs of a scheduled event that is now due (unless it was canceled)."""
    record = await store.get(record_id, EventRecord)
    if record is None or not record.pending:
        return "duplicate"
    runs = await _triggered_runs(store, record)
    record.deliver(iso(datetime.now(UTC)))
    try:
        await _save_new(store, topic, record, runs)
    except ConcurrencyConflict:
        return "duplicate"
    return "delivered"


async def cancel_event(store: EventStore, env: EnvironmentInfo, event_id: str) -> EventRecord:
    record = await store.get(ids.event_record_id(str(env.id), event_id), EventRecord)
    if record is None:
        raise NotFound(f"event {event_id!r} not found")
    record.cancel(iso(datetime.now(UTC)))
    await store.save(record)
    return record


async def _triggered_runs(store: EventStore, record: EventRecord) -> list[JobRun]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(_LATEST_VERSIONS, {"env": UUID(record.environment_id)})).all()
    jobs = [JobVersion(r.job_slug, r.version, str(r.endpoint_id), r.metadata) for r in rows]
    return [_new_run(uuid4(), job, record) for job in jobs if job.triggered_by(record)]


def _record(
    env: EnvironmentInfo,
    event_id: str,
    name: str,
    payload: Any,
    context: Any,
    source: str,
    is_test: bool,
    sent_at: str | None = None,
    deliver_at: str | None = None,
) -> EventRecord:
    return EventRecord(
        id=ids.event_record_id(str(env.id), event_id),
        environment_id=str(env.id),
        event_id=event_id,
        name=name,
        payload=payload,
        context=context,
        source=source,
        sent_at=sent_at or iso(datetime.now(UTC)),
        is_test=is_test,
        deliver_at=deliver_at,
    )


def _new_run(run_id: UUID, job: JobVersion, record: EventRecord, options: RunOptions = RunOptions()) -> JobRun:
    concurrency_key, concurrency_limit = job.concurrency
    return JobRun(
        id=run_id,
        environment_id=record.environment_id,
        endpoint_id=job.endpoint_id,
        job_slug=job.job_slug,
        job_version=job.version,
        event_record_id=str(record.id),
        is_test=record.is_test,
        priority=job.default_priority if options.priority is None else options.priority,
        tags=list(options.tags),
        callback_url=options.callback_url,
        concurrency_key=concurrency_key,
        concurrency_limit=concurrency_limit,
    )


async def _save_new(store: EventStore, topic: str, record: EventRecord, runs: list[JobRun]) -> None:
    messages: list[OutboxMessage] = [execution_outbox(topic, run, 1) for run in runs]
    await store.commit([e for aggregate in (record, *runs) for e in aggregate.collect_events()], messages)


def deliver_after(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def rerun(store: EventStore, topic: str, env: EnvironmentInfo, run_id: UUID) -> UUID:
    """A new event (`<original id>:retry:<epoch ms>`, same payload and context) and a new run of the version."""
    original = await store.get(run_id, JobRun)
    if original is None or original.environment_id != str(env.id):
        raise NotFound(f"run {run_id} not found")
    source = await store.get(UUID(original.event_record_id), EventRecord)
    assert source is not None, f"event record of run {run_id} is missing"
    job = await job_version(store, env, original.job_slug, original.job_version)
    event_id = f"{source.event_id}:retry:{int(time.time() * 1000)}"
    record = _record(env, event_id, source.name, source.payload, source.context, source.source, source.is_test)
    run = _new_run(uuid4(), job, record, RunOptions(original.priority, tuple(original.tags), original.callback_url))
    await _save_new(store, topic, record, [run])
    return run.id
