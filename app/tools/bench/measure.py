"""The benchmark's phases against a running stack."""

import asyncio
import contextlib
import os
import signal
import time
from uuid import UUID

from aiokafka import AIOKafkaConsumer
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from app.adapters import kafka
from app.adapters.db import reading
from app.container import Container
from app.progress import ProgressBar
from app.tools.bench import costs
from app.tools.bench.costs import KafkaTally
from app.tools.bench.executions import execution_figures
from app.tools.bench.figures import Report, percentile
from app.tools.bench.load import ApiConnections, LoadError
from app.tools.bench.stack import BenchStack

_SUCCEEDED = text("SELECT id FROM run_status WHERE id = ANY(:ids) AND status = 'SUCCESS'")
_TIMES = text(
    "SELECT originator_id, topic, state FROM events WHERE originator_id = ANY(:ids) "
    "AND topic IN ('jobs.JobRun.RunCreated', 'jobs.JobRun.RunStarted', 'jobs.JobRun.RunCompleted')"
)


async def test_job(api: ApiConnections) -> str:
    status, answer = await api.post("/api/v1/jobs/noop/test", {"payload": {}})
    if status != 202 or not isinstance(answer, dict):
        raise LoadError(f"TestJob answered {status}: {answer}")
    return str(answer["runId"])


async def submit(
    api: ApiConnections, count: int, concurrency: int, run_ids: list[str] | None = None
) -> tuple[list[str], list[float], float]:
    """TestJob `count` times, `concurrency` at once; returns run ids, latencies (ms) and the wall time."""
    run_ids = [] if run_ids is None else run_ids
    latencies: list[float] = []
    queue = iter(range(count))

    async def submitter() -> None:
        for _ in queue:
            started = time.perf_counter()
            run_id = await test_job(api)
            latencies.append((time.perf_counter() - started) * 1000)
            run_ids.append(run_id)

    began = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    return run_ids, latencies, time.perf_counter() - began


async def wait_succeeded(
    container: Container, run_ids: list[str], limit_seconds: float = 600, expected: int | None = None
) -> dict[str, float]:
    """When each run was first seen SUCCESS in the read model (epoch seconds). Runs beside the submissions:
    `run_ids` may still grow until it holds `expected` ids. Asks only about the runs not seen yet, by key, so
    a look costs what is still pending, not what the database holds."""
    expected = len(run_ids) if expected is None else expected
    seen: dict[str, float] = {}
    pending: dict[UUID, str] = {}
    bar = ProgressBar("  runs", width=20)
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        for run_id in run_ids[len(seen) + len(pending) :]:
            pending[UUID(run_id)] = run_id
        if pending:
            async with reading(container.engine).connect() as conn:  # no BEGIN/ROLLBACK: not the service's work
                rows = (await conn.execute(_SUCCEEDED, {"ids": list(pending)})).scalars().all()
            now = time.time()
            for key in rows:
                seen[pending.pop(key)] = now
        bar(len(seen), expected)
        if len(run_ids) >= expected and len(seen) >= expected:
            return {run_id: seen[run_id] for run_id in run_ids}
        await asyncio.sleep(0.05)
    raise RuntimeError(f"runs did not all succeed within {limit_seconds}s")


async def stage_times(container: Container, run_ids: list[str]) -> dict[str, dict[str, float]]:
    from app.adapters.codec import decode_event

    times: dict[str, dict[str, float]] = {r: {} for r in run_ids}
    async with container.engine.connect() as conn:
        rows = (await conn.execute(_TIMES, {"ids": [UUID(r) for r in run_ids]})).all()
    for originator_id, topic, state in rows:
        event = decode_event(originator_id, 1, topic, state)
        key = topic.rsplit(".", 1)[1]
        stamp = event.__dict__["started_at"] if key == "RunStarted" else event.timestamp
        times[str(originator_id)].setdefault(key, stamp.timestamp())
    return times


