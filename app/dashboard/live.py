"""One source of live updates per process: a poll of what changed, fanned out to every open page.

While at least one page listens, one task asks the database every `interval` seconds which runs changed since
its last look: one query, whatever the number of listeners. It reads the events appended since (the events
table's position index), keeps those whose transaction was not visible in its previous snapshot (so an event
that commits late, with a position lower than one already read, is still seen, exactly once), and joins the
run-status rows of the runs they belong to. A run's tasks are events of the run, so a task's change is a
change of its run.

Each listener has a bounded queue: one that falls `queue_size` batches behind is dropped (its page's stream
ends and the browser reconnects), never left to grow. The task starts with the first listener and ends with
the last, or at shutdown.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.observability import logs

log = logging.getLogger(__name__)
_unreadable = logs.Throttled(log, "live feed: cannot read what changed; the dashboard's pages wait")

INTERVAL_SECONDS = 0.5
QUEUE_SIZE = 64
# How far back the first look reads: transactions in flight when it started may hold lower positions.
FIRST_LOOK_BACK = 10_000
# A transaction open this many looks (a minute) no longer holds the cursor back: the service's writes take
# milliseconds, and a look must not read ever more events because some session idles in a transaction.
MAX_UNSETTLED_LOOKS = 120

_START = text("SELECT coalesce(max(position), 0), pg_current_snapshot()::text FROM events")
# One row at least (the aggregate), one per changed run. `settled`: every event at or below it was visible
# to the previous look, so only later positions can be new.
_CHANGES = text(
    "WITH seen AS ("
    " SELECT max(position) AS upto, pg_current_snapshot()::text AS snapshot,"
    " array_agg(DISTINCT originator_id) FILTER ("
    "  WHERE NOT pg_visible_in_snapshot(tx_id, CAST(CAST(:previous AS text) AS pg_snapshot))) AS changed"
    " FROM events WHERE position > :settled)"
    " SELECT seen.upto, seen.snapshot, r.id, r.environment_id, r.job_slug, r.job_version, r.status, r.tags,"
    " r.created_at, r.started_at, r.updated_at, r.completed_at"
    " FROM seen LEFT JOIN run_status r ON r.id = ANY(seen.changed)"
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A PostgreSQL snapshot's bounds: every transaction below xmin had ended; none from xmax on had begun."""

    xmin: int
    xmax: int

    @classmethod
    def parse(cls, text: str) -> "Snapshot":
        xmin, xmax, _ = text.split(":", 2)
        return cls(int(xmin), int(xmax))


class Batch(list[Row[Any]]):
    """The changed runs one look found that a listener wants, and which look it was (listeners of one run get
    the same number, so they can share what they make of it)."""

    look: int = 0


@dataclass(eq=False)
class Subscription:
    """What one page listens to: the runs of an environment, or one run of it."""

    environment_id: UUID
    run_id: UUID | None
    queue: asyncio.Queue[Batch | None]
    dropped: bool = False

    def wants(self, row: Row[Any]) -> bool:
        return row.environment_id == self.environment_id and (self.run_id is None or row.id == self.run_id)

    async def changes(self, idle_seconds: float | None = None) -> AsyncIterator[Batch]:
        """The changed runs this page wants, a batch per look that had any, and an empty batch after
        `idle_seconds` without one (when given: a stream pings then); ends when the feed drops the page."""
        while True:
            try:
                async with asyncio.timeout(idle_seconds):
                    batch = await self.queue.get()
            except TimeoutError:
                yield Batch()
                continue
            if batch is None:
                return
            yield batch


