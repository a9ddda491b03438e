"""The operations port of every role on the real stack: `/metrics` whose counters move by exactly the work done,
`/healthz`, `/readyz` (with a worker that holds no partition), and a relay alone in its own process."""

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.container import Container
from app.observability.ops_server import OpsServer
from app.service.environments import EnvironmentInfo
from app.service.executions import Executions
from app.service.writes import RunWriter, Topics
from app.settings import Settings
from app.worker.rescuer import Rescuer
from domain.runs import JobRun
from tests.helpers import (
    finished,
    in_status,
    register,
    send_unreadable_message,
    start_roles,
    start_test_run,
    stop_roles,
    wait_for,
)
from tests.node_endpoint import NodeEndpoint
from tests.observability_names import SCRAPE_SERIES, metric_names_used

RUNS = 5
RESCUER_COUNTERS = ("jobs_runs_rescued_total", "jobs_runs_requeued_total")
ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_counters_move_by_the_work_done(
    api: httpx.AsyncClient, settings: Settings, ops_server: OpsServer
) -> None:
    url = ops_server.url
    before = await scrape(url)
    run_ids = [await start_test_run(api, "return-value", {"i": i}) for i in range(RUNS)]
    for run_id in run_ids:
        assert (await finished(api, run_id))["status"] == "SUCCESS"

    async def drained() -> Samples | None:
        samples = await scrape(url)
        return samples if value(samples, "jobs_outbox_pending") == 0 else None

    after = await wait_for(drained)
    assert moved(before, after, "jobs_runs_created_total") == RUNS
    assert moved(before, after, "jobs_runs_finished_total", status="SUCCESS") == RUNS
    assert moved(before, after, "jobs_runs_finished_total", status="FAILURE") == 0
    assert moved(before, after, "jobs_run_queue_wait_seconds_count") == RUNS
    assert moved(before, after, "jobs_run_execution_seconds_count") == RUNS
    assert moved(before, after, "jobs_relay_published_total", topic=settings.execution_topic) == RUNS
    assert moved(before, after, "jobs_messages_handled_total", type="ExecuteJobRun", outcome="handled") == RUNS
    assert moved(before, after, "jobs_group_commit_batch_size_count") >= 1
    assert value(after, "jobs_outbox_oldest_age_seconds") == 0
    held = value(after, "jobs_consumer_assigned_partitions")
    assert held == 2 * settings.topic_partitions  # both lanes, one worker
    lags = {labels: lag for (name, labels), lag in after.items() if name == "jobs_consumer_lag"}
    assert len(lags) == held and all(lag >= 0 for lag in lags.values())
    assert value(after, "process_resident_memory_bytes") > 0  # the client's own collectors
    assert any(name == "python_gc_objects_collected_total" for name, _ in after)

    # A message no worker can read goes to the dead-letter topic: counted once, as malformed.
    await send_unreadable_message(settings)

    async def dead_lettered() -> Samples | None:
        samples = await scrape(url)
        return samples if moved(after, samples, "jobs_dead_letters_total") else None

    poisoned = await wait_for(dead_lettered)
    assert moved(after, poisoned, "jobs_dead_letters_total") == 1
    assert moved(after, poisoned, "jobs_messages_handled_total", type="unknown", outcome="malformed") == 1
    assert moved(after, poisoned, "jobs_runs_finished_total", status="SUCCESS") == 0

    # What the dashboard and the alert rules read is served (`up` is Prometheus's own).
    assert metric_names_used() - SCRAPE_SERIES - {name for name, _ in poisoned} == set()


async def test_a_cancel_and_a_rerun_are_counted_once(api: httpx.AsyncClient, ops_server: OpsServer) -> None:
    run_id = await start_test_run(api, "waits", {"seconds": 60})
    await in_status(api, run_id, {"WAITING_TO_CONTINUE"})
    before = await scrape(ops_server.url)
    for _ in range(2):  # the second cancel finds it canceled already
        assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).json()["status"] == "CANCELED"
    rerun = await api.post(f"/api/v1/runs/{run_id}/rerun")
    assert rerun.status_code == 200, rerun.text
    await in_status(api, rerun.json()["id"], {"WAITING_TO_CONTINUE"})
    after = await scrape(ops_server.url)
    assert moved(before, after, "jobs_runs_finished_total", status="CANCELED") == 1
    assert moved(before, after, "jobs_run_execution_seconds_count") == 1  # it had started
    assert moved(before, after, "jobs_runs_created_total") == 1
    assert moved(before, after, "jobs_run_queue_wait_seconds_count") == 1  # the rerun's first start


