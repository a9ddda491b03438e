"""The bench's rebuild phase: a large store loaded with COPY, then `jobs-service projections rebuild` run as an
operator runs it, its memory sampled, while TestJobs arrive over HTTP at a steady rate."""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import psutil
from sqlalchemy import text

from app.adapters.codec import encode_event
from app.container import Container
from app.progress import ProgressBar
from app.tools.bench.figures import Report, percentile
from app.tools.bench.load import ApiConnections, LoadError
from app.tools.bench.measure import test_job
from app.tools.bench.profile import SAMPLES_PER_SECOND, Profile
from app.tools.bench.stack import BenchStack
from domain.runs import JobRun
from domain.status import RunStatus

SUBMIT_RATE = 200  # TestJobs per second while the rebuild runs
BASELINE_SECONDS = 5.0
MAX_IN_FLIGHT = 64
TEMPLATES = 64  # distinct finished runs whose events the synthetic ones copy (environments, tags)
COPY_ROWS = 50_000
_RESULT = re.compile(r"read models rebuilt from (\d+) events in ([\d.]+)s")


async def rebuild_phase(
    stack: BenchStack,
    container: Container,
    api: ApiConnections,
    report: Report,
    minimum_events: int,
    profile: Path | None = None,
) -> None:
    """With `profile`, py-spy samples the rebuild command and writes rebuild.txt and a summary there."""
    await load_events(container, minimum_events)
    before: list[float] = []  # the same load without a rebuild, to tell the rebuild's share from the machine's
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(BASELINE_SECONDS, stop.set)
    await _submit_steadily(api, before, stop)
    report.add("submitted_per_s_before_rebuild", len(before) / BASELINE_SECONDS, "runs/s")
    report.add("submit_latency_before_rebuild_p50", percentile(before, 50), "ms")
    report.add("submit_latency_before_rebuild_p99", percentile(before, 99), "ms")
    latencies: list[float] = []
    stop = asyncio.Event()
    submitting = asyncio.create_task(_submit_steadily(api, latencies, stop))
    began = time.perf_counter()
    try:
        replayed, seconds, peak_rss, cpu_seconds = await _run_rebuild(stack, profile)
    finally:
        stop.set()
        wall = time.perf_counter() - began
        await submitting
    report.add("rebuild_events", replayed, "events")
    report.add("rebuild_events_per_s", replayed / seconds, "events/s", ">= 100000")
    report.add("rebuild_peak_rss_mib", peak_rss / 2**20, "MiB", "<= 256 for 1M+ events")
    # Its own CPU (not its database backends'), which a busy or shared host does not change as it does the rate.
    report.add("rebuild_cpu_us_per_event", cpu_seconds / max(replayed, 1) * 1e6, "us")
    report.add("submitted_during_rebuild", len(latencies), "runs")
    report.add("submitted_per_s_during_rebuild", len(latencies) / wall, "runs/s", f"{SUBMIT_RATE} asked")
    report.add("submit_latency_during_rebuild_p50", percentile(latencies, 50), "ms")
    report.add("submit_latency_during_rebuild_p99", percentile(latencies, 99), "ms", "<= 100")


