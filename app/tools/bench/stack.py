"""The stack a benchmark measures: embedded services unless configured, a no-op endpoint, and each role in
its own process (as deployed), with the peak memory of each role sampled."""

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from app.adapters.db import migrate_sync
from app.adapters.sealing import generate_key
from app.adapters.topic_ring import EMBEDDED_BROKER_PERIOD_SECONDS
from app.settings import Settings
from app.tools.embedded import EmbeddedKafka, EmbeddedPostgres, free_port

ROLES = ("api", "relay", "worker")


@dataclass
class BenchStack:
    settings: Settings
    api_key: str
    endpoint_url: str
    processes: dict[str, "subprocess.Popen[bytes]"] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    services: dict[str, int] = field(default_factory=dict)  # the embedded servers' process ids, by name
    trace_sink_url: str | None = None  # where the roles export their spans (`bench --export-traces`)
    api_ports: list[int] = field(default_factory=list)  # every API process's (the first is settings.port)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) every process of the stack has used so far, summed like `memory`."""
        totals: dict[str, float] = {}
        for kind, process in self._processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                totals[kind] = totals.get(kind, 0.0) + times.user + times.system
        return totals

    def memory(self) -> dict[str, int]:
        """The memory of every process of the stack, summed by what it is: each role (or `dev`), the no-op
        endpoint, PostgreSQL (with its backends) and the broker. Proportional set sizes (PSS: a shared page
        counts once, split between the processes that share it), so PostgreSQL's shared buffers are not
        counted once per backend as RSS would."""
        totals: dict[str, int] = {}
        for kind, process in self._processes():
            with contextlib.suppress(psutil.Error):
                totals[kind] = totals.get(kind, 0) + process.memory_full_info().pss
        return totals

    def _processes(self) -> Iterator[tuple[str, psutil.Process]]:
        """Every process of the stack (each root and its descendants), with what it is."""
        roots = {**{name: process.pid for name, process in self.processes.items()}, **self.services}
        for name, pid in roots.items():
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        yield _kind(process.name(), name), process

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def api_urls(self) -> list[str]:
        """Every API process's URL (`bench --replicas`), the first being `api_url`."""
        return [f"http://127.0.0.1:{port}" for port in self.api_ports or [self.settings.port]]

    def role_processes(self, role: str) -> list["subprocess.Popen[bytes]"]:
        """Each replica of `role`."""
        return [process for name, process in self.processes.items() if _role(name) == role]


def _kind(process_name: str, root: str) -> str:
    if process_name.startswith("postgres"):
        return "postgres"
    if process_name.startswith("tansu"):
        return "broker"
    return _role(root)


def _role(name: str) -> str:
    """The role a process of the stack plays: `api.2`, the second API replica, is an `api`."""
    return name.split(".", 1)[0]


def replica_name(role: str, replica: int) -> str:
    return role if replica == 1 else f"{role}.{replica}"


