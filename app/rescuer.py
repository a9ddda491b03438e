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

from sqlalchemy import text

from app.kafka import OffsetsReader, PartitionOffsets
from app.run_writes import change_run
from app.store import EventStore

log = logging.getLogger(__name__)

SCAN_LIMIT = 200
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
# Published before `before` (when the broker's offsets were not yet read), so `end` had to be past it.
_REPUBLISH_LOST = text(
    "UPDATE outbox SET published_at = NULL, kafka_topic = NULL, kafka_partition = NULL, kafka_offset = NULL, "
    "available_at = now() WHERE published_at IS NOT NULL AND kafka_topic = :topic AND kafka_partition = :partition "
    "AND (kafka_offset < :low OR (kafka_offset >= :end AND published_at < :before))"
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
        partitions = await self.offsets.read(self.published_topics())
        lost = 0
        async with self.store.engine.begin() as conn:
            if not (await conn.execute(_ONE_RESCUER)).scalar():
                return 0
            for tp, offsets in partitions.items():
                result = await conn.execute(_REPUBLISH_LOST, _bounds(tp.topic, tp.partition, offsets, before))
                if result.rowcount:
                    log.warning(
                        "%d messages of %s/%d are not in the broker (log %d..%d, group at %d): publishing them again",
                        result.rowcount, tp.topic, tp.partition, offsets.start, offsets.end, offsets.committed,
                    )  # fmt: skip
                lost += result.rowcount
            if lost:
                await conn.execute(_WAKE_RELAY)
        self.republished += lost
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


def _bounds(topic: str, partition: int, offsets: PartitionOffsets, before: datetime) -> dict[str, object]:
    low = max(offsets.start, offsets.committed)
    return {"topic": topic, "partition": partition, "low": low, "end": offsets.end, "before": before}
