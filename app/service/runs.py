"""Creating runs (TestJob, invoke, rerun) and reading them back (now, as they were, their history)."""

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate
from sqlalchemy import Row

from app.adapters.codec import event_state
from app.adapters.reads import RUNS, ReadModels, RunFilter
from app.adapters.store import ConcurrencyConflict, EventStore, OutboxMessage
from app.adapters.url_policy import UrlPolicy
from app.errors import Conflict, NotFound, Unprocessable
from app.observability import record as observed
from app.service.catalog import Catalog
from app.service.environments import EnvironmentInfo
from app.service.writes import Topics
from domain import ids
from domain.event_records import EventRecord, test_event_id
from domain.jobs import JobVersion
from domain.runs import JobRun
from domain.times import iso
from projections.apply import Fold
from projections.run_status import changes as run_status_changes

TEST_ID_TRIES = 5
# After a test event id of a job was found taken by another process, this process's ids of that job carry its own
# tag for this long (`test:<name>:<epoch ms>:<tag>`): several API processes testing one job fast would otherwise
# take the same milliseconds over and over, and each clash fails a whole group commit of writes.
CONTENDED_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class CreatedRun:
    run_id: UUID
    event_id: str


@dataclass(frozen=True, slots=True)
class RunOptions:
    priority: int | None = None
    tags: tuple[str, ...] = ()
    callback_url: str | None = None


