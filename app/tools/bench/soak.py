"""`jobs-service bench --soak-minutes N --rate R`: what users run, a steady load for long.

TestJobs are submitted on a fixed schedule (open loop: a slow answer does not slow the schedule, up to the
connections allowed). A minute after each minute of load (plus a few seconds for its last runs) one JSON line
reports it: the rate achieved, submit → started and → completed (p50/p99) of the runs submitted in it, the
runs not finished yet, the RSS of every process, and the outbox. After the load, the stack gets
`drain_seconds` to finish everything, and a last line counts accepted runs against finished ones by status.

With `burst` (`--burst N`), N TestJobs are also submitted as fast as the connections allow before the soak and
again after it (once everything is finished): end to end runs/s and p99 submit → started of each, with the dead
tuples of the hot tables at that point, so what the soak's churn costs shows as the ratio of the two.
"""

import asyncio
import json
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import text

from app import event_loop
from app.container import Container
from app.settings import Settings
from app.tools.bench import measure
from app.tools.bench.figures import percentile, record_document
from app.tools.bench.load import ApiConnections
from app.tools.bench.stack import BenchStack, bench_stack, dev_stack

REPORT_GRACE_SECONDS = 10.0
CATCH_UP_SECONDS = 2.0  # behind its schedule by more than this, the load skips ahead instead of bursting
TERMINAL = ("SUCCESS", "FAILURE", "TIMED_OUT", "ABORTED", "CANCELED", "UNRESOLVED_AUTH", "INVALID_PAYLOAD")
_RUNS = text("SELECT status, created_at, started_at, completed_at FROM run_status WHERE id = ANY(:ids)")
_UNFINISHED = text("SELECT count(*) FROM run_status WHERE NOT (status = ANY(:terminal))")
_BY_STATUS = text("SELECT status, count(*) FROM run_status GROUP BY status")
_COMPLETED_BETWEEN = text("SELECT count(*) FROM run_status WHERE completed_at >= :since AND completed_at < :until")
_NOW = text("SELECT now()")
_OUTBOX = text("SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox")


@dataclass(frozen=True)
class SoakOptions:
    minutes: float
    rate: int
    stack: str = "roles"  # or "dev": `jobs-service dev` as one process tree
    endpoint_delay_ms: int = 0
    connections: int = 256
    drain_seconds: float = 30.0
    record: bool = False
    burst: int = 0  # > 0: a burst of this many runs before the soak and after it


@dataclass
class _Load:
    """What the load generator submitted, minute by minute, from when it began (by the database's clock)."""

    began_at: datetime
    accepted: dict[int, list[str]] = field(default_factory=dict)
    refused: Counter[int] = field(default_factory=Counter)

    def minute(self, minute: int) -> dict[str, datetime]:
        return {
            "since": self.began_at + timedelta(minutes=minute),
            "until": self.began_at + timedelta(minutes=minute + 1),
        }


def run_soak(settings: Settings, options: SoakOptions) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="jobs-soak-"))
    if options.stack == "dev":
        stack_context = dev_stack(work, options.endpoint_delay_ms)
    else:
        stack_context = bench_stack(settings, work, options.endpoint_delay_ms)
    with stack_context as stack:
        lines: list[dict[str, Any]] = event_loop.run(_soak(stack, options))
    if options.record:
        path = record_document(Path("benchmarks/results"), f"soak-{options.stack}", asdict(options), lines)
        print(f"recorded in {path}")
    return lines


async def _soak(stack: BenchStack, options: SoakOptions) -> list[dict[str, Any]]:
    container = Container.create(replace(stack.settings, db_pool_size=4))
    api = ApiConnections(stack.api_url, {"Authorization": f"Bearer {stack.api_key}"}, options.connections)
    lines: list[dict[str, Any]] = []
    try:
        await measure.register(api, stack)
        async with container.engine.connect() as conn:
            load = _Load((await conn.execute(_NOW)).scalar_one())
        if options.burst:
            # Warm first, as the bench does: a fresh stack's first runs (connections, topics, caches) would
            # otherwise make the burst before look slower than the one after for reasons other than churn.
            warm, _, _ = await measure.submit(api, 500, 16)
            await measure.wait_succeeded(container, warm)
            lines.append(await burst(container, api, options.burst, "before"))
            _print(lines[-1])
            async with container.engine.connect() as conn:
                load = _Load((await conn.execute(_NOW)).scalar_one())
        print(f"# soak: {options.rate} TestJobs/s for {options.minutes:g} min on the {options.stack} stack", flush=True)
        began = time.monotonic()
        minutes = int(options.minutes)
        reporter = asyncio.create_task(_report_minutes(stack, container, load, began, minutes, lines))
        await _submit(api, options, load, began)
        await reporter
        lines.append(await _final(container, load, options.drain_seconds))
        _print(lines[-1])
        if options.burst:
            lines.append(await burst(container, api, options.burst, "after"))
            _print(lines[-1])
            lines.append(burst_ratio(lines[0], lines[-1]))
            _print(lines[-1])
    finally:
        await api.close()
        await container.close()
    return lines


