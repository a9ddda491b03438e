"""The rescuer: finds what was lost and sets it going again, deciding "lost" from evidence, never from time.

- A run whose worker died: its attempt's lease expired (a live worker extends it while it executes).
- A message the broker lost: its outbox row says where it was published, and the partition shows it is not
  there to be consumed (the broker's log starts after it or ends before it, as after a broker restart that
  kept nothing), or the consumer group went past it (workers delete a message's row before they commit past
  it). Its row is published again. A message still in the log and not yet consumed is lag, not loss: it is
  left alone however long it waits, so a slow consumer can never start a storm of requeues.
- A run due to execute with no message at all for it (no outbox row, published or not): queued again.

Duplicates it may cause are ignored by the worker.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from aiokafka import TopicPartition
from sqlalchemy import text

from app.kafka import OffsetsReader, PartitionOffsets
from app.run_writes import change_run
from app.store import EventStore

log = logging.getLogger(__name__)

SCAN_LIMIT = 200
LOG_SCAN_LIMIT = 10_000
_ONE_RESCUER = text("SELECT pg_try_advisory_xact_lock(7342002)")
_EXPIRED = text(
    "SELECT id FROM run_status WHERE status = 'EXECUTING' AND lease_until < now() ORDER BY lease_until LIMIT :n"
)
_ORPHANED = text(
    "SELECT id FROM run_status r WHERE status IN ('QUEUED', 'WAITING_TO_EXECUTE', 'WAITING_TO_CONTINUE') "
    "AND next_due_at < now() - make_interval(secs => :grace) "
    "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = r.id::text) ORDER BY next_due_at LIMIT :n"
)
_NOW = text("SELECT clock_timestamp()")
_PASSED = text(
    "SELECT id FROM outbox WHERE published_at IS NOT NULL AND kafka_topic = :topic AND kafka_partition = :partition "
    "AND kafka_offset < :low"
)
# Published before `before` (when the broker's offsets were not yet read) and at or past the log's reported
# end: they are looked up in the log itself.
_PAST_END = text(
    "SELECT id, kafka_offset FROM outbox WHERE published_at IS NOT NULL AND kafka_topic = :topic "
    "AND kafka_partition = :partition AND kafka_offset >= :end AND published_at < :before "
    "ORDER BY kafka_offset LIMIT :n"
)
_REPUBLISH = text(
    "UPDATE outbox SET published_at = NULL, kafka_topic = NULL, kafka_partition = NULL, kafka_offset = NULL, "
    "available_at = now() WHERE id = ANY(:ids) AND published_at < :before"
)
_WAKE_RELAY = text("SELECT pg_notify('outbox', '')")


class Rescuer:
    def __init__(
        self,
        store: EventStore,
        topic: str,
        interval_seconds: float,
        orphan_grace_seconds: float,
        offsets: OffsetsReader | None = None,
        published_topics: Callable[[], list[str]] = list,
    ) -> None:
        self.store = store
        self.topic = topic
        self.interval = interval_seconds
        self.orphan_grace = orphan_grace_seconds
        self.offsets = offsets
        self.published_topics = published_topics
        self.rescued = 0
        self.requeued = 0
        self.republished = 0

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as error:
                log.warning("rescuer: sweep failed (%s); trying again in %.1fs", error, self.interval)
            await asyncio.sleep(self.interval)

    async def sweep(self) -> None:
        await self.republish_lost_messages()
        async with self.store.engine.begin() as conn:
            if not (await conn.execute(_ONE_RESCUER)).scalar():
                return  # another rescuer is sweeping
            expired = (await conn.execute(_EXPIRED, {"n": SCAN_LIMIT})).scalars().all()
            orphaned = (await conn.execute(_ORPHANED, {"n": SCAN_LIMIT, "grace": self.orphan_grace})).scalars().all()
        for run_id in expired:
            await self._rescue(run_id)
        for run_id in orphaned:
            await self._requeue(run_id)

    async def republish_lost_messages(self) -> int:
        """Publish again every message the broker shows it lost; returns how many."""
        if self.offsets is None:
            return 0
        async with self.store.engine.connect() as conn:
            before = (await conn.execute(_NOW)).scalar_one()
        lost: list[int] = []
        for partition, offsets in (await self.offsets.read(self.published_topics())).items():
            missing = await self._lost_in(partition, offsets, before)
            if missing:
                log.warning(
                    "%d messages of %s/%d are not in the broker (log %d..%d, group at %d): publishing them again",
                    len(missing), partition.topic, partition.partition, offsets.start, offsets.end, offsets.committed,
                )  # fmt: skip
            lost += missing
        if not lost:
            return 0
        async with self.store.engine.begin() as conn:
            if not (await conn.execute(_ONE_RESCUER)).scalar():
                return 0
            republished: int = (await conn.execute(_REPUBLISH, {"ids": lost, "before": before})).rowcount
            await conn.execute(_WAKE_RELAY)
        self.republished += republished
        return republished

    async def _lost_in(self, partition: TopicPartition, offsets: PartitionOffsets, before: datetime) -> list[int]:
        """The outbox rows published to the partition whose message it no longer holds for the group."""
        where = {"topic": partition.topic, "partition": partition.partition}
        async with self.store.engine.connect() as conn:
            low = max(offsets.start, offsets.committed)
            lost = list((await conn.execute(_PASSED, {**where, "low": low})).scalars())
            past_end = (
                await conn.execute(_PAST_END, {**where, "end": offsets.end, "before": before, "n": LOG_SCAN_LIMIT})
            ).all()
        if past_end:
            held = await self.offsets.outbox_ids(partition, past_end[0].kafka_offset) if self.offsets else {}
            lost += [row.id for row in past_end if held.get(row.kafka_offset) != row.id]
        return lost

    async def _rescue(self, run_id: UUID) -> None:
        now = datetime.now(UTC)
        rescued = await change_run(self.store, self.topic, run_id, None, lambda run: run.rescue(now) is not None)
        if rescued:
            self.rescued += 1
            log.warning("run %s: the lease of its attempt expired; a new attempt is scheduled", run_id)

    async def _requeue(self, run_id: UUID) -> None:
        """Queue the run's next execution again: no message carries it."""
        if await change_run(self.store, self.topic, run_id, None, lambda run: run.requeue()):
            self.requeued += 1
            log.warning("run %s: no message carried its next execution; queued it again", run_id)
