"""The HTTP API (Litestar): trigger.dev v2 paths, scoped to the environment of the caller's API key."""

import asyncio
import logging
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath, JSONBody
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import commands
from app.container import Container
from app.environments import EnvironmentInfo
from app.errors import ClientError, NotFound

log = logging.getLogger(__name__)

_SLUG = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$")


class RegisterEndpointBody(msgspec.Struct, forbid_unknown_fields=False):
    id: str
    url: str


class TestJobBody(msgspec.Struct):
    payload: Any = None
    version: str | None = None


class TestJobResponse(msgspec.Struct):
    runId: str
    eventId: str
    status: str


def _container(request: Request[Any, Any, State]) -> Container:
    container: Container = request.app.state.container
    return container


async def _environment(request: Request[Any, Any, State]) -> EnvironmentInfo:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HTTPException(status_code=401, detail="missing API key: send `Authorization: Bearer <key>`")
    env = await _container(request).authenticator.authenticate(key.strip())
    if env is None:
        raise HTTPException(status_code=401, detail="invalid API key")
    return env


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz")
async def readyz(request: Request[Any, Any, State]) -> Response[dict[str, Any]]:
    container = _container(request)
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
    request: Request[Any, Any, State], data: JSONBody[RegisterEndpointBody], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    if not _SLUG.match(data.id):
        raise ClientError("`id` must be 1-100 letters, digits, '.', '_' or '-'")
    parts = urlsplit(data.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError("`url` must be an http(s) URL with a host")
    container = _container(request)
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
_RUN = text(
    "SELECT id, status, started_at, updated_at, completed_at, output, error FROM run_status "
    "WHERE id = :id AND environment_id = :env"
)


def _job_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.slug,
        "slug": row.slug,
        "title": row.title,
        "version": row.latest_version,
        "event": row.event_name,
        "endpointId": str(row.endpoint_id),
        "createdAt": _iso(row.created_at),
        "updatedAt": _iso(row.updated_at),
    }


@get("/api/v1/jobs")
async def list_jobs(request: Request[Any, Any, State], env: NamedDependency[EnvironmentInfo]) -> dict[str, Any]:
    async with _container(request).engine.connect() as conn:
        rows = (await conn.execute(_JOBS, {"env": env.id})).all()
    return {"jobs": [_job_view(row) for row in rows]}


@get("/api/v1/jobs/{job_slug:str}")
async def get_job(
    request: Request[Any, Any, State], job_slug: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    async with _container(request).engine.connect() as conn:
        row = (await conn.execute(_JOB, {"env": env.id, "slug": job_slug})).first()
        if row is None:
            raise NotFound(f"job {job_slug!r} not found")
        versions = (await conn.execute(_VERSIONS, {"env": env.id, "slug": job_slug})).all()
    return {**_job_view(row), "versions": [_version_view(v) for v in versions]}


@get("/api/v1/jobs/{job_slug:str}/versions")
async def job_versions(
    request: Request[Any, Any, State], job_slug: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    async with _container(request).engine.connect() as conn:
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
        "createdAt": _iso(row.created_at),
    }


@post("/api/v1/jobs/{job_slug:str}/test", status_code=202)
async def test_job(
    request: Request[Any, Any, State],
    job_slug: FromPath[str],
    env: NamedDependency[EnvironmentInfo],
    data: JSONBody[TestJobBody | None] = None,
) -> TestJobResponse:
    body = data or TestJobBody()
    container = _container(request)
    created = await commands.test_job(
        container.store, container.settings.execution_topic, env, job_slug, body.payload, body.version
    )
    return TestJobResponse(runId=str(created.run_id), eventId=created.event_id, status="QUEUED")


@get("/api/v2/runs/{run_id:str}")
async def get_run(
    request: Request[Any, Any, State], run_id: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    try:
        key = UUID(run_id)
    except ValueError:
        raise NotFound(f"run {run_id!r} not found") from None
    async with _container(request).engine.connect() as conn:
        row = (await conn.execute(_RUN, {"id": key, "env": env.id})).first()
    if row is None:
        raise NotFound(f"run {run_id!r} not found")
    return {
        "id": str(row.id),
        "status": row.status,
        "startedAt": _iso(row.started_at),
        "updatedAt": _iso(row.updated_at),
        "completedAt": _iso(row.completed_at),
        "output": row.error if row.error is not None else row.output,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _error(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response({"message": message, **extra}, status_code=status)


def _client_error(_: Request[Any, Any, State], error: ClientError) -> Response[dict[str, Any]]:
    return _error(error.status_code, error.message, **error.extra)


def _validation_error(_: Request[Any, Any, State], error: ValidationException) -> Response[dict[str, Any]]:
    detail = error.detail or "invalid request"
    return _error(400, detail, errors=error.extra or [])


def _http_error(_: Request[Any, Any, State], error: HTTPException) -> Response[dict[str, Any]]:
    return _error(error.status_code, error.detail)


def _database_unavailable(_: Request[Any, Any, State], error: Exception) -> Response[dict[str, Any]]:
    log.warning("database unavailable: %s", error)
    return _error(503, "the database is unavailable; try again shortly")


def _internal_error(_: Request[Any, Any, State], error: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error", exc_info=error)
    return _error(500, "internal error")


def create_app(container: Container) -> Litestar:
    return Litestar(
        route_handlers=[healthz, readyz, register_endpoint, list_jobs, get_job, job_versions, test_job, get_run],
        dependencies={"env": Provide(_environment)},
        exception_handlers={
            ClientError: _client_error,
            ValidationException: _validation_error,
            HTTPException: _http_error,
            OperationalError: _database_unavailable,
            DBAPIError: _database_unavailable,
            PoolTimeout: _database_unavailable,
            OSError: _database_unavailable,
            Exception: _internal_error,
        },
        state=State({"container": container}),
        openapi_config=OpenAPIConfig(title="Jobs service", version="0.1.0", path="/schema"),
        request_max_body_size=1024 * 1024,
    )
