"""The stack a benchmark measures: embedded services unless configured, a no-op endpoint, and each role in
its own process (as deployed), with the peak memory of each role sampled."""

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from app.db import migrate_sync
from app.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from app.sealing import generate_key
from app.settings import Settings
from app.topic_ring import EMBEDDED_BROKER_PERIOD_SECONDS

ROLES = ("api", "relay", "worker")


@dataclass
class BenchStack:
    settings: Settings
    api_key: str
    endpoint_url: str
    processes: dict[str, "subprocess.Popen[bytes]"] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"


@contextlib.contextmanager
def bench_stack(settings: Settings, work_dir: Path) -> Iterator[BenchStack]:
    with contextlib.ExitStack() as services:
        database_url = settings.database_url
        if not database_url:
            database_url = services.enter_context(EmbeddedPostgres(work_dir / "postgres")).url
        database_url = _fresh_database(database_url)
        kafka = settings.kafka_bootstrap_servers
        ring_seconds = settings.topic_ring_seconds
        if not kafka:
            kafka = services.enter_context(EmbeddedKafka(log_path=work_dir / "broker.log")).bootstrap_servers
            ring_seconds = ring_seconds or EMBEDDED_BROKER_PERIOD_SECONDS
        run = uuid.uuid4().hex[:8]
        settings = Settings(
            database_url=database_url,
            kafka_bootstrap_servers=kafka,
            port=free_port(),
            execution_topic=f"bench-{run}",
            consumer_group=f"bench-{run}",
            allowed_private_networks="127.0.0.0/8",
            worker_concurrency=settings.worker_concurrency,
            topic_ring_seconds=ring_seconds,
            secret_key=settings.secret_key or generate_key(),
        )
        migrate_sync(database_url)
        api_key = _create_environment(settings)
        endpoint = services.enter_context(_process([sys.executable, "-m", "app.bench.noop_endpoint"], work_dir, "noop"))
        port = _ready_port(endpoint, work_dir / "noop.log")
        stack = BenchStack(settings, api_key, f"http://127.0.0.1:{port}/api/trigger")
        for role in ROLES:
            stack.processes[role] = services.enter_context(
                _process([sys.executable, "-m", "app.cli", role], work_dir, role, _role_env(settings))
            )
            _wait_running(stack.processes[role], work_dir / f"{role}.log")
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(stack, stop), daemon=True)
        sampler.start()
        try:
            yield stack
        finally:
            stop.set()
            sampler.join()


def _role_env(settings: Settings) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.required_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.required_kafka,
        "JOBS_PORT": str(settings.port),
        "JOBS_EXECUTION_TOPIC": settings.execution_topic,
        "JOBS_CONSUMER_GROUP": settings.consumer_group,
        "JOBS_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        "JOBS_SECRET_KEY": settings.required_secret_key,
        "JOBS_WORKER_CONCURRENCY": str(settings.worker_concurrency),
        "JOBS_TOPIC_RING_SECONDS": str(settings.topic_ring_seconds),
        "JOBS_LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def _process(
    command: list[str], work_dir: Path, name: str, env: dict[str, str] | None = None
) -> Iterator["subprocess.Popen[bytes]"]:
    with (work_dir / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_running(process: "subprocess.Popen[bytes]", log: Path, marker: str = "running") -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text()
        if marker in text:
            return text
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited:\n{text[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{log.stem} did not start")


def _ready_port(process: "subprocess.Popen[bytes]", log: Path) -> int:
    text = _wait_running(process, log, "READY ")
    return int(text.split("READY ")[1].split()[0])


def _sample_rss(stack: BenchStack, stop: threading.Event) -> None:
    while not stop.wait(0.25):
        for role, process in stack.processes.items():
            with contextlib.suppress(psutil.Error):
                rss = psutil.Process(process.pid).memory_info().rss
                stack.peak_rss[role] = max(stack.peak_rss.get(role, 0), rss)


def _fresh_database(url: str) -> str:
    """A new database on the same server, so a benchmark starts empty and leaves other data alone."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"bench_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()

    asyncio.run(create())
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _create_environment(settings: Settings) -> str:
    import asyncio

    from app.container import Container
    from domain.environments import EnvironmentType

    async def create() -> str:
        container = Container.create(settings)
        try:
            _, key = await container.environments.create("bench", EnvironmentType.PRODUCTION)
        finally:
            await container.close()
        return key

    return asyncio.run(create())
