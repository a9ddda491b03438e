"""`jobs-service bench`: start the stack (embedded unless configured), measure it, print one JSON line per
figure, and optionally record the figures in benchmarks/results/."""

import asyncio
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from app import event_loop
from app.container import Container
from app.settings import Settings
from app.tools.bench import history, latency, measure
from app.tools.bench.dashboard import dashboard_phase
from app.tools.bench.figures import Report
from app.tools.bench.load import ApiConnections
from app.tools.bench.profile import profiling
from app.tools.bench.rebuild_phase import rebuild_phase
from app.tools.bench.stack import BenchStack, bench_stack

RESULTS = Path("benchmarks/results")


@dataclass(frozen=True)
class BenchOptions:
    runs: int = 5000
    concurrency: int = 64
    rates: tuple[int, ...] = latency.DEFAULT_RATES
    steady_seconds: float = 10.0
    relay_messages: int = 20_000
    rebuild_events: int = 100_000
    dashboard_pages: int = 0  # > 0: the dashboard phase, with this many run pages open
    peer: bool = True
    record: bool = False
    export_traces: bool = False
    replicas: int = 1  # processes of each role (API, relay, worker)
    throughput_only: bool = False  # only the throughput phase (and the peers)
    steady_only: bool = False  # only the steady phases: a quick look at latency
    rebuild_only: bool = False  # only the rebuild phase
    profile: Path | None = None  # py-spy profiles: the roles in the throughput (or steady) phases, or the rebuild
    history: int = 0  # > 0: load this many events of history, then measure again (app/tools/bench/history.py)
    gets: int = 2000  # GET of a run, in the GET phase


def run_bench(settings: Settings, options: BenchOptions) -> Report:
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    with bench_stack(settings, work, export_traces=options.export_traces, replicas=options.replicas) as stack:
        event_loop.run(_measure(stack, report, options))
        measure.peak_memory(stack, report)
        if stack.trace_sink_url is not None:
            measure.spans_exported(stack.trace_sink_url, report)
        if options.peer and not options.steady_only and not options.rebuild_only:
            database_url = stack.settings.required_database_url
            asyncio.run(_peer(database_url, database_url + "_peer", report, options))
            _celery_peer(work, report, options)
            _ratios(report)
    shutil.rmtree(work, ignore_errors=True)  # kept, with the roles' logs, when the benchmark fails
    if options.record:
        print(f"recorded in {report.record(RESULTS, options.__dict__)}")
    return report


async def _measure(stack: object, report: Report, options: BenchOptions) -> None:
    from app.tools.bench.stack import BenchStack

    assert isinstance(stack, BenchStack)
    container = Container.create(replace(stack.settings, db_pool_size=5))
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    api = ApiConnections(stack.api_urls, headers, options.concurrency)
    try:
        await measure.register(api, stack)
        warm_up, _, _ = await measure.submit(api, 200, 16)
        if options.steady_only:
            await _steady_phases(stack, container, api, report, options)
            return
        if options.rebuild_only:
            await measure.wait_succeeded(container, warm_up)
            await measure.settle(container)
            print(f"# projections rebuild over at least {options.rebuild_events} events")
            await rebuild_phase(stack, container, api, report, options.rebuild_events, options.profile)
            return
        if options.throughput_only:
            await measure.wait_succeeded(container, warm_up)  # done before the phase's counters start
            await measure.settle(container)
            print(f"# {options.runs} TestJobs, {options.concurrency} at once, to SUCCESS on a no-op endpoint")
            with profiling(stack, options.profile):
                await measure.throughput(stack, container, api, report, options.runs, options.concurrency)
            return
        print(f"# {options.runs} TestJobs, {options.concurrency} at once, relay paused (the API alone)")
        await measure.submissions_alone(stack, container, api, report, options.runs, options.concurrency)
        await measure.settle(container)
        print(f"# {options.runs} TestJobs, {options.concurrency} at once, to SUCCESS on a no-op endpoint")
        async with latency.Backlog(container) as backlog:
            with profiling(stack, options.profile):
                await measure.throughput(stack, container, api, report, options.runs, options.concurrency)
        backlog.figures(report)
        await measure.settle(container)
        print(f"# GET of a run, {options.gets} times, {history.GET_CONCURRENCY} at once")
        await history.get_runs(container.engine, api, report, options.gets)
        if options.dashboard_pages:
            await dashboard_phase(
                stack, container, api, report, options.runs, options.concurrency, options.dashboard_pages
            )
            await measure.settle(container)
        await _steady_phases(stack, container, api, report, options)
        print(f"# relay: {options.relay_messages} outbox rows")
        await measure.relay_rate(stack, container, report, options.relay_messages)
        print(f"# projections rebuild over at least {options.rebuild_events} events")
        await rebuild_phase(stack, container, api, report, options.rebuild_events)
        if options.history:
            await measure.settle(container)
            shape = history.HistoryOptions(options.history, options.runs, options.concurrency, options.gets)
            await history.history_phase(stack, container, api, report, shape)
    finally:
        await api.close()
        await container.close()


async def _steady_phases(
    stack: BenchStack, container: Container, api: ApiConnections, report: Report, options: BenchOptions
) -> None:
    for rate in options.rates:
        print(f"# {rate} runs/s for {options.steady_seconds:g}s")
        # With --steady-only the profile is of the steady phases (one directory per rate).
        out_dir = options.profile / f"at-{rate}" if options.steady_only and options.profile else None
        with profiling(stack, out_dir):
            await latency.steady(stack, container, api, report, rate, options.steady_seconds)
        await measure.settle(container)


async def _peer(database_url: str, peer_database: str, report: Report, options: BenchOptions) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.tools.bench.peer import procrastinate_figures

    name = peer_database.rsplit("/", 1)[1]
    admin = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    print(f"# peer: procrastinate, {options.runs} no-op jobs")
    await procrastinate_figures(peer_database, options.runs, 10, report)


def _celery_peer(work: Path, report: Report, options: BenchOptions) -> None:
    from app.tools.bench.celery_peer import POOL_PROCESSES, celery_figures

    if shutil.which("redis-server") is None:  # the bench's own figures still count
        print("# peer: Celery + Redis skipped: no redis-server on PATH")
        return
    print(f"# peer: Celery + Redis, prefork x {POOL_PROCESSES}, {options.runs} no-op tasks")
    celery_figures(options.runs, work, report)


def _ratios(report: Report) -> None:
    """The end to end rate against each peer's, measured in the same run."""
    values = {figure.figure: figure.value for figure in report.figures}
    ours = values.get("end_to_end_runs_per_s")
    for name, peer in (
        ("celery", "peer_celery_redis_tasks_per_s"),
        ("procrastinate", "peer_procrastinate_end_to_end_per_s"),
    ):
        if ours and values.get(peer):
            report.add(f"end_to_end_vs_{name}", ours / values[peer], "x")
