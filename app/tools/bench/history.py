"""`jobs-service bench --history N`: the same figures with a large history already stored.

The history is loaded quickly, with COPY: synthetic finished runs (RunCreated, RunStarted, RunCompleted each)
spread over the past days, in the bench's own environment and in others, encoded with the project's codec,
and their `run_status` rows folded from those very events by the projections (so a rebuild over them gives
the same rows). Then TestJob/s (submissions alone), end to end runs/s and `GET /api/v1/runs/{id}` p50/p99 are
measured again and printed beside the empty store's figures of the same bench run, with their ratio.
"""

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.codec import DomainEvent, encode_event
from app.container import Container
from app.progress import ProgressBar
from app.tools.bench import measure
from app.tools.bench.figures import Report, percentile
from app.tools.bench.load import ApiConnections, LoadError
from app.tools.bench.stack import BenchStack
from domain.runs import JobRun
from domain.status import RunStatus
from projections import tables
from projections.apply import Fold
from projections.registry import changes_for

EVENTS_PER_RUN = 3
BATCH_RUNS = 5000
OTHER_ENVIRONMENTS = 3
HISTORY_JOBS = ("noop", "history-import", "history-report", "history-sync")
_EVENT_COLUMNS = ("originator_id", "originator_version", "topic", "state", "recorded_at")
_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class HistoryShape:
    """What the synthetic history looks like."""

    events: int
    environment_id: UUID  # the bench's environment: a share of the history is its own
    days: int = 30
    failure_share: float = 0.05
    seed: int = 16