class PublishTimes:
    """Reads the execution topic in a group of its own, noting when each run's message was published."""

    def __init__(self, stack: BenchStack) -> None:
        self.consumer = AIOKafkaConsumer(
            *kafka.consumed_topics(stack.settings, stack.settings.execution_topic),
            bootstrap_servers=stack.settings.required_kafka,
            group_id=f"{stack.settings.consumer_group}-observer",
            auto_offset_reset="latest",
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        self.published: dict[str, float] = {}
        self.kafka = KafkaTally()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "PublishTimes":
        await self.consumer.start()
        while not self.consumer.assignment():  # noqa: ASYNC110 - aiokafka offers no event for it
            await asyncio.sleep(0.1)
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    self.published.setdefault((record.key or b"").decode(), record.timestamp / 1000)
                    self.kafka.add(record.key, record.value, record.headers)

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()


async def settle(container: Container) -> None:
    """Between phases, as pgbench does: vacuum what the last phase churned (a burst leaves dead outbox and
    read-model rows that autovacuum would otherwise clear during the next phase, and be measured doing so).
    Then a checkpoint, so the pages the last phase dirtied are written now rather than during the next phase
    (a history loaded by COPY, or a rebuild, leaves hundreds of MB); skipped where the role may not."""
    async with container.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("outbox", "run_status", "events"):
            await conn.execute(text(f"VACUUM (ANALYZE) {table}"))
        with contextlib.suppress(ProgrammingError):  # insufficient privilege: not a superuser nor pg_checkpoint
            await conn.execute(text("CHECKPOINT"))


async def submissions_alone(
    stack: BenchStack, container: Container, api: ApiConnections, report: Report, runs: int, concurrency: int
) -> None:
    """TestJob over HTTP with the relay paused: what the API and the database take in when nothing executes
    meanwhile. The queued runs are executed once the relay resumes, before the next phase."""
    relays = stack.role_processes("relay")
    for relay in relays:
        relay.send_signal(signal.SIGSTOP)
    try:
        run_ids, latencies, wall = await submit(api, runs, concurrency)
    finally:
        for relay in relays:
            relay.send_signal(signal.SIGCONT)
    report.add("testjob_submissions_per_s", runs / wall, "runs/s", ">= 2000")
    for p in (50, 95, 99):
        report.add(f"submit_latency_p{p}", percentile(latencies, p), "ms")
    await wait_succeeded(container, run_ids)


async def throughput(
    stack: BenchStack, container: Container, api: ApiConnections, report: Report, runs: int, concurrency: int
) -> None:
    before = await costs.snapshot(container)
    async with PublishTimes(stack) as publish:
        submitted: list[str] = []
        watcher = asyncio.create_task(wait_succeeded(container, submitted, expected=runs))
        cpu_before, load_before = stack.cpu_seconds(), own_cpu_seconds()
        first = time.time()
        run_ids, latencies, wall = await submit(api, runs, concurrency, submitted)
        seen = await watcher
        cpu_after, load_after = stack.cpu_seconds(), own_cpu_seconds()
    cpu_figures(report, cpu_before, cpu_after, load_after - load_before, runs)
    costs.cost_figures(report, before, await costs.snapshot(container), publish.kafka, runs)
    report.add("testjob_submissions_per_s_while_executing", runs / wall, "runs/s")
    for p in (50, 99):
        report.add(f"submit_latency_while_executing_p{p}", percentile(latencies, p), "ms")
    report.add("end_to_end_runs_per_s", runs / (max(seen.values()) - first), "runs/s", ">= 1000")
    stage_figures(report, "stage", await stage_times(container, run_ids), publish.published, seen)
    await execution_figures(stack, container, report, run_ids)


SERVICE_KINDS = ("api", "relay", "worker", "postgres", "broker")


def cpu_figures(
    report: Report,
    before: dict[str, float],
    after: dict[str, float],
    load_seconds: float | None,
    runs: int,
    suffix: str = "",
) -> None:
    """CPU milliseconds one run cost in a phase: the service's processes together (roles, PostgreSQL with its
    backends, the broker) and each of them; the no-op endpoint and the load generator (when given) apart."""
    spent = {kind: (after.get(kind, 0.0) - before.get(kind, 0.0)) * 1000 / runs for kind in after}
    report.add(f"cpu_ms_per_run{suffix}", sum(spent.get(kind, 0.0) for kind in SERVICE_KINDS), "ms")
    for kind in (*SERVICE_KINDS, "noop"):
        if kind in spent:
            report.add(f"cpu_ms_per_run_{kind}{suffix}", spent[kind], "ms")
    if load_seconds is not None:
        report.add(f"cpu_ms_per_run_load{suffix}", load_seconds * 1000 / runs, "ms")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def stage_figures(
    report: Report,
    prefix: str,
    times: dict[str, dict[str, float]],
    published: dict[str, float],
    seen: dict[str, float],
    suffix: str = "",
) -> None:
    """p50 and p99 of each stage a run goes through: commit → published → consumer start → completed → visible
    (named `<prefix>_<stage>_p<n>[_<suffix>]`)."""
    stages: dict[str, list[float]] = {
        "commit_to_published": [],
        "published_to_started": [],
        "started_to_completed": [],
        "completed_to_visible": [],
    }
    for run_id, t in times.items():
        at = published.get(run_id)
        if at is not None and "RunCreated" in t and "RunStarted" in t:
            stages["commit_to_published"].append(at - t["RunCreated"])
            stages["published_to_started"].append(t["RunStarted"] - at)
        if "RunStarted" in t and "RunCompleted" in t:
            stages["started_to_completed"].append(t["RunCompleted"] - t["RunStarted"])
            stages["completed_to_visible"].append(seen[run_id] - t["RunCompleted"])
    for stage, values in stages.items():
        for p in (50, 99):
            name = f"{prefix}_{stage}_p{p}" + (f"_{suffix}" if suffix else "")
            report.add(name, percentile(values, p) * 1000, "ms")


_UNPUBLISHED = text("SELECT count(*) FROM outbox WHERE topic = :t AND published_at IS NULL")


async def relay_rate(stack: BenchStack, container: Container, report: Report, messages: int) -> None:
    topic = f"{stack.settings.execution_topic}.relay-bench"
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO outbox (topic, key, value, headers) SELECT :topic, g::text, 'x'::bytea, "
                '\'{"type": "RelayBench"}\'::jsonb FROM generate_series(1, :n) g'
            ),
            {"topic": topic, "n": messages},
        )
    began = time.perf_counter()
    while True:
        async with container.engine.connect() as conn:
            left = (await conn.execute(_UNPUBLISHED, {"t": topic})).scalar()
        if not left:
            break
        await asyncio.sleep(0.01)
    report.add("relay_messages_per_s", messages / (time.perf_counter() - began), "msgs/s")
    async with container.engine.begin() as conn:  # no worker consumes this topic: its rows would stay
        await conn.execute(text("DELETE FROM outbox WHERE topic = :t"), {"t": topic})


async def register(api: ApiConnections, stack: BenchStack) -> None:
    status, answer = await api.post("/api/v1/endpoints", {"id": "bench", "url": stack.endpoint_url})
    if status != 200:
        raise LoadError(f"registering the no-op endpoint answered {status}: {answer}")


def peak_memory(stack: BenchStack, report: Report) -> None:
    for role, rss in sorted(stack.peak_rss.items()):
        report.add(f"peak_rss_{role}", rss / 2**20, "MiB")


def spans_exported(sink_url: str, report: Report) -> None:
    """How many spans the roles exported to the bench's receiver (`--export-traces`), a few seconds after the
    load: their batch processors send every few seconds."""
    import json
    import urllib.request

    time.sleep(6)
    with urllib.request.urlopen(f"{sink_url}/spans", timeout=5) as answer:
        report.add("spans_exported", json.load(answer)["spans"], "spans")
