"""Health, endpoints and jobs."""

import re
from typing import Any

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from app.adapters.health import Readiness
from app.api.common import Env, Service
from app.errors import ClientError
from domain.jobs import is_enabled
from domain.times import iso_or_none as iso

_SLUG = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$")


class RegisterEndpointBody(msgspec.Struct, forbid_unknown_fields=False):
    id: str
    url: str


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz")
async def readyz(readiness: NamedDependency[Readiness]) -> Response[dict[str, Any]]:
    checks = await readiness.check()
    ready = all(checks.values())
    return Response({"ready": ready, **checks}, status_code=200 if ready else 503)


@post("/api/v1/endpoints", status_code=200)
async def register_endpoint(service: Service, env: Env, data: JSONBody[RegisterEndpointBody]) -> dict[str, Any]:
    if not _SLUG.match(data.id):
        raise ClientError("`id` must be 1-100 letters, digits, '.', '_' or '-'")
    endpoint = await service.catalog.register_endpoint(env, data.id, data.url)
    return {
        "id": str(endpoint.id),
        "slug": endpoint.slug,
        "url": endpoint.url,
        "jobs": [{"id": job["id"], "version": job["version"]} for job in endpoint.jobs],
    }


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
async def list_jobs(service: Service, env: Env) -> dict[str, Any]:
    return {"jobs": [_job_view(row) for row in await service.catalog.jobs(env)]}


@get("/api/v1/jobs/{job_slug:str}")
async def get_job(service: Service, env: Env, job_slug: FromPath[str]) -> dict[str, Any]:
    job, versions = await service.catalog.job(env, job_slug)
    return {**_job_view(job), "versions": [_version_view(v) for v in versions]}


@get("/api/v1/jobs/{job_slug:str}/versions")
async def job_versions(service: Service, env: Env, job_slug: FromPath[str]) -> dict[str, Any]:
    return {"versions": [_version_view(v) for v in await service.catalog.versions(env, job_slug)]}


def _version_view(row: Any) -> dict[str, Any]:
    metadata = row.metadata
    return {
        "version": row.version,
        "endpointId": str(row.endpoint_id),
        "event": metadata.get("event"),
        "trigger": metadata.get("trigger"),
        "enabled": is_enabled(metadata),
        "concurrencyLimit": metadata.get("concurrencyLimit"),
        "createdAt": iso(row.created_at),
    }


HANDLERS = [healthz, readyz, register_endpoint, list_jobs, get_job, job_versions]
