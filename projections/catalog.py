"""Environments, endpoints, jobs and job versions, projected from Environment and Endpoint events."""

from collections.abc import Sequence
from typing import Any

from domain.endpoints import Endpoint
from domain.environments import Environment
from projections import tables
from projections.changes import Change, Handler, Kind, Projector, as_uuid


def _environment_created(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (
        Change(
            tables.environments,
            {"id": event.originator_id},
            {"slug": event.slug, "type": event.type, "api_key_hash": event.api_key_hash, "updated_at": at},
            Kind.UPSERT,
            fill={"created_at": at},
        ),
    )


def _key_revoked(event: Any) -> Sequence[Change]:
    return (
        Change(tables.environments, {"id": event.originator_id}, {"api_key_hash": None, "updated_at": event.timestamp}),
    )


def _key_rotated(event: Any) -> Sequence[Change]:
    return (
        Change(
            tables.environments,
            {"id": event.originator_id},
            {"api_key_hash": event.api_key_hash, "updated_at": event.timestamp},
        ),
    )


def _endpoint_registered(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (
        Change(
            tables.endpoints,
            {"id": event.originator_id},
            {"environment_id": as_uuid(event.environment_id), "slug": event.slug, "url": event.url, "updated_at": at},
            Kind.UPSERT,
            fill={"created_at": at},
        ),
    )


def _url_changed(event: Any) -> Sequence[Change]:
    return (Change(tables.endpoints, {"id": event.originator_id}, {"url": event.url, "updated_at": event.timestamp}),)


def _endpoint_indexed(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return [
        Change(tables.endpoints, {"id": event.originator_id}, {"indexed_at": at, "updated_at": at}),
        *_job_changes(event, at),
    ]


def _job_deleted(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (
        Change(
            tables.jobs,
            {"environment_id": as_uuid(event.environment_id), "slug": event.job_slug},
            {"deleted_at": at, "updated_at": at},
        ),
    )


def _job_changes(event: Any, at: Any) -> list[Change]:
    environment_id = as_uuid(event.environment_id)
    changes = []
    for job in event.jobs:
        slug, version = job["id"], job["version"]
        changes.append(
            Change(
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
        )
        changes.append(
            Change(
                tables.job_versions,
                {"environment_id": environment_id, "job_slug": slug, "version": version},
                {"endpoint_id": event.originator_id, "metadata": job, "updated_at": at},
                Kind.UPSERT,
                fill={"created_at": at},
            )
        )
    return changes


# What each event class changes; a class matches the first entry it is (or derives from).
HANDLERS: dict[type, Handler] = {
    Environment.EnvironmentCreated: _environment_created,
    Environment.ApiKeyRevoked: _key_revoked,
    Environment.ApiKeyRotated: _key_rotated,
    Endpoint.EndpointRegistered: _endpoint_registered,
    Endpoint.EndpointUrlChanged: _url_changed,
    Endpoint.EndpointIndexed: _endpoint_indexed,
    Endpoint.JobDeleted: _job_deleted,
}
changes = Projector(HANDLERS)
EVENTS = changes.events
handler_for = changes.handler_for
