"""Retention: remove the runs that ended before a cutoff, batch by batch (app/adapters/retention.py), and
report what went."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.adapters.retention import Keep, RetentionStore

BATCH_RUNS = 500
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class Totals:
    runs: int = 0
    events: int = 0
    dispatchers: int = 0
    event_records: int = 0
    kept: int = 0  # ended before the cutoff, but a message for them is still to be delivered

    def summary(self, dry_run: bool = False) -> str:
        verb = "would remove" if dry_run else "removed"
        line = (
            f"{verb} {self.runs} runs, {self.dispatchers} dispatchers and {self.event_records} event records "
            f"({self.events} events)"
        )
        return line + (f"; kept {self.kept} with messages still to deliver" if self.kept else "")


class Retention:
    def __init__(self, store: RetentionStore, batch_runs: int = BATCH_RUNS, pause_seconds: float = 0.0) -> None:
        self.store = store
        self.batch_runs = batch_runs
        self.pause_seconds = pause_seconds  # between batches: leaves room for live traffic

    async def sweep(
        self, cutoff: datetime, keep: Keep | None = None, dry_run: bool = False, progress: Progress | None = None
    ) -> Totals:
        """Remove (or, dry, count) every run that ended before the cutoff and has nothing left to deliver."""
        totals = Totals()
        estimate = await self.store.count(cutoff) if progress else 0
        seen = 0
        batch = await self.store.remove_batch(cutoff, self.batch_runs, keep=None if dry_run else keep, dry_run=dry_run)
        while batch.seen:
            seen += batch.seen
            totals.runs += len(batch.removed.runs)
            totals.dispatchers += len(batch.removed.dispatchers)
            totals.event_records += len(batch.removed.event_records)
            totals.events += batch.removed.event_count
            totals.kept += batch.kept
            if progress:
                progress(seen, max(seen, estimate))
            if self.pause_seconds:
                await asyncio.sleep(self.pause_seconds)
            batch = await self.store.remove_batch(
                cutoff, self.batch_runs, batch.after, None if dry_run else keep, dry_run
            )
        if progress:
            progress(seen, seen)
        return totals
