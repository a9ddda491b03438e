"""No run executed twice: what the no-op endpoint was asked (EXECUTE_JOB calls per run) and what the event store
holds (one RunStarted per attempt, one RunCompleted per run), for the runs of a phase. With several relays and
workers (`bench --replicas`), this is what shows they did not step on each other."""

import asyncio
import json
import urllib.request
from collections import Counter
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import text

from app.container import Container
from app.tools.bench.figures import Report
from app.tools.bench.stack import BenchStack

_RUN_EVENTS = text(
    "SELECT originator_id, topic, state FROM events WHERE originator_id = ANY(:ids) "
    "AND topic IN ('jobs.JobRun.RunStarted', 'jobs.JobRun.RunCompleted')"
)


async def endpoint_calls(stack: BenchStack) -> Counter[str]:
    """EXECUTE_JOB calls the no-op endpoint has had, by run id, since it started."""
    url = urlsplit(stack.endpoint_url)

    def fetch() -> Counter[str]:
        with urllib.request.urlopen(f"{url.scheme}://{url.netloc}/executions", timeout=10) as answer:
            return Counter(json.load(answer))

    return await asyncio.to_thread(fetch)


async def store_counts(container: Container, run_ids: list[str]) -> tuple[Counter[tuple[str, int]], Counter[str]]:
    """RunStarted events by (run, attempt) and RunCompleted events by run."""
    from app.adapters.codec import decode_event

    started: Counter[tuple[str, int]] = Counter()
    completed: Counter[str] = Counter()
    async with container.engine.connect() as conn:
        rows = (await conn.execute(_RUN_EVENTS, {"ids": [UUID(r) for r in run_ids]})).all()
    for originator_id, topic, state in rows:
        if topic.endswith("RunStarted"):
            started[(str(originator_id), decode_event(originator_id, 1, topic, state).__dict__["attempt"])] += 1
        else:
            completed[str(originator_id)] += 1
    return started, completed


async def execution_figures(stack: BenchStack, container: Container, report: Report, run_ids: list[str]) -> None:
    """How many of `run_ids` were executed other than exactly once: each figure is 0 when all is well."""
    calls = await endpoint_calls(stack)
    started, completed = await store_counts(container, run_ids)
    report.add("runs_executed_twice", sum(1 for r in run_ids if calls[r] > 1), "runs", "0")
    report.add("runs_not_executed", sum(1 for r in run_ids if calls[r] == 0), "runs", "0")
    report.add("attempts_started_twice", sum(1 for n in started.values() if n > 1), "attempts", "0")
    report.add("runs_not_completed_once", sum(1 for r in run_ids if completed[r] != 1), "runs", "0")
