"""Crash tests: real role processes are killed or stopped; every accepted run completes exactly once."""

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.adapters.relay_shares import RELAY_SLOTS
from app.container import Container
from app.settings import Settings
from tests.faults.conftest import register_endpoint
from tests.faults.harness import cluster, tally
from tests.helpers import finished, in_status, start_test_run
from tests.node_endpoint import NodeEndpoint


async def all_finished(client: httpx.AsyncClient, run_ids: list[str], timeout: float = 90) -> None:
    async with asyncio.timeout(timeout):
        for run_id in run_ids:
            await finished(client, run_id, timeout=timeout)


async def test_kill_9_the_worker_during_an_endpoint_call(
    settings: Settings, logs: Path, client: httpx.AsyncClient, compat_endpoint: NodeEndpoint, container: Container
) -> None:
    with cluster(settings, logs) as roles:
        roles.start("api")
        roles.start("relay")
        worker = roles.start("worker")
        await register_endpoint(client, compat_endpoint)
        run_ids = [await start_test_run(client, "sleeps", {"ms": 8000}) for _ in range(4)]
        for run_id in run_ids:
            await in_status(client, run_id, {"EXECUTING"})
        worker.kill()
        in_flight = {(await client.get(f"/api/v2/runs/{run_id}")).json()["status"] for run_id in run_ids}
        assert in_flight == {"EXECUTING"}
        killed = time.monotonic()
        roles.start("worker")
        await all_finished(client, run_ids)
        recovery = time.monotonic() - killed
        result = await tally(client, run_ids)
        histories = [[e["type"] for e in await _events(client, run_id)] for run_id in run_ids]
    print("\n" + result.row("kill -9 worker mid-call", recovery))
    assert result.statuses == {"SUCCESS": 4}
    assert (result.completed, result.duplicates) == (4, 0)
    assert all("RunRescued" in history for history in histories), "\n".join(map(str, histories))


async def test_kill_9_the_relay_between_publish_and_delete(
    settings: Settings, logs: Path, client: httpx.AsyncClient, compat_endpoint: NodeEndpoint, container: Container
) -> None:
    with cluster(settings, logs) as roles:
        roles.start("api")
        roles.start("worker")
        await register_endpoint(client, compat_endpoint)
        run_ids = [await start_test_run(client, "return-value", {"i": i}) for i in range(10)]
        relay = roles.start("relay", JOBS_FAULT_RELAY_PAUSE_SECONDS="60")  # claims all ten in one batch
        for run_id in run_ids:  # published and executed, but the relay has not deleted the rows yet
            await finished(client, run_id)
        assert await _outbox(container) == 10
        relay.kill()
        killed = time.monotonic()
        roles.start("relay")
        async with asyncio.timeout(30):
            while await _outbox(container):
                await asyncio.sleep(0.1)
        recovery = time.monotonic() - killed
        await asyncio.sleep(1.0)  # let the worker see the duplicates
        result = await tally(client, run_ids)
        histories = [[e["type"] for e in await _events(client, run_id)] for run_id in run_ids]
    print("\n" + result.row("kill -9 relay between publish and delete", recovery))
    assert result.statuses == {"SUCCESS": 10}
    assert (result.completed, result.duplicates) == (10, 0)
    assert all(history.count("RunStarted") == 1 for history in histories)


async def test_two_relays_one_stopped_then_killed_its_share_is_published_by_the_other(
    settings: Settings, logs: Path, client: httpx.AsyncClient, compat_endpoint: NodeEndpoint, container: Container
) -> None:
    with cluster(settings, logs) as roles:
        roles.start("api")
        roles.start("worker")
        stuck = roles.start("relay")
        roles.start("relay")
        await register_endpoint(client, compat_endpoint)
        async with asyncio.timeout(30):
            while await _relays_live(container) < 2:  # each claims its half of the rows from now on
                await asyncio.sleep(0.1)
        stuck.process.send_signal(signal.SIGSTOP)  # alive (its slot held), publishing nothing
        first = [await start_test_run(client, "return-value", {"i": i}) for i in range(10)]
        await all_finished(client, first)  # its half too: published by the other once due for the grace
        stuck.kill()
        async with asyncio.timeout(30):
            while await _relays_live(container) > 1:
                await asyncio.sleep(0.1)
        later = [await start_test_run(client, "return-value", {"i": i}) for i in range(10, 20)]
        await all_finished(client, later)
        result = await tally(client, first + later)
        histories = [[e["type"] for e in await _events(client, run_id)] for run_id in first + later]
    assert result.statuses == {"SUCCESS": 20}
    assert (result.completed, result.duplicates) == (20, 0)
    assert all(history.count("RunStarted") == 1 for history in histories)


async def _relays_live(container: Container) -> int:
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
        "AND classid::bigint = :namespace "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    async with container.engine.connect() as conn:
        return int((await conn.execute(query, {"namespace": RELAY_SLOTS})).scalar_one())


async def test_sigterm_each_role(
    settings: Settings, logs: Path, client: httpx.AsyncClient, compat_endpoint: NodeEndpoint, container: Container
) -> None:
    with cluster(settings, logs) as roles:
        api = roles.start("api")
        relay = roles.start("relay")
        worker = roles.start("worker")
        await register_endpoint(client, compat_endpoint)
        run_ids = [await start_test_run(client, "sleeps", {"ms": 1500}) for _ in range(3)]
        for run_id in run_ids:
            await in_status(client, run_id, {"EXECUTING"})
        worker_exit = worker.terminate()
        # The worker finished what it held before it exited.
        statuses = {(await client.get(f"/api/v2/runs/{r}")).json()["status"] for r in run_ids}
        relay_exit = relay.terminate()
        later = [await start_test_run(client, "return-value") for _ in range(3)]
        api_exit = api.terminate()
        roles.start("api")
        roles.start("relay")
        roles.start("worker")
        await all_finished(client, later)
        result = await tally(client, run_ids + later)
    print(f"\nFAULT SIGTERM: worker exited in {worker_exit:.1f}s, relay {relay_exit:.1f}s, api {api_exit:.1f}s")
    print(result.row("SIGTERM each role", worker_exit + relay_exit + api_exit))
    assert statuses == {"SUCCESS"}
    assert max(worker_exit, relay_exit, api_exit) < 12
    assert result.statuses == {"SUCCESS": 6} and result.duplicates == 0
    for role in roles.roles[:3]:
        assert role.process.returncode == 0, role.log.read_text()[-2000:]


async def _events(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await client.get(f"/api/v1/runs/{run_id}/events")).json()["events"]
    return events


async def _outbox(container: Container) -> int:
    from tests.helpers import count

    return await count(container.engine, "outbox")