async def load_history(engine: AsyncEngine, shape: HistoryShape, progress: Callable[[int, int], None]) -> int:
    """COPY `shape.events` events (rounded up to whole runs) and their run_status rows; returns the runs."""
    rng = random.Random(shape.seed)
    environments = [shape.environment_id, *(UUID(int=rng.getrandbits(128)) for _ in range(OTHER_ENVIRONMENTS))]
    templates = {status: _Template.of(status) for status in (RunStatus.SUCCESS, RunStatus.FAILURE)}
    runs = -(-shape.events // EVENTS_PER_RUN)
    now = datetime.now(UTC)
    span = timedelta(days=shape.days).total_seconds()
    done = 0
    while done < runs:
        count = min(BATCH_RUNS, runs - done)
        records: list[tuple[Any, ...]] = []
        rows: list[dict[str, Any]] = []
        for i in range(count):
            # Oldest first, so positions and times grow together as they would have.
            created = now - timedelta(seconds=span * (1 - (done + i) / runs), minutes=5)
            failed = rng.random() < shape.failure_share
            template = templates[RunStatus.FAILURE if failed else RunStatus.SUCCESS]
            events, row = template.copy(rng, environments, created)
            records.extend(_event_record(event) for event in events)
            rows.append(row)
        async with engine.begin() as conn:
            await _copy(conn, "events", _EVENT_COLUMNS, records)
            await copy_rows(conn, tables.run_status, rows)
        done += count
        progress(done * EVENTS_PER_RUN, runs * EVENTS_PER_RUN)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("events", "run_status"):
            await conn.execute(text(f"VACUUM (ANALYZE) {table}"))
    return runs


@dataclass(frozen=True)
class _Template:
    """A finished run made once by the domain, with its run_status row folded by the projections; each run
    of the history is a copy with its own ids, environment, job, tags and times (far cheaper than the domain
    per run: a million events load in seconds, not minutes)."""

    events: tuple[DomainEvent, ...]
    row: dict[str, Any]

    @classmethod
    def of(cls, status: RunStatus) -> "_Template":
        run = JobRun(
            id=uuid4(),
            environment_id=str(uuid4()),
            endpoint_id=str(uuid4()),
            job_slug="template",
            job_version="1.0.0",
            event_record_id=str(uuid4()),
            is_test=False,
        )
        run.start(1, datetime.now(UTC), LEASE)
        if status is RunStatus.SUCCESS:
            run.complete(status, {"ok": True}, None, 1)
        else:
            run.complete(status, None, {"message": "synthetic failure", "name": "Error"}, 1)
        events = tuple(run.collect_events())
        fold = Fold()
        fold.apply(changes_for(events))
        (row,) = fold.table_rows(tables.run_status)
        return cls(events, row)

    def copy(
        self, rng: random.Random, environments: Sequence[UUID], created: datetime
    ) -> tuple[list[DomainEvent], dict[str, Any]]:
        run_id = uuid4()
        environment = environments[rng.randrange(len(environments))]
        job = HISTORY_JOBS[rng.randrange(len(HISTORY_JOBS))]
        record_id = uuid4()
        is_test = rng.random() < 0.5
        tags = [f"customer-{rng.randrange(100)}"] if rng.random() < 0.3 else None
        started = created + timedelta(milliseconds=rng.randrange(5, 500))
        duration = rng.randrange(5, 5000)
        finished = started + timedelta(milliseconds=duration)
        values: tuple[dict[str, Any], ...] = (
            {
                "timestamp": created,
                "environment_id": str(environment),
                "endpoint_id": str(UUID(int=environment.int ^ 1)),
                "job_slug": job,
                "event_record_id": str(record_id),
                "is_test": is_test,
                "tags": tags,
            },
            {"timestamp": started, "started_at": started, "lease_until": started + LEASE},
            {"timestamp": finished, "duration_ms": duration},
        )
        events = [_with(event, run_id, changed) for event, changed in zip(self.events, values, strict=True)]
        row = dict(self.row)
        row.update(
            id=run_id,
            environment_id=environment,
            job_slug=job,
            event_record_id=record_id,
            is_test=is_test,
            tags=tags or [],
            created_at=created,
            started_at=started,
            lease_until=started + LEASE,
            updated_at=finished,
            completed_at=finished,
        )
        return events, row


LEASE = timedelta(seconds=60)


def _with(event: DomainEvent, originator_id: UUID, changed: dict[str, Any]) -> DomainEvent:
    """A copy of the event for another run (events are frozen: built like the codec builds them)."""
    copy: DomainEvent = object.__new__(type(event))
    object.__setattr__(copy, "__dict__", {**event.__dict__, "originator_id": originator_id, **changed})
    return copy


def _event_record(event: DomainEvent) -> tuple[Any, ...]:
    stored = encode_event(event)
    return (stored.originator_id, stored.originator_version, stored.topic, stored.state, event.timestamp)


async def copy_rows(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> None:
    """COPY read-model rows (as the fold holds them) into their table."""
    columns = tuple(column.name for column in table.columns)
    json_columns = {column.name for column in table.columns if isinstance(column.type, JSONB)}
    records = [
        tuple(
            (None if row[name] is None else _json.encode(row[name]).decode()) if name in json_columns else row[name]
            for name in columns
        )
        for row in rows
    ]
    await _copy(conn, table.name, columns, records)


async def _copy(conn: AsyncConnection, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]) -> None:
    if not records:
        return
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.copy_records_to_table(table, records=records, columns=list(columns))


# -- the bench phase --------------------------------------------------------------------------------------

PAIRED = ("testjob_submissions_per_s", "end_to_end_runs_per_s", "get_run_p50", "get_run_p99")
_ENVIRONMENT = text("SELECT id FROM environments WHERE slug = 'bench'")
_RECENT_RUNS = text("SELECT id FROM run_status WHERE environment_id = :env ORDER BY created_at DESC, id DESC LIMIT :n")
_HISTORY_RUNS = text("SELECT id FROM run_status WHERE environment_id = :env AND created_at < :before LIMIT :n")


GET_CONCURRENCY = 8  # few at once: the latency of a GET, not the queue in front of it


async def get_runs(engine: AsyncEngine, api: ApiConnections, report: Report, requests: int, suffix: str = "") -> None:
    """`GET /api/v2/runs/{id}` of runs of the bench's environment (recent ones and, once loaded, old ones),
    GET_CONCURRENCY at once: p50 and p99."""
    async with engine.connect() as conn:
        environment = (await conn.execute(_ENVIRONMENT)).scalar_one()
        ids = [str(i) for i in (await conn.execute(_RECENT_RUNS, {"env": environment, "n": requests})).scalars()]
        old = await conn.execute(_HISTORY_RUNS, {"env": environment, "before": _an_hour_ago(), "n": requests})
        ids += [str(i) for i in old.scalars()]
    if not ids:
        raise LoadError("no runs to GET")
    rng = random.Random(7)
    targets = [ids[rng.randrange(len(ids))] for _ in range(requests)]
    latencies: list[float] = []
    queue = iter(targets)

    async def getter() -> None:
        for run_id in queue:
            began = time.perf_counter()
            status, answer = await api.get(f"/api/v2/runs/{run_id}")
            if status != 200:
                raise LoadError(f"GET run answered {status}: {answer}")
            latencies.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(getter() for _ in range(GET_CONCURRENCY)))
    report.add(f"get_run_p50{suffix}", percentile(latencies, 50), "ms")
    report.add(f"get_run_p99{suffix}", percentile(latencies, 99), "ms")


