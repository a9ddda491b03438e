"""Endpoints and the jobs their indexes describe: registering, the versions runs are made of, and where a
run's endpoint is called."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row

from app.adapters.codec import DomainEvent
from app.adapters.endpoint_client import EndpointClient, EndpointError
from app.adapters.reads import ReadModels
from app.adapters.sealing import Sealer
from app.adapters.store import ConcurrencyConflict, EventStore, OutboxMessage
from app.adapters.ttl_cache import TtlCache
from app.adapters.url_policy import UrlPolicy
from app.errors import Conflict, NotFound, Unprocessable
from app.service.environments import EnvironmentInfo
from domain import ids
from domain.endpoints import Endpoint
from domain.environments import EnvironmentType
from domain.jobs import JobVersion, is_enabled

CACHE_SECONDS = 2.0  # job versions and endpoint targets: every TestJob and every execution asks
CONFLICT_RETRIES = 8

# What else an index changes, in its transaction (the schedules and queues its jobs declare).
IndexHook = Callable[[Endpoint], Awaitable[tuple[list[DomainEvent], list[OutboxMessage]]]]
# What else deleting a job changes (its schedule stops): given the environment id and the job's slug.
DeleteHook = Callable[[str, str], Awaitable[list[DomainEvent]]]


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how a run's endpoint is called."""

    url: str
    environment_slug: str
    environment_type: EnvironmentType
    api_key: str | None  # None: the environment's key was revoked
    version_enabled: bool


