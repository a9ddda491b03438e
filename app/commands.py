"""The write side: registering endpoints and creating runs, each in one transaction."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import text

from app.endpoint_client import EndpointClient, EndpointError
from app.environments import EnvironmentInfo
from app.errors import NotFound, Unprocessable
from app.messages import ExecuteJobRun, encode_message
from app.store import ConcurrencyConflict, EventStore, OutboxMessage
from domain import ids
from domain.endpoints import Endpoint
from domain.event_records import EventRecord, test_event_id
from domain.runs import JobRun

_JOB_VERSION = text(
    "SELECT v.version, v.endpoint_id, v.metadata FROM job_versions v "
    "WHERE v.environment_id = :env AND v.job_slug = :slug "
    "AND v.version = COALESCE(:version, (SELECT latest_version FROM jobs j "
    "WHERE j.environment_id = :env AND j.slug = :slug))"
)


@dataclass(frozen=True, slots=True)
class CreatedRun:
    run_id: UUID
    event_id: str


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


async def test_job(
    store: EventStore, topic: str, env: EnvironmentInfo, job_slug: str, payload: Any, version: str | None
) -> CreatedRun:
    """TestJob: record a test event and create its run, with the run's execution in the outbox."""
    async with store.engine.connect() as conn:
        row = (await conn.execute(_JOB_VERSION, {"env": env.id, "slug": job_slug, "version": version})).first()
    if row is None:
        what = f"version {version!r} of job {job_slug!r}" if version else f"job {job_slug!r}"
        raise NotFound(f"{what} not found in environment {env.slug!r}")
    metadata: dict[str, Any] = row.metadata
    event_spec = metadata.get("event") or {}
    event_name = event_spec.get("name") or job_slug
    for offset in range(5):
        event_id = test_event_id(event_name, int(time.time() * 1000) + offset)
        try:
            return await _create_run(
                store,
                topic,
                env,
                job_slug,
                row.version,
                str(row.endpoint_id),
                event_id,
                event_name,
                payload if payload is not None else {},
                event_spec.get("source") or "trigger.dev",
            )
        except ConcurrencyConflict:
            continue  # another test event of this job in the same millisecond took this id
    raise Unprocessable("too many test runs of this job at the same moment; try again")


async def _create_run(
    store: EventStore,
    topic: str,
    env: EnvironmentInfo,
    job_slug: str,
    job_version: str,
    endpoint_id: str,
    event_id: str,
    event_name: str,
    payload: Any,
    source: str,
) -> CreatedRun:
    record = EventRecord(
        id=ids.event_record_id(str(env.id), event_id),
        environment_id=str(env.id),
        event_id=event_id,
        name=event_name,
        payload=payload,
        context={},
        source=source,
        sent_at=_now_iso(),
        is_test=True,
    )
    run = JobRun(
        id=uuid4(),
        environment_id=str(env.id),
        endpoint_id=endpoint_id,
        job_slug=job_slug,
        job_version=job_version,
        event_record_id=str(record.id),
        is_test=True,
    )
    message = ExecuteJobRun(
        run_id=str(run.id),
        event_record_id=str(record.id),
        job_slug=job_slug,
        job_version=job_version,
        attempt=1,
        priority=run.priority,
        tags=run.tags,
    )
    async with store.transaction() as uow:
        await uow.save(record, run)
        await uow.enqueue(OutboxMessage(topic, str(run.id), encode_message(message), {"type": "ExecuteJobRun"}))
    return CreatedRun(run.id, event_id)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