def _an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


class SuffixedReport(Report):
    """Adds every figure to `report` under its name with `suffix`: a phase measured again, named apart."""

    def __init__(self, report: Report, suffix: str) -> None:
        super().__init__()
        self.report = report
        self.suffix = suffix

    def add(self, figure: str, value: float, unit: str, target: str | None = None) -> None:
        self.report.add(figure + self.suffix, value, unit)


WITH_HISTORY = "_with_history"


@dataclass(frozen=True)
class HistoryOptions:
    events: int
    runs: int
    concurrency: int
    gets: int


async def history_phase(
    stack: BenchStack, container: Container, api: ApiConnections, report: Report, options: HistoryOptions
) -> None:
    """Load the history, then measure submissions alone, end to end and GET of a run again."""
    async with container.engine.connect() as conn:
        environment = (await conn.execute(_ENVIRONMENT)).scalar_one()
    print(f"# history: loading {options.events:,} events of finished runs with COPY")
    began = time.perf_counter()
    runs = await load_history(
        container.engine, HistoryShape(options.events, environment), ProgressBar("  history", width=20)
    )
    report.add("history_events_loaded_per_s", runs * EVENTS_PER_RUN / (time.perf_counter() - began), "events/s")
    await api.close()  # the API closed the connections left idle during the load; new ones are opened
    await measure.settle(container)
    again = SuffixedReport(report, WITH_HISTORY)
    print(f"# with history: {options.runs} TestJobs, {options.concurrency} at once, relay paused (the API alone)")
    await measure.submissions_alone(stack, container, api, again, options.runs, options.concurrency)
    await measure.settle(container)
    print(f"# with history: {options.runs} TestJobs, {options.concurrency} at once, to SUCCESS")
    await measure.throughput(stack, container, api, again, options.runs, options.concurrency)
    await measure.settle(container)
    print(f"# with history: GET of a run, {options.gets} times")
    await get_runs(container.engine, api, report, options.gets, WITH_HISTORY)
    compare(report)


def compare(report: Report) -> None:
    """Each figure with history beside the empty store's, and their ratio."""
    figures = {figure.figure: figure for figure in report.figures}
    for name in PAIRED:
        empty, loaded = figures.get(name), figures.get(f"{name}_with_history")
        if empty is None or loaded is None or not empty.value:
            continue
        print(f"# {name}: {empty.value:g} empty, {loaded.value:g} with history")
        report.add(f"{name}_history_ratio", loaded.value / empty.value, "x", "within 10% of 1")
