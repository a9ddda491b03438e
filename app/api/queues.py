"""Queues: named concurrency groups, with their limit and how many of their runs execute and wait."""

from typing import Any

import msgspec
from litestar import get, post
from litestar.params import FromPath, JSONBody

from app.api.answers import Answer, Instant
from app.api.common import BEARER, Env, Service, errors
from domain.times import iso


class CreateQueueBody(msgspec.Struct):
    name: str
    limit: int


class QueueInfo(Answer):
    name: str
    limit: int
    running: int  # runs of the queue executing now
    queued: int  # runs of the queue waiting to execute
    created_at: Instant
    updated_at: Instant

    @classmethod
    def of(cls, row: Any) -> "QueueInfo":
        return cls(row.name, row.concurrency_limit, row.running, row.queued, iso(row.created_at), iso(row.updated_at))


class QueueList(Answer):
    queues: list[QueueInfo]


@post(
    "/api/v1/queues",
    status_code=200,
    tags=["catalog"],
    summary="Create a queue with its concurrency limit (or set the limit of one that exists)",
    security=BEARER,
    responses=errors(401),
)
async def create_queue(service: Service, env: Env, data: JSONBody[CreateQueueBody]) -> QueueInfo:
    return QueueInfo.of(await service.queues.create(env, data.name, data.limit))


@get("/api/v1/queues", tags=["catalog"], summary="The environment's queues", security=BEARER, responses=errors(401))
async def list_queues(service: Service, env: Env) -> QueueList:
    return QueueList([QueueInfo.of(row) for row in await service.queues.of_environment(env)])


@get(
    "/api/v1/queues/{name:str}",
    tags=["catalog"],
    summary="A queue: its limit, and how many of its runs execute and wait",
    security=BEARER,
    responses=errors(401, 404),
)
async def get_queue(service: Service, env: Env, name: FromPath[str]) -> QueueInfo:
    return QueueInfo.of(await service.queues.get(env, name))


HANDLERS = [create_queue, list_queues, get_queue]