@contextlib.contextmanager
def bench_stack(
    settings: Settings, work_dir: Path, endpoint_delay_ms: int = 0, export_traces: bool = False, replicas: int = 1
) -> Iterator[BenchStack]:
    """The roles as separate processes, on embedded services unless the settings name others, `replicas` of
    each (API processes on ports of their own); with `export_traces`, every span of theirs (100% sampled) goes
    to an OTLP receiver started beside them."""
    with contextlib.ExitStack() as services:
        pids: dict[str, int] = {}
        database_url = settings.database_url
        if not database_url:
            postgres = services.enter_context(EmbeddedPostgres(work_dir / "postgres"))
            database_url, pids["postgres"] = postgres.url, postgres.pid or 0
        database_url = _fresh_database(database_url)
        kafka = settings.kafka_bootstrap_servers
        ring_seconds = settings.topic_ring_seconds
        if not kafka:
            broker = services.enter_context(EmbeddedKafka(log_path=work_dir / "broker.log"))
            kafka, pids["broker"] = broker.bootstrap_servers, broker.pid or 0
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
        endpoint_url, endpoint = _noop_endpoint(services, work_dir, endpoint_delay_ms)
        stack = BenchStack(settings, api_key, endpoint_url, services=pids)
        stack.processes["noop"] = endpoint
        env = _role_env(settings)
        if export_traces:
            stack.trace_sink_url = _trace_sink(services, work_dir)
            env.update(OTEL_EXPORTER_OTLP_ENDPOINT=stack.trace_sink_url, OTEL_TRACES_SAMPLER="always_on")
        stack.api_ports = [settings.port, *(free_port() for _ in range(replicas - 1))]
        for replica in range(1, replicas + 1):
            for role in ROLES:
                name = replica_name(role, replica)
                own = {**env, "JOBS_PORT": str(stack.api_ports[replica - 1])} if role == "api" else env
                command = [sys.executable, "-m", "app.cli", role]
                stack.processes[name] = services.enter_context(_process(command, work_dir, name, own))
                _wait_running(stack.processes[name], work_dir / f"{name}.log")
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(stack, stop), daemon=True)
        sampler.start()
        try:
            yield stack
        finally:
            stop.set()
            sampler.join()


def _noop_endpoint(
    services: contextlib.ExitStack, work_dir: Path, delay_ms: int
) -> tuple[str, "subprocess.Popen[bytes]"]:
    command = [sys.executable, "-m", "app.tools.bench.noop_endpoint", "0", str(delay_ms)]
    endpoint = services.enter_context(_process(command, work_dir, "noop"))
    return f"http://127.0.0.1:{_ready_port(endpoint, work_dir / 'noop.log')}/api/trigger", endpoint


def _trace_sink(services: contextlib.ExitStack, work_dir: Path) -> str:
    sink = services.enter_context(_process([sys.executable, "-m", "app.tools.bench.trace_sink"], work_dir, "traces"))
    return f"http://127.0.0.1:{_ready_port(sink, work_dir / 'traces.log')}"


@contextlib.contextmanager
def dev_stack(work_dir: Path, endpoint_delay_ms: int = 0) -> Iterator[BenchStack]:
    """`jobs-service dev` as a user starts it: one process tree, its embedded PostgreSQL and broker."""
    api_key = "tr_dev_" + uuid.uuid4().hex[:24]
    port = free_port()
    env = {"JOBS_DEV_API_KEY": api_key, "JOBS_DATA_DIR": str(work_dir / "dev"), "JOBS_PORT": str(port)}
    env["JOBS_LOG_LEVEL"] = "WARNING"
    with contextlib.ExitStack() as services:
        endpoint_url, endpoint = _noop_endpoint(services, work_dir, endpoint_delay_ms)
        dev = services.enter_context(_process([sys.executable, "-m", "app.cli", "dev"], work_dir, "dev", env))
        banner = _wait_running(dev, work_dir / "dev.log", "Ctrl-C stops everything")
        found = re.search(r"database: (\S+)\s+broker: (\S+)", banner)
        if found is None:
            raise RuntimeError(f"no database and broker in the banner of dev:\n{banner}")
        settings = Settings(database_url=found[1], kafka_bootstrap_servers=found[2], port=port)
        stack = BenchStack(settings, api_key, endpoint_url)
        stack.processes.update(dev=dev, noop=endpoint)
        yield stack


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
        "JOBS_OPS_PORT": "0",
    }


def _process(
    command: list[str], work_dir: Path, name: str, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager["subprocess.Popen[bytes]"]:
    return child_process(command, work_dir / f"{name}.log", env)


@contextlib.contextmanager
def child_process(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Iterator["subprocess.Popen[bytes]"]:
    """The command running, its output in `log_path`; terminated (killed after 20 s) when the block ends."""
    with log_path.open("wb") as log:
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
            _, key = await container.service.environments.create("bench", EnvironmentType.PRODUCTION)
        finally:
            await container.close()
        return key

    return asyncio.run(create())
