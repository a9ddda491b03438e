"""Health, endpoints and jobs."""

import re

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from app.adapters.health import Readiness
from app.api.answers import (
    Health,
    Job,
    JobList,
    JobVersionInfo,
    JobVersionList,
    JobWithVersions,
    Ready,
    RegisteredEndpoint,
)
from app.api.common import BEARER, Env, Service, errors
from app.errors import ClientError

_SLUG = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$")


class RegisterEndpointBody(msgspec.Struct, forbid_unknown_fields=False):
    id: str
    url: str


@get("/healthz", tags=["health"], summary="Whether the process is up")
async def healthz() -> Health:
    return Health("ok")


@get(
    "/readyz",
    tags=["health"],
    summary="Whether the database and the broker can be reached",
    responses={503: ResponseSpec(Ready, description="Not ready: the checks say which dependency is missing.")},
)
async def readyz(readiness: NamedDependency[Readiness]) -> Response[Ready]:
    checks = await readiness.check()
    ready = all(checks.values())
    return Response(Ready(ready, checks["database"], checks["broker"]), status_code=200 if ready else 503)


@post(
    "/api/v1/endpoints",
    status_code=200,
    tags=["catalog"],
    summary="Register an endpoint and index its jobs",
    security=BEARER,
    responses=errors(401, 422),
)
async def register_endpoint(service: Service, env: Env, data: JSONBody[RegisterEndpointBody]) -> RegisteredEndpoint:
    if not _SLUG.match(data.id):
        raise ClientError("`id` must be 1-100 letters, digits, '.', '_' or '-'")
    return RegisteredEndpoint.of(await service.catalog.register_endpoint(env, data.id, data.url))


@get("/api/v1/jobs", tags=["catalog"], summary="The jobs of the environment", security=BEARER, responses=errors(401))
async def list_jobs(service: Service, env: Env) -> JobList:
    return JobList([Job.of(row) for row in await service.catalog.jobs(env)])


@get(
    "/api/v1/jobs/{job_slug:str}",
    tags=["catalog"],
    summary="A job with its versions",
    security=BEARER,
    responses=errors(401, 404),
)
async def get_job(service: Service, env: Env, job_slug: FromPath[str]) -> JobWithVersions:
    job, versions = await service.catalog.job(env, job_slug)
    return JobWithVersions.with_versions(job, versions)


@get(
    "/api/v1/jobs/{job_slug:str}/versions",
    tags=["catalog"],
    summary="The versions of a job",
    security=BEARER,
    responses=errors(401, 404),
)
async def job_versions(service: Service, env: Env, job_slug: FromPath[str]) -> JobVersionList:
    return JobVersionList([JobVersionInfo.of(row) for row in await service.catalog.versions(env, job_slug)])


HANDLERS = [healthz, readyz, register_endpoint, list_jobs, get_job, job_versions]
