"""`jobs-service status`, run as an operator runs it, against the real database and broker after known work."""

import asyncio
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx

from app.adapters import kafka
from app.adapters.messages import dead_letter_topic
from app.container import Container
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from app.tools.embedded import free_port
from tests.helpers import (
    count,
    finished,
    register,
    send_unreadable_message,
    start_roles,
    start_test_run,
    stop_roles,
    wait_for,
)
from tests.node_endpoint import NodeEndpoint

ROOT = Path(__file__).resolve().parents[2]


def status(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {
        **os.environ,
        "DATABASE_URL": settings.required_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.required_kafka,
        "JOBS_EXECUTION_TOPIC": settings.execution_topic,
        "JOBS_CONSUMER_GROUP": settings.consumer_group,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "status", *args],
        cwd=ROOT,
        env=variables,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def line(output: str, label: str) -> str:
    (found,) = [text for text in output.splitlines() if text.startswith(label)]
    return found[len(label) :].strip()


async def test_status_after_runs_and_a_dead_letter(
    api: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    run_ids = [await start_test_run(api, "return-value", {"i": i}) for i in range(3)]
    for run_id in run_ids:
        assert (await finished(api, run_id))["status"] == "SUCCESS"
    await send_unreadable_message(settings)
    offsets = kafka.OffsetsReader(settings)
    await offsets.start()
    dlq = dead_letter_topic(settings.execution_topic)
    try:

        async def dead_letters() -> int:
            return sum(where.end - where.start for where in (await offsets.read([dlq])).values())

        await wait_for(dead_letters)
    finally:
        await offsets.stop()
    await wait_for(lambda: _empty(container))

    async def settled() -> str | None:  # the worker commits the poison message's offset soon after
        shown = await asyncio.to_thread(status, settings, "--minutes", "5")
        assert (shown.returncode, shown.stderr) == (0, ""), shown.stderr
        return shown.stdout if line(shown.stdout, "lag") == "0 messages not consumed" else None

    output = await wait_for(settled)
    assert line(output, "outbox") == "0 pending, 0 not published, oldest due unpublished 0.0s"
    assert line(output, "runs (5m)") == "SUCCESS 3"
    assert line(output, "oldest due") == "none"
    assert line(output, "dead letters") == f"1 in {dlq}"
    assert line(output, "workers") == "1 in the group (Stable)"
    member = output.splitlines()[-1].strip()
    lanes = sorted(
        f"{topic}/{p}" for topic in kafka.consumed_topics(settings) for p in range(settings.topic_partitions)
    )
    # The embedded broker (Tansu) does not say which partitions a member holds; Kafka does.
    assert member.endswith("partitions unknown (the broker does not tell)") or sorted(member.split()[1:]) == lanes
    partitions = [text for text in output.splitlines() if text.startswith(f"  {settings.execution_topic}")]
    assert len(partitions) == 2 and all(text.count("=0") == settings.topic_partitions for text in partitions)


async def _empty(container: Container) -> bool:
    return await count(container.engine, "outbox") == 0


async def test_status_of_a_backlog_with_no_role_running(
    container: Container, settings: Settings, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    first = await container.service.runs.test(environment, "return-value", {}, None)
    for _ in range(3):
        await container.service.runs.test(environment, "return-value", {}, None)
    shown = await asyncio.to_thread(status, settings)
    assert (shown.returncode, shown.stderr) == (0, ""), shown.stderr
    output = shown.stdout
    assert re.fullmatch(r"4 pending, 4 not published, oldest due unpublished \d+\.\ds", line(output, "outbox"))
    assert line(output, "runs (15m)") == "QUEUED 4"
    assert re.fullmatch(rf"{first.run_id} QUEUED, due \d+\.\ds ago", line(output, "oldest due"))
    assert line(output, "dead letters") == "0"
    assert line(output, "lag") == "no execution topic yet"
    assert line(output, "workers").startswith("none in the group")


async def test_status_finds_the_slots_of_a_topic_ring_it_was_not_told_of(
    container: Container, settings: Settings
) -> None:
    roles = await start_roles(replace(settings, topic_ring_seconds=20.0), "worker")  # as `dev` runs it
    try:
        shown = await asyncio.to_thread(status, settings)  # no JOBS_TOPIC_RING_SECONDS
    finally:
        await stop_roles(roles)
    assert (shown.returncode, shown.stderr) == (0, ""), shown.stderr
    slots = sorted(text.split(":")[0].strip() for text in shown.stdout.splitlines() if text.startswith("  job-"))
    base = settings.execution_topic
    assert slots == sorted(f"{lane}.r{slot}" for lane in (base, f"{base}.high") for slot in range(3))


def test_status_says_in_one_line_what_it_cannot_reach(settings: Settings) -> None:
    closed = f"127.0.0.1:{free_port()}"
    no_database = status(settings, DATABASE_URL=f"postgresql://postgres@{closed}/jobs")
    assert no_database.returncode == 1 and no_database.stdout == ""
    (message,) = no_database.stderr.splitlines()
    assert message.startswith("jobs-service: cannot reach the database: ")
    no_broker = status(settings, KAFKA_BOOTSTRAP_SERVERS=closed)
    assert no_broker.returncode == 1 and no_broker.stdout == "", no_broker.stderr
    assert len(no_broker.stderr.splitlines()) == 1, no_broker.stderr
    (message,) = no_broker.stderr.splitlines()
    assert message.startswith(f"jobs-service: cannot reach the broker at {closed}: ")
    bad = status(settings, "--minutes", "0")
    assert bad.returncode == 2 and "must be a whole number of minutes" in bad.stderr