class Runs:
    def __init__(
        self, store: EventStore, reads: ReadModels, topics: Topics, catalog: Catalog, url_policy: UrlPolicy
    ) -> None:
        self.store = store
        self.reads = reads
        self.topics = topics
        self.catalog = catalog
        self.url_policy = url_policy
        self._last_test_ms: dict[tuple[UUID, str], int] = {}
        self._contended_until: dict[tuple[UUID, str], float] = {}
        self._tag = uuid4().hex[:12]  # this process's, for test event ids of a job other processes test too

    # -- creating -----------------------------------------------------------------------------------

    async def test(
        self, env: EnvironmentInfo, job_slug: str, payload: Any, version: str | None, options: RunOptions = RunOptions()
    ) -> CreatedRun:
        """TestJob: record a test event and create its run, with the run's execution in the outbox."""
        job = await self.catalog.job_version(env, job_slug, version)
        key = (env.id, job.event_name)
        for attempt in range(TEST_ID_TRIES):
            event_id = test_event_id(job.event_name, self._test_epoch_ms(key))
            if attempt == TEST_ID_TRIES - 1:
                event_id = f"{event_id}:{uuid4().hex[:12]}"  # rather than fail the request
            elif self._contended(key):
                event_id = f"{event_id}:{self._tag}"
            test_payload = payload if payload is not None else {}
            record = new_record(env, event_id, job.event_name, test_payload, {}, job.event_source, is_test=True)
            run = new_run(new_run_id(), job, record, options)
            try:
                await self.save_new(record, [run])
            except ConcurrencyConflict:  # another process's test event of this job took this id
                self._contend(key)
                continue
            return CreatedRun(run.id, record.event_id)
        raise Unprocessable("too many test runs of this job at the same moment; try again")

    def _test_epoch_ms(self, key: tuple[UUID, str]) -> int:
        """The millisecond of a test event id: now, or past the last one this process gave the same event name,
        so that concurrent TestJobs of one job here never collide (ids are `test:<name>:<epoch ms>`)."""
        now = int(time.time() * 1000)
        last = self._last_test_ms.get(key, 0)
        ms = now if now > last else last + 1
        if len(self._last_test_ms) > 10_000:
            self._last_test_ms.clear()
        self._last_test_ms[key] = ms
        return ms

    def _contended(self, key: tuple[UUID, str]) -> bool:
        until = self._contended_until.get(key)
        return until is not None and time.monotonic() < until

    def _contend(self, key: tuple[UUID, str]) -> None:
        if len(self._contended_until) > 10_000:
            self._contended_until.clear()
        self._contended_until[key] = time.monotonic() + CONTENDED_SECONDS

    async def invoke(
        self,
        env: EnvironmentInfo,
        job_slug: str,
        payload: Any,
        context: Any,
        options: RunOptions,
        idempotency_key: str | None,
    ) -> UUID:
        """Invoke a job directly. An idempotency key names one request in the environment: sent again with the
        same job, payload, context and options it gives back the same run; with anything else it is a conflict."""
        if options.callback_url is not None:
            await self.url_policy.check(options.callback_url, "options.callbackUrl")
        job = await self.catalog.job_version(env, job_slug, None)
        if idempotency_key:
            run_id = uuid5(UUID(str(env.id)), f"invoke:{idempotency_key}")
            event_id = f"invoke:{idempotency_key}"
        else:
            run_id, event_id = new_run_id(), str(uuid4())
        record = new_record(env, event_id, job.event_name, payload, context or {}, "trigger.dev")
        run = new_run(run_id, job, record, options)
        try:
            await self.save_new(record, [run])
        except ConcurrencyConflict:
            if not idempotency_key:
                raise
            await self._same_invocation(idempotency_key, run, record)
        return run_id

    async def _same_invocation(self, key: str, run: JobRun, record: EventRecord) -> None:
        """Raise Conflict unless the run this key already made is the one `run` and `record` would be."""
        first = await self.store.get(run.id, JobRun)
        first_record = await self.store.get(record.id, EventRecord)
        if first is None or first_record is None:
            raise ConcurrencyConflict(f"the first request with Idempotency-Key {key!r} is still being recorded")
        differences = [
            name
            for name, mine, theirs in (
                ("job", run.job_slug, first.job_slug),
                ("payload", record.payload, first_record.payload),
                ("context", record.context, first_record.context),
                ("options.callbackUrl", run.callback_url, first.callback_url),
                ("options.priority", run.priority, first.priority),
                ("options.tags", run.tags, first.tags),
            )
            if mine != theirs
        ]
        if differences:
            raise Conflict(
                f"Idempotency-Key {key!r} was used for another request (its {', '.join(differences)} differed): "
                "send the same request again, or use a new key",
                runId=str(first.id),
            )

    async def rerun(self, env: EnvironmentInfo, run_id: UUID) -> UUID:
        """A new event (`<original id>:retry:<epoch ms>`, same payload and context) and a new run of the version."""
        original = await self.get(env, run_id)
        source = await self.store.get(UUID(original.event_record_id), EventRecord)
        assert source is not None, f"event record of run {run_id} is missing"
        job = await self.catalog.job_version(env, original.job_slug, original.job_version)
        event_id = f"{source.event_id}:retry:{int(time.time() * 1000)}"
        record = new_record(env, event_id, source.name, source.payload, source.context, source.source, source.is_test)
        options = RunOptions(original.priority, tuple(original.tags), original.callback_url)
        run = new_run(new_run_id(), job, record, options)
        await self.save_new(record, [run])
        return run.id

    async def save_new(
        self,
        record: EventRecord,
        runs: list[JobRun],
        others: Sequence[Aggregate] = (),
        followups: Sequence[OutboxMessage] = (),
    ) -> None:
        """An event and the runs it makes, with each run's first execution, in one transaction (with what
        else the event changed, and the messages that calls for)."""
        messages: list[OutboxMessage] = [self.topics.execution(run, 1) for run in runs]
        messages.extend(followups)
        aggregates = (record, *runs, *others)
        await self.store.commit([e for aggregate in aggregates for e in aggregate.collect_events()], messages)
        observed.runs_created(len(runs))

    # -- reading ------------------------------------------------------------------------------------

    async def get(self, env: EnvironmentInfo, run_id: UUID) -> JobRun:
        run = await self.store.get(run_id, JobRun)
        if run is None or run.environment_id != str(env.id):
            raise NotFound(f"run {run_id} not found")
        return run

    async def status(self, env: EnvironmentInfo, run_id: UUID) -> tuple[JobRun, Row[Any]]:
        """The run, and its row of the run-status read model."""
        run = await self.get(env, run_id)
        row = await self.reads.run(env.id, run_id)
        if row is None:
            raise NotFound(f"run {run_id} not found")
        return run, row

    async def at(self, env: EnvironmentInfo, run_id: UUID, moment: datetime) -> tuple[JobRun, dict[str, Any]]:
        """The run, and its run-status row, rebuilt from the events it had at `moment`."""
        await self.get(env, run_id)
        events = [event for event in await self.store.load_events(run_id) if event.timestamp <= moment]
        if not events:
            raise NotFound(f"run {run_id} did not exist at {iso(moment)}")
        run: Any = None
        fold = Fold()
        for event in events:
            run = event.mutate(run)
            fold.apply(run_status_changes(event))
        (row,) = fold.table_rows(RUNS)
        return run, row

    async def history(self, env: EnvironmentInfo, run_id: UUID) -> list[dict[str, Any]]:
        """The run's own events, in order."""
        await self.get(env, run_id)
        return await self.history_of(run_id)

    async def history_of(self, run_id: UUID) -> list[dict[str, Any]]:
        """The events of a run already known to be the caller's, in order."""
        history = []
        for event in await self.store.load_events(run_id):
            data = event_state(event)
            data.pop("timestamp", None)
            data.pop("originator_topic", None)
            history.append(
                {
                    "version": event.originator_version,
                    "type": type(event).__name__,
                    "time": event.timestamp.isoformat().replace("+00:00", "Z"),  # full precision: usable as `at`
                    "data": data,
                }
            )
        return history

    async def page(
        self, env: EnvironmentInfo, where: RunFilter, take: int, cursor: UUID | None
    ) -> tuple[list[Row[Any]], str | None]:
        """Runs newest first; the next page's cursor is the id of this page's last run."""
        rows, more = await self.reads.runs(env.id, where, take, cursor)
        return list(rows), (str(rows[-1].id) if more and rows else None)


