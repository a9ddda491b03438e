"""Applies JOBS_RETENTION_DAYS in the worker role: every tenth of that period (at most every 10 minutes),
removes the runs that ended longer ago than that, in small batches with a pause between them so live traffic
keeps the database. Several workers (and the command) may sweep at once: they take turns, batch by batch."""

import asyncio
import logging
from datetime import timedelta

from app.adapters.outbox import Outbox
from app.adapters.retention import Keep
from app.observability.logs import Failures
from app.service.retention import Retention

log = logging.getLogger(__name__)

LONGEST_INTERVAL_SECONDS = 600.0
BATCH_RUNS = 200
PAUSE_SECONDS = 0.2


class RetentionKeeper:
    def __init__(
        self,
        retention: Retention,
        outbox: Outbox,
        older_than: timedelta,
        keep: Keep | None = None,
    ) -> None:
        self.retention = retention
        self.outbox = outbox  # its clock is the database's, which the run times come from
        self.older_than = older_than
        self.keep = keep
        # A tenth of the retention period (between 1 s and 10 min): a run is kept at most 10% over it.
        self.interval = min(max(older_than.total_seconds() / 10, 1.0), LONGEST_INTERVAL_SECONDS)
        self.removed = 0

    async def run(self) -> None:
        failures = Failures(log, "retention: a sweep")
        while True:
            try:
                await self.sweep()
            except Exception as error:
                failures.failed(error, self.interval)
            else:
                failures.succeeded()
            await asyncio.sleep(self.interval)

    async def sweep(self) -> int:
        cutoff = await self.outbox.now() - self.older_than
        totals = await self.retention.sweep(cutoff, self.keep)
        self.removed += totals.runs
        if totals.runs:
            log.info("retention: %s (ended before %s)", totals.summary(), cutoff.isoformat(timespec="seconds"))
        return totals.runs
