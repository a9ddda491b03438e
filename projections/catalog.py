"""Environments, endpoints, jobs and job versions, projected from Environment and Endpoint events."""

from collections.abc import Iterator
from typing import Any

from domain.endpoints import Endpoint
from domain.environments import Environment
from projections import tables
from projections.changes import Change, Kind, as_uuid

# Every event class `changes` matches (tests/unit/test_projector_events.py checks): the others skip it.
EVENTS = (
    Environment.EnvironmentCreated,
    Environment.ApiKeyRevoked,
    Environment.ApiKeyRotated,
    Endpoint.EndpointRegistered,
    Endpoint.EndpointUrlChanged,
    Endpoint.EndpointIndexed,
    Endpoint.JobDeleted,
)


def changes(event: Any) -> Iterator[Change]:
    at = event.timestamp
    match event:
        case Environment.EnvironmentCreated():
            yield Change(
                tables.environments,
                {"id": event.originator_id},
                {"slug": event.slug, "type": event.type, "api_key_hash": event.api_key_hash, "updated_at": at},
                Kind.UPSERT,
                fill={"created_at": at},
            )
        case Environment.ApiKeyRevoked():
            yield Change(tables.environments, {"id": event.originator_id}, {"api_key_hash": None, "updated_at": at})
        case Environment.ApiKeyRotated():
            yield Change(
                tables.environments,
                {"id": event.originator_id},
                {"api_key_hash": event.api_key_hash, "updated_at": at},
            )
        case Endpoint.EndpointRegistered():
            yield Change(
                tables.endpoints,
                {"id": event.originator_id},
                {
                    "environment_id": as_uuid(event.environment_id),
                    "slug": event.slug,
                    "url": event.url,
                    "updated_at": at,
                },
                Kind.UPSERT,
                fill={"created_at": at},
            )
        case Endpoint.EndpointUrlChanged():
            yield Change(tables.endpoints, {"id": event.originator_id}, {"url": event.url, "updated_at": at})
        case Endpoint.EndpointIndexed():
            yield Change(tables.endpoints, {"id": event.originator_id}, {"indexed_at": at, "updated_at": at})
            yield from _job_changes(event, at)
        case Endpoint.JobDeleted():
            yield Change(
                tables.jobs,
                {"environment_id": as_uuid(event.environment_id), "slug": event.job_slug},
                {"deleted_at": at, "updated_at": at},
            )


def _job_changes(event: Any, at: Any) -> Iterator[Change]:
    environment_id = as_uuid(event.environment_id)
    for job in event.jobs:
        slug, version = job["id"], job["version"]
        yield Change(
            tables.jobs,
            {"environment_id": environment_id, "slug": slug},
            {
                "title": job.get("name") or slug,
                "endpoint_id": event.originator_id,
                "latest_version": version,
                "event_name": job.get("event", {}).get("name", ""),
                "updated_at": at,
                "deleted_at": None,
            },
            Kind.UPSERT,
            fill={"created_at": at},
        )
        yield Change(
            tables.job_versions,
            {"environment_id": environment_id, "job_slug": slug, "version": version},
            {"endpoint_id": event.originator_id, "metadata": job, "updated_at": at},
            Kind.UPSERT,
            fill={"created_at": at},
        )
