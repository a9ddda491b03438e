"""The rescuer: finds what was lost and sets it going again, deciding "lost" from evidence, never from time.

- A run whose worker died: its attempt's lease expired (a live worker extends it while it executes).
- A message the broker lost: its outbox row says where it was published, and the partition shows it is not
  there to be consumed (the broker's log starts after it or ends before it, as after a broker restart that
  kept nothing), or the consumer group went past it (workers delete a message's row before they commit past
  it). Its row is published again. A message still in the log and not yet consumed is lag, not loss: it is
  left alone however long it waits, so a slow consumer can never start a storm of requeues.
- A run due to execute with no message at all for it (no outbox row, published or not): queued again.
- A schedule whose tick is overdue with no row for it (its message was dead-lettered): its row is written again.

Duplicates it may cause are ignored by the worker.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from aiokafka import TopicPartition

from app.adapters.kafka import OffsetsReader, PartitionOffsets
from app.adapters.outbox import Outbox
from app.observability import record as observed
from app.observability.logs import Failures
from app.service import JobsService

log = logging.getLogger(__name__)

SCAN_LIMIT = 200
LOG_SCAN_LIMIT = 10_000
ONE_RESCUER = 7342002  # the advisory lock one sweep at a time holds


class Rescuer:
    def __init__(
        self,
        service: JobsService,
        outbox: Outbox,
        interval_seconds: float,
        orphan_grace_seconds: float,
        offsets: OffsetsReader | None = None,
        published_topics: Callable[[], list[str]] = list,
    ) -> None:
        self.reads = service.reads
        self.executions = service.executions
        self.schedules = service.schedules
        self.outbox = outbox
        self.interval = interval_seconds
        self.orphan_grace = orphan_grace_seconds
        self.offsets = offsets
        self.published_topics = published_topics
        self.rescued = 0
        self.requeued = 0
        self.republished = 0
        self.failures = Failures(log, "rescuer: a sweep")

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as error:
                self.failures.failed(error, self.interval)
            else:
                self.failures.succeeded()
            await asyncio.sleep(self.interval)

    async def sweep(self) -> None:
        await self.republish_lost_messages()
        expired, orphaned = await self.reads.rescue_candidates(ONE_RESCUER, self.orphan_grace, SCAN_LIMIT)
        for run_id in expired:
            await self._rescue(run_id)
        for run_id in orphaned:
            await self._requeue(run_id)
        for schedule_id in await self.reads.stalled_schedules(self.orphan_grace, SCAN_LIMIT):
            if await self.schedules.requeue(schedule_id):
                log.warning("schedule %s: no row carried its overdue tick; wrote it again", schedule_id)

    async def republish_lost_messages(self) -> int:
        """Publish again every message the broker shows it lost; returns how many."""
        if self.offsets is None:
            return 0
        before = await self.outbox.now()
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
        republished = await self.outbox.republish(lost, before, ONE_RESCUER)
        self.republished += republished
        return republished

    async def _lost_in(self, partition: TopicPartition, offsets: PartitionOffsets, before: datetime) -> list[int]:
        """The outbox rows published to the partition whose message it no longer holds for the group."""
        topic, number = partition.topic, partition.partition
        lost = await self.outbox.passed(topic, number, max(offsets.start, offsets.committed))
        past_end = await self.outbox.at_or_past(topic, number, offsets.end, before, LOG_SCAN_LIMIT)
        if past_end and self.offsets is not None:
            held = await self.offsets.outbox_ids(partition, past_end[0].offset)
            lost += [row.id for row in past_end if held.get(row.offset) != row.id]
        return lost

    async def _rescue(self, run_id: UUID) -> None:
        if await self.executions.rescue(run_id):
            self.rescued += 1
            observed.rescued()
            log.warning("run %s: the lease of its attempt expired; a new attempt is scheduled", run_id)

    async def _requeue(self, run_id: UUID) -> None:
        if await self.executions.requeue(run_id):
            self.requeued += 1
            observed.requeued()
            log.warning("run %s: no message carried its next execution; queued it again", run_id)