async def test_health_readiness_and_what_else_the_port_answers(stack: httpx.AsyncClient, ops_server: OpsServer) -> None:
    async with httpx.AsyncClient(base_url=ops_server.url, timeout=10) as client:
        alive = await client.get("/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ready",
            "checks": {"database": True, "broker": True, "partitions": True},
        }
        for path in ("/", "/metrics/x", "/api/v1/jobs", "/%2e%2e/etc/passwd", "/" + "a" * 4000):
            missing = await client.get(path)
            assert missing.status_code == 404, path
            assert missing.json()["error"] == "Not Found"
        wrong = await client.post("/metrics", content=b"x")
        assert wrong.status_code == 405
        assert wrong.json()["error"] == "Method Not Allowed"
        assert "GET" in wrong.headers["allow"]
    host, port = ops_server.url.removeprefix("http://").split(":")
    for garbage in (
        b"\x00\xff\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: " + b"x" * 70_000,
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(garbage + b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(200), 10)
        writer.close()
        status = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
        assert status is not None and int(status[1]) < 500, answer
    assert (await stack.get("/healthz")).status_code == 200  # the API goes on


async def test_a_worker_holding_no_partition_is_not_ready(container: Container, settings: Settings) -> None:
    # Two partitions in all (one a lane) for three workers: one of them is left without any.
    settings = replace(settings, topic_partitions=1)
    servers = [OpsServer(settings.host, 0) for _ in range(3)]
    workers = [await start_roles(settings, "worker", ops=server) for server in servers]
    try:

        async def settled() -> list[dict[str, object]] | None:
            answers = []
            async with httpx.AsyncClient(timeout=10) as client:
                for server in servers:
                    answer = await client.get(f"{server.url}/readyz")
                    answers.append({"code": answer.status_code, **answer.json()})
            held = sum(1 for answer in answers if answer["code"] == 200)
            return answers if held == 2 else None

        answers = await wait_for(settled, timeout=60)
        (idle,) = [answer for answer in answers if answer["code"] == 503]
        assert idle == {
            "code": 503,
            "status": "not ready",
            "failing": ["partitions"],
            "checks": {"database": True, "partitions": False},
        }
    finally:
        for worker in workers:
            await stop_roles(worker)


async def test_rescues_and_requeues_are_counted(
    container: Container, settings: Settings, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    abandoned = await container.service.runs.test(environment, "return-value", {}, None)
    lost = await container.service.runs.test(environment, "return-value", {}, None)
    run = await container.store.get(abandoned.run_id, JobRun)
    assert run is not None
    writer = RunWriter(container.store, Topics(settings.execution_topic))
    await Executions(container.store, writer, timedelta(0)).start(run, 1)  # a worker that died: its lease is over
    async with container.engine.begin() as conn:  # the message of the other one is nowhere
        await conn.execute(text("DELETE FROM outbox WHERE key = :key"), {"key": str(lost.run_id)})
    before = {name: REGISTRY.get_sample_value(name) or 0 for name in RESCUER_COUNTERS}
    await Rescuer(container.service, container.outbox, 0.1, 0.0).sweep()
    after = {name: REGISTRY.get_sample_value(name) or 0 for name in RESCUER_COUNTERS}
    assert {name: after[name] - before[name] for name in RESCUER_COUNTERS} == dict.fromkeys(RESCUER_COUNTERS, 1)


@pytest.fixture
def relay_process(settings: Settings) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`jobs-service relay` alone in a process of its own; yields it and its operations URL."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.required_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.required_kafka,
        "JOBS_EXECUTION_TOPIC": settings.execution_topic,
        "JOBS_CONSUMER_GROUP": settings.consumer_group,
        "JOBS_SECRET_KEY": settings.required_secret_key,
        "JOBS_RELAY_POLL_SECONDS": "0.2",
        "JOBS_OPS_PORT": "0",
        "JOBS_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "relay"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"relay running; operations at (http://\S+)", line)
        assert found is not None, line + process.stdout.read() if process.poll() is not None else line
        yield process, found[1]
    finally:
        process.terminate()
        process.wait(30)


async def test_a_relay_alone_serves_its_own_metrics(
    container: Container,
    environment: EnvironmentInfo,
    compat_endpoint: NodeEndpoint,
    relay_process: tuple[subprocess.Popen[str], str],
) -> None:
    _, url = relay_process
    await register(container, environment, compat_endpoint)
    for i in range(RUNS):
        await container.service.runs.test(environment, "return-value", {"i": i}, None)

    async def published() -> Samples | None:  # no worker: every row stays pending once published
        samples = await scrape(url)
        return samples if sum(v for (n, _), v in samples.items() if n == "jobs_relay_published_total") == RUNS else None

    samples = await wait_for(published)
    assert value(samples, "jobs_outbox_pending") == RUNS
    assert value(samples, "jobs_outbox_oldest_age_seconds") == 0  # nothing due is left unpublished
    assert value(samples, "jobs_runs_created_total") == 0  # created by another process
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "jobs_consumer_assigned_partitions") == 0  # no worker here
    assert not any(name == "jobs_consumer_lag" for name, _ in samples)
    async with httpx.AsyncClient(timeout=10) as client:
        ready = await client.get(f"{url}/readyz")
    assert (ready.status_code, ready.json()["checks"]) == (200, {"database": True, "broker": True})
