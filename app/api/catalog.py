"""Health, endpoints and jobs."""

import asyncio
import re
from typing import Any

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import text

from app import commands
from app.api.common import AnyRequest, container_of
from app.container import Container
from app.environments import EnvironmentInfo
from app.errors import ClientError, NotFound
from domain.tasks import iso_or_none as iso

_SLUG = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$")


class RegisterEndpointBody(msgspec.Struct, forbid_unknown_fields=False):
    id: str
    url: str


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz")
async def readyz(request: AnyRequest) -> Response[dict[str, Any]]:
    container = container_of(request)
    checks = {"database": await _database_ok(container), "broker": await _broker_ok(container)}
    ready = all(checks.values())
    return Response({"ready": ready, **checks}, status_code=200 if ready else 503)


async def _database_ok(container: Container) -> bool:
    try:
        async with asyncio.timeout(2):
            async with container.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def _broker_ok(container: Container) -> bool:
    for server in container.settings.required_kafka.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(2):
                _, writer = await asyncio.open_connection(host or "localhost", int(port))
            writer.close()
            return True
        except (OSError, TimeoutError, ValueError):
            continue
    return False


@post("/api/v1/endpoints", status_code=200)
async def register_endpoint(
    request: AnyRequest, data: JSONBody[RegisterEndpointBody], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    if not _SLUG.match(data.id):
        raise ClientError("`id` must be 1-100 letters, digits, '.', '_' or '-'")
    await container_of(request).url_policy.check(data.url, "url")
    container = container_of(request)
    endpoint = await commands.register_endpoint(container.store, container.endpoint_client, env, data.id, data.url)
    return {
        "id": str(endpoint.id),
        "slug": endpoint.slug,
        "url": endpoint.url,
        "jobs": [{"id": job["id"], "version": job["version"]} for job in endpoint.jobs],
    }


_JOBS = text(
    "SELECT slug, title, latest_version, event_name, endpoint_id, created_at, updated_at FROM jobs "
    "WHERE environment_id = :env ORDER BY slug"
)
_JOB = text(
    "SELECT slug, title, latest_version, event_name, endpoint_id, created_at, updated_at FROM jobs "
    "WHERE environment_id = :env AND slug = :slug"
)
_VERSIONS = text(
    "SELECT version, endpoint_id, metadata, created_at, updated_at FROM job_versions "
    "WHERE environment_id = :env AND job_slug = :slug ORDER BY created_at DESC, version DESC"
)


def _job_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.slug,
        "slug": row.slug,
        "title": row.title,
        "version": row.latest_version,
        "event": row.event_name,
        "endpointId": str(row.endpoint_id),
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


@get("/api/v1/jobs")
async def list_jobs(request: AnyRequest, env: NamedDependency[EnvironmentInfo]) -> dict[str, Any]:
    async with container_of(request).engine.connect() as conn:
        rows = (await conn.execute(_JOBS, {"env": env.id})).all()
    return {"jobs": [_job_view(row) for row in rows]}


@get("/api/v1/jobs/{job_slug:str}")
async def get_job(
    request: AnyRequest, job_slug: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    async with container_of(request).engine.connect() as conn:
        row = (await conn.execute(_JOB, {"env": env.id, "slug": job_slug})).first()
        if row is None:
            raise NotFound(f"job {job_slug!r} not found")
        versions = (await conn.execute(_VERSIONS, {"env": env.id, "slug": job_slug})).all()
    return {**_job_view(row), "versions": [_version_view(v) for v in versions]}


@get("/api/v1/jobs/{job_slug:str}/versions")
async def job_versions(
    request: AnyRequest, job_slug: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    async with container_of(request).engine.connect() as conn:
        versions = (await conn.execute(_VERSIONS, {"env": env.id, "slug": job_slug})).all()
    if not versions:
        raise NotFound(f"job {job_slug!r} not found")
    return {"versions": [_version_view(v) for v in versions]}


def _version_view(row: Any) -> dict[str, Any]:
    metadata = row.metadata
    return {
        "version": row.version,
        "endpointId": str(row.endpoint_id),
        "event": metadata.get("event"),
        "trigger": metadata.get("trigger"),
        "enabled": metadata.get("enabled", True),
        "concurrencyLimit": metadata.get("concurrencyLimit"),
        "createdAt": iso(row.created_at),
    }


HANDLERS = [healthz, readyz, register_endpoint, list_jobs, get_job, job_versions]
