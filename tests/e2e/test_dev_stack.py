"""The whole stack as a newcomer runs it: `jobs-service dev` with embedded PostgreSQL and broker, and a real
@trigger.dev/sdk endpoint under Node."""

import asyncio
import os
import re
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from app.tools.embedded import free_port
from tests.node_endpoint import COMPAT_API_KEY, COMPAT_JOBS, NodeEndpoint, node_endpoint

TERMINAL = {"SUCCESS", "FAILURE", "TIMED_OUT", "ABORTED", "CANCELED", "UNRESOLVED_AUTH", "INVALID_PAYLOAD"}


@asynccontextmanager
async def dev_stack(port: int, data_dir: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    # No JOBS_SECRET_KEY either: `dev` makes one and keeps it in the data folder.
    unset = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "JOBS_SECRET_KEY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["JOBS_DEV_API_KEY"] = COMPAT_API_KEY
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "dev",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            while not any("Ctrl-C stops everything" in line for line in lines):
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise AssertionError("jobs-service dev exited:\n" + "".join(lines))
                lines.append(line)
        drain = asyncio.create_task(_drain(process.stdout, lines))
        yield process, lines
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    drain.cancel()


async def _drain(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode())


async def wait_for_run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            run: dict[str, Any] = (await client.get(f"/api/v2/runs/{run_id}")).json()
            if run["status"] in TERMINAL:
                return run
            await asyncio.sleep(0.02)


async def test_testjob_end_to_end_on_the_dev_stack(tmp_path: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with node_endpoint(api_url=base_url) as endpoint:
        async with dev_stack(port, tmp_path / "data") as (process, lines):
            assert any(COMPAT_API_KEY in line for line in lines), lines
            children = psutil.Process(process.pid).children(recursive=True)
            assert {c.name() for c in children} >= {"postgres"}, children
            secret_key = tmp_path / "data" / "secret-key"
            assert stat.S_IMODE(secret_key.stat().st_mode) == 0o600
            Fernet(secret_key.read_text().strip())  # a valid key
            headers = {"Authorization": f"Bearer {COMPAT_API_KEY}"}
            async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
                run_ids = await exercise(client, endpoint)
            await scrape_what_was_done(lines)
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(30):
                assert await process.wait() == 0, "".join(lines)
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], children

        async with dev_stack(port, tmp_path / "data") as (process, _):
            async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
                run = (await client.get(f"/api/v2/runs/{run_ids[0]}")).json()
                assert run["status"] == "SUCCESS", "a run survives a restart of the stack"
                # The kept key opens what the first start sealed: a run still executes, with the endpoint's key.
                again = await client.post("/api/v1/jobs/return-value/test", json={"payload": {"x": 2}})
                assert (await wait_for_run(client, again.json()["runId"]))["status"] == "SUCCESS"
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                assert await process.wait() == 0


async def scrape_what_was_done(banner: list[str]) -> None:
    """The banner names each role's metrics (one process: one URL); they count the runs `exercise` finished."""
    urls = dict(re.findall(r"^  metrics (\w+): (http://\S+/metrics)$", "".join(banner), re.MULTILINE))
    assert set(urls) == {"api", "relay", "worker"} and len(set(urls.values())) == 1, banner
    async with httpx.AsyncClient(timeout=30) as client:
        scraped = (await client.get(urls["api"])).text
    finished = {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "jobs_runs_finished_total"
    }
    assert finished == {"SUCCESS": 1, "FAILURE": 1, "INVALID_PAYLOAD": 1}


async def exercise(client: httpx.AsyncClient, endpoint: NodeEndpoint) -> list[str]:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json() == {"ready": True, "database": True, "broker": True}
    registered = await client.post("/api/v1/endpoints", json={"id": endpoint.endpoint_id, "url": endpoint.url})
    assert registered.status_code == 200, registered.text
    jobs = {job["id"] for job in (await client.get("/api/v1/jobs")).json()["jobs"]}
    assert jobs == set(COMPAT_JOBS)

    submitted = time.perf_counter()
    accepted = await client.post("/api/v1/jobs/return-value/test", json={"payload": {"x": 1}})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "QUEUED"
    success = await wait_for_run(client, accepted.json()["runId"])
    elapsed_ms = (time.perf_counter() - submitted) * 1000
    print(f"\nTestJob submit -> SUCCESS on the dev stack: {elapsed_ms:.0f} ms")
    assert success["status"] == "SUCCESS"
    assert success["output"] == {"ok": True, "echo": {"x": 1}}
    assert success["startedAt"] and success["completedAt"]

    failing = await client.post("/api/v1/jobs/throws/test", json={})
    failure = await wait_for_run(client, failing.json()["runId"])
    assert failure["status"] == "FAILURE"
    assert failure["output"]["message"] == "boom from compat job"

    invalid = await client.post("/api/v1/jobs/with-schema/test", json={"payload": {"n": "x"}})
    assert (await wait_for_run(client, invalid.json()["runId"]))["status"] == "INVALID_PAYLOAD"
    return [accepted.json()["runId"], failing.json()["runId"]]