async def load_events(container: Container, minimum: int) -> None:
    """Add synthetic finished runs (three events each, encoded by the codec as any run's are) with COPY until
    the store holds `minimum` events. Only their read-model rows are missing: the rebuild makes them."""
    async with container.engine.connect() as conn:
        have = (await conn.execute(text("SELECT count(*) FROM events"))).scalar_one()
    templates = [_finished_run_events() for _ in range(TEMPLATES)]
    progress = ProgressBar("  load", width=20)
    async with container.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        while have < minimum:
            records: list[tuple[UUID, int, str, bytes]] = []
            for i in range(min(COPY_ROWS, minimum - have + 2) // 3 + 1):
                run_id = uuid4()
                records.extend((run_id, version, topic, state) for version, topic, state in templates[i % TEMPLATES])
            await driver.copy_records_to_table(
                "events", records=records, columns=["originator_id", "originator_version", "topic", "state"]
            )
            have += len(records)
            progress(have, max(minimum, have))
        await conn.commit()


def _finished_run_events() -> list[tuple[int, str, bytes]]:
    run = JobRun(
        id=uuid4(),
        environment_id=str(uuid4()),
        endpoint_id=str(uuid4()),
        job_slug="noop",
        job_version="1.0.0",
        event_record_id=str(uuid4()),
        is_test=True,
        tags=[f"t{uuid4().hex[:6]}"],
    )
    run.start(1, datetime.now(UTC), timedelta(seconds=60))
    run.complete(RunStatus.SUCCESS, {"ok": True})
    return [
        (stored.originator_version, stored.topic, stored.state) for stored in map(encode_event, run.collect_events())
    ]


async def _run_rebuild(stack: BenchStack, profile: Path | None) -> tuple[int, float, int, float]:
    """Run the command; how many events it replayed, in how long (as it reports), its peak RSS and CPU seconds."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "projections",
        "rebuild",
        env={
            **os.environ,
            "DATABASE_URL": stack.settings.required_database_url,
            "JOBS_SECRET_KEY": stack.settings.required_secret_key,
            "JOBS_LOG_LEVEL": "WARNING",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    watched = psutil.Process(process.pid)
    peak, cpu_seconds = 0, 0.0
    sampler = _py_spy(process.pid, profile) if profile else None
    communicating = asyncio.create_task(process.communicate())
    while not communicating.done():
        try:
            peak = max(peak, watched.memory_info().rss)
            times = watched.cpu_times()
            cpu_seconds = times.user + times.system
        except psutil.Error:
            pass
        await asyncio.sleep(0.05)
    out, err = communicating.result()
    if sampler is not None and profile is not None:
        await asyncio.to_thread(sampler.wait, 60)  # py-spy writes its output when the process it samples ends
        _summarize(profile, cpu_seconds)
    found = _RESULT.search(out.decode())
    if process.returncode != 0 or found is None:
        raise LoadError(f"projections rebuild failed ({process.returncode}): {err.decode()[-2000:]}")
    return int(found[1]), float(found[2]), peak, cpu_seconds


def _py_spy(pid: int, out_dir: Path) -> "subprocess.Popen[bytes]":
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--format", "raw"]
    command += ["--rate", str(SAMPLES_PER_SECOND), "--nonblocking", "--output", str(out_dir / "rebuild.txt")]
    with (out_dir / "rebuild.py-spy.log").open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _summarize(out_dir: Path, cpu_seconds: float) -> None:
    collapsed = out_dir / "rebuild.txt"
    if not collapsed.exists():
        print(f"# profile: no profile of the rebuild (see {out_dir / 'rebuild.py-spy.log'})")
        return
    profile = Profile.parse(collapsed.read_text())
    (out_dir / "rebuild.speedscope.json").write_text(json.dumps(profile.speedscope("rebuild")))
    (out_dir / "rebuild-summary.txt").write_text(profile.summary("rebuild", cpu_seconds) + "\n")
    print(f"# profile of the rebuild in {out_dir} (rebuild-summary.txt)")


async def _submit_steadily(api: ApiConnections, latencies: list[float], stop: asyncio.Event) -> None:
    """TestJob at SUBMIT_RATE until stopped; a tick finding MAX_IN_FLIGHT unanswered is skipped, so an API that
    cannot keep up shows as fewer submissions, not as a queue that grows (and the phase ends when the rebuild
    does)."""
    in_flight = 0

    async def one() -> None:
        nonlocal in_flight
        in_flight += 1
        started = time.perf_counter()
        try:
            await test_job(api)
        finally:
            in_flight -= 1
        latencies.append((time.perf_counter() - started) * 1000)

    sent: list[asyncio.Task[None]] = []
    ticks = 0
    begin = time.perf_counter()
    while not stop.is_set():
        if in_flight < MAX_IN_FLIGHT:
            sent.append(asyncio.create_task(one()))
        ticks += 1
        await asyncio.sleep(max(0.0, begin + ticks / SUBMIT_RATE - time.perf_counter()))
    await asyncio.gather(*sent)
