"""The service's roles (api, relay, worker), run together or alone until asked to stop."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Generator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn

from app import role_probes as probes
from app.adapters import kafka
from app.adapters.archive import Archive
from app.adapters.messages import dead_letter_topic, lane_topics
from app.adapters.relay_shares import RelayShares
from app.adapters.retention import RetentionStore
from app.api.http_limits import LimitedHttpToolsProtocol
from app.container import Container
from app.dashboard.live import LiveFeed
from app.http_app import create_app
from app.observability.ops_server import OpsServer
from app.service.retention import Retention
from app.settings import Settings
from app.worker.consumer import DeadLetters, Dispatcher, Worker
from app.worker.executor import Chunking, RunExecutor
from app.worker.notifier import Notifier
from app.worker.performer import TaskPerformer
from app.worker.rescuer import Rescuer
from app.worker.retention_keeper import BATCH_RUNS, PAUSE_SECONDS, RetentionKeeper
from app.worker.ring_keeper import RingKeeper
from relay.outbox_relay import OutboxRelay

log = logging.getLogger(__name__)

ROLES = ("api", "relay", "worker")


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handling: the caller decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def run_roles(
    settings: Settings,
    roles: Sequence[str],
    stop: asyncio.Event,
    on_ready: Callable[[], Awaitable[None] | None] | None = None,
    ops: OpsServer | None = None,
) -> None:
    """Run the roles until `stop` is set, with the process's operations server (`ops`, or one on the settings'
    ops port): its `port` is the one it got by the time `on_ready` is called."""
    container = Container.create(settings)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(container.close)
        if sealed := await container.service.environments.prepare_secrets():
            log.info("sealed %d API keys that were stored in plain text", sealed)
        ops = ops or OpsServer(settings.host, settings.ops_port_or_default)
        await ops.start()
        stack.push_async_callback(ops.stop)
        if {"api", "relay"} & set(roles):
            probes.services(ops, container.readiness)
        if {"relay", "worker"} & set(roles):
            await kafka.ensure_topics(settings)
        tasks: list[asyncio.Task[None]] = []
        server: _Server | None = None
        live: LiveFeed | None = None
        if "api" in roles:
            app = create_app(container)
            live = app.state.dashboard_live
            server = _Server(
                uvicorn.Config(
                    app,
                    host=settings.host,
                    port=settings.port,
                    log_level="warning",
                    log_config=None,  # its loggers go through the service's handler (app/observability/logs.py)
                    http=LimitedHttpToolsProtocol,
                    access_log=False,
                    lifespan="off",
                    # Longer than clients and proxies keep idle connections, so none reuses one we closed.
                    timeout_keep_alive=75,
                    backlog=4096,
                )
            )
            tasks.append(asyncio.create_task(server.serve(), name="api"))
        if "relay" in roles:
            tasks.append(await _relay(settings, container, stack))
            probes.outbox(ops, container.engine)
        worker: Worker | None = None
        if "worker" in roles:
            worker, worker_tasks = await _worker(settings, container, stack, ops)
            tasks.extend(worker_tasks)
        if server is not None:
            while not server.started:
                if tasks[0].done():
                    await tasks[0]
                    raise RuntimeError("the API server stopped while starting")
                await asyncio.sleep(0.02)
        gc.freeze()  # what start-up built (pools, caches, the app) stays: the cycle collector skips it from now on
        if on_ready is not None:
            result = on_ready()
            if result is not None:
                await result
        stopping: asyncio.Task[Any] = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        crashed = [t for t in done if t is not stopping]
        if server is not None:
            server.should_exit = True
        if live is not None:
            await live.close()  # ends the dashboard's open streams, which the server would wait for
        if worker is not None:
            worker.stopping.set()  # finish the batch in hand, commit its offsets, then return
        for task in tasks:
            if task.get_name() not in ("api", "worker"):
                task.cancel()
        _, late = await asyncio.wait(tasks, timeout=settings.shutdown_seconds)
        for task in late:
            log.warning("%s did not stop within %.0fs; cancelling it", task.get_name(), settings.shutdown_seconds)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stopping.cancel()
        for task in crashed:
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"role {task.get_name()} stopped") from task.exception()


async def _relay(settings: Settings, container: Container, stack: contextlib.AsyncExitStack) -> asyncio.Task[None]:
    producer = kafka.producer(settings)
    await producer.start()
    stack.push_async_callback(producer.stop)
    relay = OutboxRelay(
        container.outbox,
        producer,
        settings.relay_batch_size,
        settings.relay_poll_seconds,
        settings.fault_relay_pause_seconds,
        kafka.ring(settings),
        settings.relay_max_in_flight,
        RelayShares(container.engine),
    )
    return asyncio.create_task(relay.run(), name="relay")


async def _worker(
    settings: Settings, container: Container, stack: contextlib.AsyncExitStack, ops: OpsServer
) -> tuple[Worker, list[asyncio.Task[None]]]:
    """The worker, with what keeps its messages moving: the rescuer, the topics and their ring."""
    topic = settings.execution_topic
    service, client = container.service, container.endpoint_client
    performer = TaskPerformer(service, client, container.url_policy, settings.fetch_poll_min_interval_seconds)
    executor = RunExecutor(service, client, Chunking.of(settings))
    dispatcher = Dispatcher(service, executor, Notifier(service, client), performer)
    dlq_producer = kafka.producer(settings)
    await dlq_producer.start()
    stack.push_async_callback(dlq_producer.stop)
    consumed = kafka.consumed_topics(settings)
    worker = Worker(
        kafka.consumer(settings),
        dispatcher,
        settings.worker_concurrency,
        high_lanes=frozenset(kafka.consumed_topics(settings, lane_topics(topic)[0])),
        dead_letters=DeadLetters(dlq_producer, dead_letter_topic(topic)),
        acknowledge=container.outbox.acknowledge,
        ring=kafka.ring(settings),
    )
    worker.consumer.subscribe(consumed, listener=worker.rebalance_listener)
    await worker.consumer.start()
    stack.push_async_callback(worker.consumer.stop)
    offsets = kafka.OffsetsReader(settings)
    await offsets.start()
    stack.push_async_callback(offsets.stop)
    probes.worker(ops, container.readiness, worker.consumer, offsets)
    rescue_every, grace = settings.rescue_interval_seconds, settings.redeliver_after_seconds
    rescuer = Rescuer(service, container.outbox, rescue_every, grace, offsets, lambda: consumed)
    tasks = [
        asyncio.create_task(worker.run(), name="worker"),
        asyncio.create_task(rescuer.run(), name="rescuer"),
        asyncio.create_task(kafka.keep_topics(settings), name="topics"),
    ]
    if settings.retention_days > 0:
        tasks.append(asyncio.create_task(_retention_keeper(settings, container).run(), name="retention"))
    ring = kafka.ring(settings)
    if ring.enabled:
        keeper = RingKeeper(
            container.outbox, settings.required_kafka, ring, list(lane_topics(topic)), settings.topic_partitions
        )
        await keeper.start()
        stack.push_async_callback(keeper.stop)
        tasks.append(asyncio.create_task(keeper.run(), name="topic ring"))
    return worker, tasks


def _retention_keeper(settings: Settings, container: Container) -> RetentionKeeper:
    retention = Retention(RetentionStore(container.engine), BATCH_RUNS, PAUSE_SECONDS)
    archive = Archive(Path(settings.retention_archive_dir)) if settings.retention_archive_dir else None
    older_than = timedelta(days=settings.retention_days)
    return RetentionKeeper(retention, container.outbox, older_than, archive.keep if archive else None)