async def _submit(api: ApiConnections, options: SoakOptions, load: _Load, began: float) -> None:
    slots = asyncio.Semaphore(options.connections)
    pending: set[asyncio.Task[None]] = set()

    async def one(minute: int) -> None:
        try:
            run_id = await measure.test_job(api)
        except Exception:
            load.refused[minute] += 1
        else:
            load.accepted.setdefault(minute, []).append(run_id)
        finally:
            slots.release()

    total = int(options.minutes * 60 * options.rate)
    n = 0
    while n < total:
        due = began + n / options.rate
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        elif wait < -CATCH_UP_SECONDS:
            # The generator itself stalled (a paused machine, say): what it missed is skipped, not sent at once
            # as a burst no user would make; the rate achieved shows the gap.
            n = min(total, int((time.monotonic() - began) * options.rate))
            continue
        await slots.acquire()  # all connections busy: the schedule slips, and the rate achieved shows it
        task = asyncio.create_task(one(int((time.monotonic() - began) // 60)))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
    await asyncio.gather(*pending)


async def _report_minutes(
    stack: BenchStack, container: Container, load: _Load, began: float, minutes: int, lines: list[dict[str, Any]]
) -> None:
    for minute in range(minutes):
        await asyncio.sleep(max(0.0, began + (minute + 1) * 60 + REPORT_GRACE_SECONDS - time.monotonic()))
        lines.append(await _minute(stack, container, minute, load))
        _print(lines[-1])


async def _minute(stack: BenchStack, container: Container, minute: int, load: _Load) -> dict[str, Any]:
    run_ids = load.accepted.get(minute, [])
    async with container.engine.connect() as conn:
        rows = (await conn.execute(_RUNS, {"ids": [UUID(r) for r in run_ids]})).all()
        unfinished = (await conn.execute(_UNFINISHED, {"terminal": list(TERMINAL)})).scalar_one()
        outbox, unpublished = (await conn.execute(_OUTBOX)).one()
        completions = (await conn.execute(_COMPLETED_BETWEEN, load.minute(minute))).scalar_one()
    started = [(r.started_at - r.created_at).total_seconds() * 1000 for r in rows if r.started_at]
    completed = [(r.completed_at - r.created_at).total_seconds() * 1000 for r in rows if r.completed_at]
    return {
        "minute": minute + 1,
        "rate": round(len(run_ids) / 60, 1),
        "refused": load.refused[minute],
        "completed_per_s": round(completions / 60, 1),
        "started_p50_ms": _ms(percentile(started, 50)),
        "started_p99_ms": _ms(percentile(started, 99)),
        "completed_p50_ms": _ms(percentile(completed, 50)),
        "completed_p99_ms": _ms(percentile(completed, 99)),
        "unfinished_of_minute": len(run_ids) - len(completed),
        "unfinished": unfinished,
        "outbox_rows": outbox,
        "outbox_unpublished": unpublished,
        "pss_mib": {name: round(pss / 2**20) for name, pss in sorted(stack.memory().items())},
    }


async def _final(container: Container, load: _Load, drain_seconds: float) -> dict[str, Any]:
    accepted = sum(len(ids) for ids in load.accepted.values())
    deadline = time.monotonic() + drain_seconds
    while True:
        async with container.engine.connect() as conn:
            unfinished = (await conn.execute(_UNFINISHED, {"terminal": list(TERMINAL)})).scalar_one()
        if not unfinished or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    async with container.engine.connect() as conn:
        statuses: dict[str, int] = {status: n for status, n in (await conn.execute(_BY_STATUS)).all()}
    return {
        "accepted": accepted,
        "refused": sum(load.refused.values()),
        "finished_by_status": {k: v for k, v in sorted(statuses.items()) if k in TERMINAL},
        "unfinished_after_drain": unfinished,
        "drain_seconds": drain_seconds,
    }


BURST_CONCURRENCY = 64
HOT_TABLES = ("run_status", "outbox", "events", "event_dispatchers", "schedules", "kv_items")
_DEAD_TUPLES = text(
    "SELECT relname, n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
    "WHERE relname = ANY(:tables) ORDER BY relname"
)


async def burst(container: Container, api: ApiConnections, runs: int, when: str) -> dict[str, Any]:
    """`runs` TestJobs as fast as BURST_CONCURRENCY connections submit them, each to SUCCESS."""
    print(f"# burst {when} the soak: {runs} TestJobs, {BURST_CONCURRENCY} at once", flush=True)
    tables = await hot_tables(container)
    submitted: list[str] = []
    watcher = asyncio.create_task(measure.wait_succeeded(container, submitted, expected=runs))
    first = time.time()
    await measure.submit(api, runs, BURST_CONCURRENCY, submitted)
    seen = await watcher
    times = await measure.stage_times(container, submitted)
    waits = [(t["RunStarted"] - t["RunCreated"]) * 1000 for t in times.values() if "RunStarted" in t]
    return {
        "burst": when,
        "runs": runs,
        "end_to_end_runs_per_s": round(runs / (max(seen.values()) - first), 1),
        "started_p50_ms": _ms(percentile(waits, 50)),
        "started_p99_ms": _ms(percentile(waits, 99)),
        "tables": tables,
    }


def burst_ratio(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        "burst_after_over_before": round(after["end_to_end_runs_per_s"] / before["end_to_end_runs_per_s"], 3),
        "started_p99_after_over_before": round((after["started_p99_ms"] or 0) / (before["started_p99_ms"] or 1), 3),
    }


async def hot_tables(container: Container) -> dict[str, dict[str, int]]:
    """Live and dead tuples of the tables the pipeline churns, and how many of their updates were HOT."""
    async with container.engine.connect() as conn:
        rows = (await conn.execute(_DEAD_TUPLES, {"tables": list(HOT_TABLES)})).all()
    return {
        r.relname: {"live": r.n_live_tup, "dead": r.n_dead_tup, "upd": r.n_tup_upd, "hot_upd": r.n_tup_hot_upd}
        for r in rows
    }


def _ms(value: float) -> float | None:
    return None if value != value else round(value, 1)  # NaN: nothing to measure


def _print(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)