class Catalog:
    def __init__(
        self, store: EventStore, reads: ReadModels, client: EndpointClient, url_policy: UrlPolicy, sealer: Sealer
    ) -> None:
        self.store = store
        self.reads = reads
        self.client = client
        self.url_policy = url_policy
        self.sealer = sealer
        self._versions: TtlCache[tuple[UUID, str, str, str | None], JobVersion] = TtlCache(
            self._load_version, CACHE_SECONDS
        )
        self._targets: TtlCache[tuple[str, str, str], Target | None] = TtlCache(self._load_target, CACHE_SECONDS)
        self.index_hooks: list[IndexHook] = []
        self.delete_hooks: list[DeleteHook] = []

    async def register_endpoint(self, env: EnvironmentInfo, slug: str, url: str) -> Endpoint:
        """Index the endpoint (INDEX_ENDPOINT) and record what it answered."""
        await self.url_policy.check(url, "url")
        try:
            found = await self.client.index(url, env.api_key)
        except EndpointError as error:
            raise Unprocessable(f"could not index endpoint {slug!r}: {error}") from None
        return await self.record_index(env, slug, url, found.jobs, found.dynamic_schedules)

    async def record_index(
        self,
        env: EnvironmentInfo,
        slug: str,
        url: str,
        jobs: list[dict[str, Any]],
        dynamic_schedules: list[str] | None = None,
    ) -> Endpoint:
        """Record the jobs (and DynamicSchedule ids) an index of the endpoint found, with what they declare
        (schedules, queues), in one transaction; read again and redone when another write changed any of it
        first."""
        endpoint_id = ids.endpoint_id(str(env.id), slug)
        for _ in range(CONFLICT_RETRIES):
            endpoint = await self.store.get(endpoint_id, Endpoint)
            if endpoint is None:
                endpoint = Endpoint(id=endpoint_id, environment_id=str(env.id), slug=slug, url=url)
            elif endpoint.url != url:
                endpoint.change_url(url=url)
            endpoint.index(jobs, dynamic_schedules)
            events: list[DomainEvent] = list(endpoint.collect_events())
            messages: list[OutboxMessage] = []
            for hook in self.index_hooks:
                more_events, more_messages = await hook(endpoint)
                events += more_events
                messages += more_messages
            try:
                await self.store.commit(events, messages)
            except ConcurrencyConflict:
                continue
            self._versions.clear()
            return endpoint
        raise ConcurrencyConflict(f"endpoint {slug!r} kept changing under this index")

    async def delete_job(self, env: EnvironmentInfo, job_slug: str) -> datetime:
        """Delete the job as trigger.dev did: only once its latest version is disabled; its runs stay, no new one
        starts, and it comes back only when an index names it enabled again. Returns when it was deleted."""
        for _ in range(CONFLICT_RETRIES):
            job = await self.reads.job(env.id, job_slug)
            if job is None:
                raise NotFound(f"job {job_slug!r} not found")
            latest = await self.reads.job_version(env.id, job_slug, None)
            if latest is not None and is_enabled(latest.metadata):
                raise Conflict(
                    f"job {job_slug!r} is enabled: disable it first (`enabled: false` in its definition, then index "
                    "its endpoint again), as trigger.dev requires before a job is deleted"
                )
            endpoint = await self.store.get(job.endpoint_id, Endpoint)
            if endpoint is None:
                raise NotFound(f"job {job_slug!r} not found")
            endpoint.delete_job(job_slug)
            events: list[DomainEvent] = list(endpoint.collect_events())
            for hook in self.delete_hooks:
                events += await hook(str(env.id), job_slug)
            try:
                await self.store.commit(events)
            except ConcurrencyConflict:
                continue
            self._versions.clear()
            return datetime.now(UTC)
        raise ConcurrencyConflict(f"job {job_slug!r} kept changing under this request")

    async def job_version(self, env: EnvironmentInfo, job_slug: str, version: str | None) -> JobVersion:
        """The job's version (its latest when none is named)."""
        return await self._versions.get((env.id, env.slug, job_slug, version))

    async def _load_version(self, key: tuple[UUID, str, str, str | None]) -> JobVersion:
        environment_id, environment_slug, job_slug, version = key
        row = await self.reads.job_version(environment_id, job_slug, version)
        if row is None:
            what = f"version {version!r} of job {job_slug!r}" if version else f"job {job_slug!r}"
            raise NotFound(f"{what} not found in environment {environment_slug!r}")
        return _version(row)

    async def latest_versions(self, environment_id: UUID) -> list[JobVersion]:
        return [_version(row) for row in await self.reads.latest_versions(environment_id)]

    async def jobs(self, env: EnvironmentInfo) -> list[Row[Any]]:
        return list(await self.reads.jobs(env.id))

    async def job(self, env: EnvironmentInfo, job_slug: str) -> tuple[Row[Any], list[Row[Any]]]:
        """The job and its versions, newest first."""
        job = await self.reads.job(env.id, job_slug)
        if job is None:
            raise NotFound(f"job {job_slug!r} not found")
        return job, list(await self.reads.job_versions(env.id, job_slug))

    async def versions(self, env: EnvironmentInfo, job_slug: str) -> list[Row[Any]]:
        versions = list(await self.reads.job_versions(env.id, job_slug))
        if not versions:
            raise NotFound(f"job {job_slug!r} not found")
        return versions

    async def target(self, endpoint_id: str, job_slug: str, job_version: str) -> Target | None:
        """Where and how to call a run's endpoint (None: it is gone); kept for a moment, since runs of a job come
        in crowds."""
        key = (endpoint_id, job_slug, job_version)
        target = await self._targets.get(key)
        if target is not None and target.api_key is None:
            # Revoked a moment ago may be rotated in by now, and the run continued: ask again, it is rare.
            target = await self._load_target(key)
        return target

    async def _load_target(self, key: tuple[str, str, str]) -> Target | None:
        endpoint_id, job_slug, job_version = key
        row = await self.reads.endpoint_target(UUID(endpoint_id), job_slug, job_version)
        if row is None:
            return None
        api_key = None if row.sealed_api_key is None else self.sealer.open(row.sealed_api_key)
        enabled = row.metadata is None or is_enabled(row.metadata)
        return Target(row.url, row.slug, EnvironmentType(row.type), api_key, enabled)


def _version(row: Row[Any]) -> JobVersion:
    return JobVersion.from_metadata(row.job_slug, row.version, str(row.endpoint_id), row.metadata)
