"""The second peer for comparison: Celery on Redis (broker and result backend, no persistence), a prefork
worker pool of 2 (the cores of the machine the bench was made on) running no-op tasks.

The bench process enqueues every task, then waits until each one's result is stored; the figure is tasks/s
from the first enqueue to the last result. Redis is a `redis-server` of the bench's own, on a free port, and
the worker is `celery worker` as its users start it; both stop with the phase. This module is also the
worker's Celery app (`celery -A app.tools.bench.celery_peer`), which reads the Redis URL from
BENCH_CELERY_REDIS_URL."""

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
from celery import Celery
from celery.signals import worker_ready

from app.tools.bench.figures import Report
from app.tools.bench.stack import child_process
from app.tools.embedded import free_port

REDIS_URL_VARIABLE = "BENCH_CELERY_REDIS_URL"
POOL_PROCESSES = 2

app = Celery("bench-peer")
app.conf.update(
    broker_url=os.environ.get(REDIS_URL_VARIABLE, "redis://127.0.0.1:6379/0"),
    result_backend=os.environ.get(REDIS_URL_VARIABLE, "redis://127.0.0.1:6379/0"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def _noop() -> None:
    return None


def _announce(**_: object) -> None:
    print("celery worker ready", flush=True)


noop: Any = app.task(name="noop")(_noop)
worker_ready.connect(_announce, weak=False)


def celery_figures(tasks: int, work_dir: Path, report: Report) -> None:
    """Enqueue `tasks` no-op tasks, wait for every result, and add the peer's figures to `report`."""
    with _redis(work_dir) as url, _worker(url, work_dir) as worker:
        app.conf.update(broker_url=url, result_backend=url)
        processes = [worker, *worker.children(recursive=True)]
        cpu_before = _cpu_seconds(processes)
        began = time.perf_counter()
        ids = [noop.delay().id for _ in range(tasks)]
        enqueued = time.perf_counter()
        _wait_results(ids)
        done = time.perf_counter()
        cpu = _cpu_seconds(processes) - cpu_before
    report.add("peer_celery_redis_enqueues_per_s", tasks / (enqueued - began), "tasks/s")
    report.add("peer_celery_redis_tasks_per_s", tasks / (done - began), "tasks/s")
    report.add("peer_celery_redis_worker_cpu_ms_per_task", cpu * 1000 / tasks, "ms")


def _wait_results(ids: list[str], limit_seconds: float = 600) -> None:
    """Until every task's result is in the backend; asks only about the ones not seen yet."""
    client = app.backend.client
    pending = [app.backend.get_key_for_task(task_id) for task_id in ids]
    deadline = time.monotonic() + limit_seconds
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} Celery tasks unfinished after {limit_seconds:.0f}s")
        left = []
        for first in range(0, len(pending), 1000):
            chunk = pending[first : first + 1000]
            left += [key for key, value in zip(chunk, client.mget(chunk), strict=True) if value is None]
        pending = left
        if pending:
            time.sleep(0.01)


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


@contextlib.contextmanager
def _redis(work_dir: Path) -> Iterator[str]:
    """A redis-server of the bench's own on a free port, keeping nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the Celery peer needs redis-server on PATH")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with child_process(command, work_dir / "redis.log", {}) as redis:
        url = f"redis://127.0.0.1:{port}/0"
        _wait_until(lambda: "Ready to accept connections" in (work_dir / "redis.log").read_text(), redis, "redis")
        yield url


@contextlib.contextmanager
def _worker(url: str, work_dir: Path) -> Iterator[psutil.Process]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        __name__,
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(POOL_PROCESSES),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    log = work_dir / "celery.log"
    with child_process(command, log, {REDIS_URL_VARIABLE: url}) as worker:
        _wait_until(lambda: "celery worker ready" in log.read_text(), worker, "celery worker")
        yield psutil.Process(worker.pid)


def _wait_until(ready: Callable[[], bool], process: "subprocess.Popen[bytes]", name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start within 60s")
