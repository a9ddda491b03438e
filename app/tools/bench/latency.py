"""The bench's latency phases: steady rates (submit → started, and each stage), and where the throughput
phase's backlog waits (the outbox, or published and not yet handled)."""

import asyncio
import time
from dataclasses import dataclass, field

from sqlalchemy import text

from app.container import Container
from app.tools.bench import measure
from app.tools.bench.figures import Report, percentile
from app.tools.bench.load import ApiConnections
from app.tools.bench.stack import BenchStack

DEFAULT_RATES = (500, 1000)
TARGETS = {500: "<= 25", 1000: "<= 50"}  # p99 submit → started, ms (issue 16)


async def steady(
    stack: BenchStack, container: Container, api: ApiConnections, report: Report, rate: int, seconds: float
) -> None:
    """Submit at a steady `rate` for `seconds`; the rate achieved, submit → started (p50, p99, p99.9, max) and
    each stage's p50 and p99, and the CPU a run cost, every figure named with its rate (`…_at_500_per_s`).

    The submissions are due at fixed times, each sent as soon as a connection is free; submit → started is
    measured from the run's RunCreated (stamped by the API) to its RunStarted (stamped by the worker), so a
    late load generator shows in the rate achieved, not in the latency."""
    total = int(rate * seconds)
    run_ids: list[str] = []
    lateness: list[float] = []

    async def one(due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        lateness.append(time.perf_counter() - due)
        run_ids.append(await measure.test_job(api))

    suffix = f"at_{rate}_per_s"
    async with measure.PublishTimes(stack) as publish:
        watcher = asyncio.create_task(measure.wait_succeeded(container, run_ids, expected=total))
        cpu_before, load_before = stack.cpu_seconds(), measure.own_cpu_seconds()
        begin = time.perf_counter()
        await asyncio.gather(*(one(begin + i / rate) for i in range(total)))
        wall = time.perf_counter() - begin
        load_cpu = measure.own_cpu_seconds() - load_before
        seen = await watcher
        cpu_after = stack.cpu_seconds()
    times = await measure.stage_times(container, run_ids)
    waits = [(t["RunStarted"] - t["RunCreated"]) * 1000 for t in times.values() if "RunStarted" in t]
    report.add(f"steady_rate_achieved_{suffix}", total / wall, "runs/s")
    report.add(f"load_generator_cpu_share_{suffix}", 100 * load_cpu / wall, "% of a core")
    report.add(f"load_generator_late_p99_{suffix}", percentile(lateness, 99) * 1000, "ms")
    report.add(f"submit_to_started_p50_{suffix}", percentile(waits, 50), "ms")
    report.add(f"submit_to_started_p99_{suffix}", percentile(waits, 99), "ms", TARGETS.get(rate))
    report.add(f"submit_to_started_p99_9_{suffix}", percentile(waits, 99.9), "ms")
    report.add(f"submit_to_started_max_{suffix}", max(waits, default=float("nan")), "ms")
    # What the stack spent from the first submission until every run succeeded, idle polling included: at a
    # rate below saturation each hop carries smaller batches, so a run costs more than at full throughput.
    measure.cpu_figures(report, cpu_before, cpu_after, None, total, f"_{suffix}")
    measure.stage_figures(report, "steady_stage", times, publish.published, seen, suffix)


_QUEUED = text(
    "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FILTER (WHERE published_at IS NOT NULL) FROM outbox"
)


@dataclass
class Backlog:
    """Samples, every `interval` seconds, where accepted runs wait: rows not yet published (the outbox) and
    rows published whose message no worker has handled yet (in the broker or in a worker's hands; a worker
    holds at most JOBS_WORKER_CONCURRENCY of them). Other messages than executions count too."""

    container: Container
    interval: float = 0.1
    unpublished: list[int] = field(default_factory=list)
    published: list[int] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Backlog":
        self.task = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            async with self.container.engine.connect() as conn:
                unpublished, published = (await conn.execute(_QUEUED)).one()
            self.unpublished.append(unpublished)
            self.published.append(published)
            await asyncio.sleep(self.interval)

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def figures(self, report: Report) -> None:
        for name, values in (("outbox", self.unpublished), ("published_unhandled", self.published)):
            report.add(f"backlog_{name}_p50", percentile([float(v) for v in values], 50), "messages")
            report.add(f"backlog_{name}_max", max(values, default=0), "messages")