def new_record(
    env: EnvironmentInfo,
    event_id: str,
    name: str,
    payload: Any,
    context: Any,
    source: str,
    is_test: bool = False,
    sent_at: datetime | None = None,
    deliver_at: datetime | None = None,
) -> EventRecord:
    return EventRecord(
        id=ids.event_record_id(str(env.id), event_id),
        environment_id=str(env.id),
        event_id=event_id,
        name=name,
        payload=payload,
        context=context,
        source=source,
        sent_at=sent_at or datetime.now(UTC),
        is_test=is_test,
        deliver_at=deliver_at,
    )


def new_run_id() -> UUID:
    """A time-ordered run id (UUID version 7: milliseconds since the epoch, then 74 random bits). New runs' keys
    then land at the end of the indexes on them (events, run_status) rather than anywhere: an insert touches the
    few pages new runs share, where a random key touched a page of its own, which a large history makes a page
    to read and, after each checkpoint, to write whole to the WAL."""
    random = int.from_bytes(os.urandom(10))
    milliseconds = time.time_ns() // 1_000_000
    value = (milliseconds & (1 << 48) - 1) << 80 | 0x7 << 76 | (random >> 62 & 0xFFF) << 64 | 0b10 << 62
    return UUID(int=value | random & (1 << 62) - 1)


def new_run(run_id: UUID, job: JobVersion, record: EventRecord, options: RunOptions = RunOptions()) -> JobRun:
    concurrency = job.concurrency
    return JobRun(
        id=run_id,
        environment_id=record.environment_id,
        endpoint_id=job.endpoint_id,
        job_slug=job.job_slug,
        job_version=job.version,
        event_record_id=str(record.id),
        is_test=record.is_test,
        priority=job.priority if options.priority is None else options.priority,
        tags=list(options.tags),
        callback_url=options.callback_url,
        concurrency_key=concurrency.key if concurrency else None,
        concurrency_limit=concurrency.limit if concurrency else None,
    )
