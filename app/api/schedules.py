"""Schedules: a DynamicSchedule's registrations (the paths the v2 SDK calls), the environment's schedules, and
deleting a job (which stops its schedule)."""

from typing import Any, Literal

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, JSONBody
from msgspec import UNSET, UnsetType

from app.api.answers import Answer, Instant
from app.api.common import BEARER, Env, Service, errors
from app.errors import ClientError
from domain.schedules import Schedule
from domain.times import iso, iso_or_none

MAX_ID_LENGTH = 200


class ScheduleOptionsBody(msgspec.Struct):
    seconds: int | None = None
    cron: str | None = None
    timezone: str | None = None  # this service's addition: an IANA zone for a cron (UTC otherwise)


class RegisterScheduleBody(msgspec.Struct):
    """RegisterScheduleBodySchema of @trigger.dev/core: the registration's id and its ScheduleMetadata."""

    id: str
    type: Literal["interval", "cron"]
    options: ScheduleOptionsBody
    metadata: Any = None
    accountId: str | None = None


class ScheduleOptions(Answer):
    seconds: int | UnsetType = UNSET
    cron: str | UnsetType = UNSET
    timezone: str | UnsetType = UNSET


class ScheduleMetadata(Answer):
    type: Literal["interval", "cron"]
    options: ScheduleOptions

    @classmethod
    def of(cls, schedule: dict[str, Any]) -> "ScheduleMetadata":
        return cls(schedule["type"], msgspec.convert(schedule["options"], ScheduleOptions))


class RegisteredSchedule(Answer):
    """RegisterScheduleResponseBodySchema: the SDK parses it."""

    id: str
    schedule: ScheduleMetadata
    metadata: Any
    active: bool


class Unregistered(Answer):
    ok: bool


class ScheduleInfo(Answer):
    key: str
    kind: Literal["job", "dynamic"]
    owner: str  # the scheduled job's slug, or the DynamicSchedule's id
    schedule: ScheduleMetadata
    metadata: Any
    active: bool
    next_tick_at: Instant | None
    last_tick_at: Instant | None
    created_at: Instant
    updated_at: Instant

    @classmethod
    def of(cls, row: Any) -> "ScheduleInfo":
        return cls(
            key=row.key,
            kind="dynamic" if row.dynamic else "job",
            owner=row.owner,
            schedule=ScheduleMetadata.of(row.schedule),
            metadata=row.metadata,
            active=row.active,
            next_tick_at=iso_or_none(row.next_tick_at),
            last_tick_at=iso_or_none(row.last_tick_at),
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )


class ScheduleList(Answer):
    schedules: list[ScheduleInfo]


class DeletedJob(Answer):
    id: str
    deleted: bool
    deleted_at: Instant


def _registration(schedule: Schedule, registration_id: str) -> RegisteredSchedule:
    return RegisteredSchedule(
        registration_id, ScheduleMetadata.of(schedule.schedule), schedule.metadata, schedule.active
    )


def _check_id(value: str, what: str) -> None:
    if not 0 < len(value) <= MAX_ID_LENGTH:
        raise ClientError(f"{what} must be 1 to {MAX_ID_LENGTH} characters")


@post(
    "/api/v1/{endpoint_slug:str}/schedules/{schedule_id:str}/registrations",
    status_code=200,
    tags=["catalog"],
    summary="Register a schedule on a DynamicSchedule (DynamicSchedule.register)",
    security=BEARER,
    responses=errors(401, 404),
)
async def register_schedule(
    service: Service,
    env: Env,
    endpoint_slug: FromPath[str],
    schedule_id: FromPath[str],
    data: JSONBody[RegisterScheduleBody],
) -> RegisteredSchedule:
    _check_id(data.id, "`id`")
    _check_id(schedule_id, "the DynamicSchedule id")
    options = {name: value for name, value in msgspec.structs.asdict(data.options).items() if value is not None}
    schedule = await service.schedules.register(
        env, endpoint_slug, schedule_id, data.id, {"type": data.type, "options": options}, data.metadata, data.accountId
    )
    return _registration(schedule, data.id)


@delete(
    "/api/v1/{endpoint_slug:str}/schedules/{schedule_id:str}/registrations/{registration_id:str}",
    status_code=200,
    tags=["catalog"],
    summary="Unregister a schedule of a DynamicSchedule (DynamicSchedule.unregister)",
    security=BEARER,
    responses=errors(401, 404),
)
async def unregister_schedule(
    service: Service, env: Env, endpoint_slug: FromPath[str], schedule_id: FromPath[str], registration_id: FromPath[str]
) -> Unregistered:
    await service.schedules.unregister(env, endpoint_slug, schedule_id, registration_id)
    return Unregistered(True)


@get(
    "/api/v1/schedules",
    tags=["catalog"],
    summary="The environment's schedules: scheduled jobs' and DynamicSchedule registrations, with their next tick",
    security=BEARER,
    responses=errors(401),
)
async def list_schedules(service: Service, env: Env) -> ScheduleList:
    return ScheduleList([ScheduleInfo.of(row) for row in await service.schedules.of_environment(env)])


@delete(
    "/api/v1/jobs/{job_slug:str}",
    status_code=200,
    tags=["catalog"],
    summary="Delete a disabled job: no new runs, its runs kept; an index naming it enabled brings it back",
    security=BEARER,
    responses=errors(401, 404, 409),
)
async def delete_job(service: Service, env: Env, job_slug: FromPath[str]) -> DeletedJob:
    deleted_at = await service.catalog.delete_job(env, job_slug)
    return DeletedJob(job_slug, True, iso(deleted_at))


HANDLERS = [register_schedule, unregister_schedule, list_schedules, delete_job]
