"""What an operator asks first, read from the database and the broker directly (no role needs to run): the
outbox's backlog, the workers' lag, recent runs by status, the oldest due run, dead letters, and the workers
holding partitions. `jobs-service status` prints it; the dashboard's Overview shows it."""

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from app.adapters import backlog
from app.adapters.db import create_engine
from app.adapters.kafka import OffsetsReader, PartitionOffsets
from app.adapters.messages import dead_letter_topic, lane_topics
from app.adapters.topic_ring import RING_SLOTS, slot_topic
from app.settings import Settings

REACH_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    host: str
    partitions: list[TopicPartition] | None  # None: the broker does not tell (Tansu)


@dataclass(frozen=True, slots=True)
class Workers:
    state: str
    members: list[Member]


@dataclass(frozen=True, slots=True)
class Status:
    minutes: int
    outbox: backlog.OutboxBacklog
    runs: dict[str, int]
    oldest_due: backlog.WaitingRun | None
    lanes: dict[TopicPartition, PartitionOffsets]
    dead_letters: dict[str, int]
    workers: Workers | None  # None: the broker could not describe the group


async def read_status(settings: Settings, minutes: int) -> Status:
    """Everything the screen shows; raises RuntimeError naming the service that cannot be reached."""
    database = await _from_database(settings, minutes)
    lanes, dead_letters, workers = await from_broker(settings)
    return Status(minutes, *database, lanes, dead_letters, workers)


async def _from_database(
    settings: Settings, minutes: int
) -> tuple[backlog.OutboxBacklog, dict[str, int], backlog.WaitingRun | None]:
    engine = create_engine(settings.required_database_url, pool_size=1)
    try:
        async with asyncio.timeout(REACH_SECONDS):
            outbox = await backlog.outbox_backlog(engine)
            runs = await backlog.runs_by_status(engine, timedelta(minutes=minutes))
            oldest = await backlog.oldest_due_run(engine)
    except Exception as error:
        raise RuntimeError(f"cannot reach the database: {_reason(error)}") from error
    finally:
        await engine.dispose()
    return outbox, runs, oldest


async def from_broker(
    settings: Settings,
) -> tuple[dict[TopicPartition, PartitionOffsets], dict[str, int], Workers | None]:
    offsets = OffsetsReader(settings)
    dlq = dead_letter_topic(settings.execution_topic)
    try:
        async with asyncio.timeout(REACH_SECONDS):
            await offsets.start()
            lanes = await offsets.read(_lane_topics(settings.execution_topic))
            dead = await offsets.read([dlq])
    except Exception as error:
        raise RuntimeError(f"cannot reach the broker at {settings.required_kafka}: {_reason(error)}") from error
    finally:
        with contextlib.suppress(Exception):
            await offsets.stop()
    dead_letters = {dlq: sum(max(0, where.end - where.start) for where in dead.values())} if dead else {}
    return lanes, dead_letters, await _workers(settings)


def _lane_topics(base: str) -> list[str]:
    """Each execution lane, and the slots of its topic ring (what `dev` uses, whatever this process's settings
    say): those the broker has are read."""
    return [topic for lane in lane_topics(base) for topic in (lane, *(slot_topic(lane, s) for s in range(RING_SLOTS)))]


async def _workers(settings: Settings) -> Workers | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.required_kafka)
    try:
        async with asyncio.timeout(REACH_SECONDS):
            await admin.start()
            (answer,) = await admin.describe_consumer_groups([settings.consumer_group])
        group = answer.to_object()["groups"][0]
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    members = [
        Member(member["member_id"], member["client_host"], _assigned(member["member_assignment"]))
        for member in group["members"]
    ]
    return Workers(group["state"], members)


def _assigned(assignment: bytes) -> list[TopicPartition] | None:
    if not assignment:
        return None
    try:
        return sorted(ConsumerProtocolMemberAssignment.decode(assignment).partitions())
    except Exception:
        return None


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {REACH_SECONDS:.0f}s"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