@dataclass
class LiveFeed:
    engine: AsyncEngine
    interval: float = INTERVAL_SECONDS
    queue_size: int = QUEUE_SIZE
    looks: int = 0  # how many times the database was asked (what the tests count against the queries)
    _subscribers: set[Subscription] = field(default_factory=set)
    # Who wants which run, so that a look's fan-out costs what changed plus what is sent, not their product.
    _of_run: dict[UUID, set[Subscription]] = field(default_factory=dict)
    _of_environment: dict[UUID, set[Subscription]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _closed: bool = False

    @contextlib.asynccontextmanager
    async def subscribe(self, environment_id: UUID, run_id: UUID | None = None) -> AsyncIterator[Subscription]:
        subscription = Subscription(environment_id, run_id, asyncio.Queue(self.queue_size))
        if self._closed:
            subscription.queue.put_nowait(None)
            yield subscription
            return
        self._add(subscription)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard live feed")
        try:
            yield subscription
        finally:
            self._remove(subscription)

    def _where(self, subscription: Subscription) -> tuple[dict[UUID, set[Subscription]], UUID]:
        if subscription.run_id is None:
            return self._of_environment, subscription.environment_id
        return self._of_run, subscription.run_id

    def _add(self, subscription: Subscription) -> None:
        self._subscribers.add(subscription)
        index, key = self._where(subscription)
        index.setdefault(key, set()).add(subscription)

    def _remove(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        index, key = self._where(subscription)
        listeners = index.get(key)
        if listeners is not None:
            listeners.discard(subscription)
            if not listeners:
                del index[key]

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Stop looking and end every listener's stream (at shutdown)."""
        self._closed = True
        for subscription in list(self._subscribers):
            self._drop(subscription)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        cursor: _Cursor | None = None
        while self._subscribers:
            try:
                if cursor is None:
                    cursor = await self._start()
                self._fan_out(await self._look(cursor))
            except Exception as error:  # the database is away: keep the pages open, look again later
                _unreadable.failed(error)
            await asyncio.sleep(self.interval)

    async def _start(self) -> "_Cursor":
        async with self.engine.connect() as conn:
            top, snapshot = (await conn.execute(_START)).one()
        self.looks += 1
        return _Cursor(max(0, int(top) - FIRST_LOOK_BACK), snapshot, int(top), Snapshot.parse(snapshot))

    async def _look(self, cursor: "_Cursor") -> list[Row[Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_CHANGES, {"previous": cursor.previous, "settled": cursor.settled})).all()
        self.looks += 1
        first = rows[0]
        cursor.advance(first.snapshot, first.upto)
        return [row for row in rows if row.id is not None]

    def _fan_out(self, changed: Sequence[Row[Any]]) -> None:
        batches: dict[Subscription, Batch] = {}
        for row in changed:
            for subscription in (*self._of_run.get(row.id, ()), *self._of_environment.get(row.environment_id, ())):
                if subscription.wants(row):
                    batches.setdefault(subscription, Batch()).append(row)
        for subscription, batch in batches.items():
            batch.look = self.looks
            try:
                subscription.queue.put_nowait(batch)
            except asyncio.QueueFull:
                log.info("live feed: a page fell %d batches behind; its stream ends", self.queue_size)
                self._drop(subscription)

    def _drop(self, subscription: Subscription) -> None:
        self._remove(subscription)
        subscription.dropped = True
        while not subscription.queue.empty():
            subscription.queue.get_nowait()
        subscription.queue.put_nowait(None)


@dataclass
class _Cursor:
    """Where the next look starts: `settled`, a position every later-committing event lies above, and the
    previous look's snapshot; plus, for each look not settled yet, its snapshot's xmax and the highest position
    it saw. Once every transaction below that xmax has ended, nothing can still commit at or below that
    position: it becomes `settled`."""

    settled: int
    previous: str
    _top: int
    _first: Snapshot
    _pending: deque[tuple[int, int]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._pending.append((self._first.xmax, self._top))

    def advance(self, snapshot_text: str, upto: int | None) -> None:
        snapshot = Snapshot.parse(snapshot_text)
        self.previous = snapshot_text
        self._top = max(self._top, upto or 0)
        self._pending.append((snapshot.xmax, self._top))
        while self._pending and (self._pending[0][0] <= snapshot.xmin or len(self._pending) > MAX_UNSETTLED_LOOKS):
            self.settled = max(self.settled, self._pending.popleft()[1])
