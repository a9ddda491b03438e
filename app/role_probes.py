"""What each role adds to its process's operations server: the probes of its readiness and the gauges it
refreshes before a scrape."""

from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.backlog import outbox_backlog
from app.adapters.health import Readiness
from app.adapters.kafka import OffsetsReader
from app.observability import metrics
from app.observability.ops_server import OpsServer


def services(ops: OpsServer, readiness: Readiness) -> None:
    """The api and the relay are ready when they reach the database and the broker."""
    ops.probe("database", readiness.database_ok)
    ops.probe("broker", readiness.broker_ok)


def outbox(ops: OpsServer, engine: AsyncEngine) -> None:
    """The relay's gauges: the outbox's pending rows and the age of the oldest due one not published."""

    async def refresh() -> None:
        backlog = await outbox_backlog(engine)
        metrics.OUTBOX_PENDING.set(backlog.pending)
        metrics.OUTBOX_OLDEST_AGE.set(backlog.oldest_due_seconds)

    ops.refresh("outbox", refresh)


def worker(ops: OpsServer, readiness: Readiness, consumer: AIOKafkaConsumer, offsets: OffsetsReader) -> None:
    """A worker is ready when it reaches the database and holds partitions; its gauges are the lag of each
    partition it holds (end offset minus the group's committed offset) and how many it holds."""

    async def holds_partitions() -> bool:
        return bool(consumer.assignment())

    async def refresh() -> None:
        held = consumer.assignment()
        metrics.ASSIGNED_PARTITIONS.set(len(held))
        found = await offsets.read(sorted({partition.topic for partition in held})) if held else {}
        metrics.CONSUMER_LAG.clear()  # partitions no longer held go
        for partition, where in found.items():
            if partition in held:
                lag = max(0, where.end - max(where.start, where.committed))
                metrics.CONSUMER_LAG.labels(partition.topic, str(partition.partition)).set(lag)

    ops.probe("database", readiness.database_ok)
    ops.probe("partitions", holds_partitions)
    ops.refresh("consumer lag", refresh)
