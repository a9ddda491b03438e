"""The rescuer: finds runs whose worker died (expired lease) and runs whose next execution was lost
(the broker forgot it), and schedules each again. Duplicates it may cause are ignored by the worker."""

import asyncio
import logging
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import text

from app.run_writes import change_run
from app.store import EventStore

log = logging.getLogger(__name__)

SCAN_LIMIT = 200
_ONE_RESCUER = text("SELECT pg_try_advisory_xact_lock(7342002)")
_EXPIRED = text(
    "SELECT id FROM run_status WHERE status = 'EXECUTING' AND lease_until < now() ORDER BY lease_until LIMIT :n"
)
_LOST = text(
    "SELECT id FROM run_status r WHERE status IN ('QUEUED', 'WAITING_TO_EXECUTE', 'WAITING_TO_CONTINUE') "
    "AND next_due_at < now() - make_interval(secs => :grace) "
    "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = r.id::text) ORDER BY next_due_at LIMIT :n"
)


class Rescuer:
    def __init__(self, store: EventStore, topic: str, interval_seconds: float, redeliver_after_seconds: float) -> None:
        self.store = store
        self.topic = topic
        self.interval = interval_seconds
        self.redeliver_after = redeliver_after_seconds
        self.rescued = 0
        self.redelivered = 0

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("rescuer: sweep failed; trying again in %.1fs", self.interval)
            await asyncio.sleep(self.interval)

    async def sweep(self) -> None:
        async with self.store.engine.begin() as conn:
            if not (await conn.execute(_ONE_RESCUER)).scalar():
                return  # another rescuer is sweeping
            expired = (await conn.execute(_EXPIRED, {"n": SCAN_LIMIT})).scalars().all()
            lost = (await conn.execute(_LOST, {"n": SCAN_LIMIT, "grace": self.redeliver_after})).scalars().all()
        for run_id in expired:
            await self._rescue(run_id)
        for run_id in lost:
            await self._redeliver(run_id)

    async def _rescue(self, run_id: UUID) -> None:
        now = datetime.now(UTC)
        rescued = await change_run(self.store, self.topic, run_id, None, lambda run: run.rescue(now) is not None)
        if rescued:
            self.rescued += 1
            log.warning("run %s: the lease of its attempt expired; a new attempt is scheduled", run_id)

    async def _redeliver(self, run_id: UUID) -> None:
        """Queue the run's next execution again: its message was lost (e.g. a broker restart)."""
        if await change_run(self.store, self.topic, run_id, None, lambda run: run.requeue()):
            self.redelivered += 1
            log.warning("run %s: no message carried its next execution; queued it again", run_id)
