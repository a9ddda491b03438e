"""Scheduled jobs, a DynamicSchedule, deleting a job and queues, with jobs written with the real
@trigger.dev/sdk (tests/compat/jobs_sched.js). One tick is waited for in real time (a cron of every minute);
the others are made due now by a schedule registered in the past."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.adapters.messages import FireSchedule
from app.container import Container
from app.service.environments import EnvironmentInfo
from app.service.writes import Topics
from app.settings import Settings
from domain import ids
from domain.schedules import Schedule, Spec, static_key
from domain.times import iso
from tests.helpers import finished, start_test_run, wait_for
from tests.node_endpoint import NodeEndpoint, sdk


async def succeeded(api: httpx.AsyncClient, slug: str, payload: Any = None) -> Any:
    run = await finished(api, await start_test_run(api, slug, payload))
    assert run["status"] == "SUCCESS", run
    return run["output"]


async def index(api: httpx.AsyncClient, endpoint: NodeEndpoint, slug: str | None = None) -> None:
    registered = await api.post("/api/v1/endpoints", json={"id": slug or endpoint.endpoint_id, "url": endpoint.url})
    assert registered.status_code == 200, registered.text


@asynccontextmanager
async def switched(api: httpx.AsyncClient, endpoint: NodeEndpoint, job: str, on: bool) -> AsyncIterator[None]:
    """The job turned on (or off) in the endpoint and indexed so; as it was again afterwards."""
    await succeeded(api, "sched-toggle", {"job": job, "enabled": on})
    await index(api, endpoint)
    try:
        yield
    finally:
        await succeeded(api, "sched-toggle", {"job": job, "enabled": not on})
        await index(api, endpoint)


async def schedule_info(api: httpx.AsyncClient, key: str) -> dict[str, Any]:
    (found,) = [s for s in (await api.get("/api/v1/schedules")).json()["schedules"] if s["key"] == key]
    return found  # type: ignore[no-any-return]


async def runs_of(api: httpx.AsyncClient, slug: str) -> list[dict[str, Any]]:
    return (await api.get(f"/api/v1/jobs/{slug}/runs")).json()["runs"]  # type: ignore[no-any-return]


async def one_run(api: httpx.AsyncClient, slug: str, timeout: float) -> dict[str, Any]:
    async def started() -> list[dict[str, Any]]:
        return await runs_of(api, slug)

    (run,) = await wait_for(started, timeout=timeout, interval=0.5)
    return await finished(api, run["id"])


async def test_a_cron_job_runs_on_its_schedule_with_the_ticks_time(
    api: httpx.AsyncClient, compat_endpoint: NodeEndpoint
) -> None:
    async with switched(api, compat_endpoint, "sched-cron", True):
        registered = await schedule_info(api, "job:sched-cron")
        assert registered["active"] and registered["schedule"] == {"type": "cron", "options": {"cron": "* * * * *"}}
        due = datetime.fromisoformat(registered["nextTickAt"])
        assert due.second == 0 and due.microsecond == 0 and due <= datetime.now(UTC) + timedelta(seconds=60)
        run = await one_run(api, "sched-cron", timeout=75)  # the one real-time tick of the suite
        assert run["status"] == "SUCCESS", run
        assert run["output"] == {
            "ts": iso(due),
            "lastTimestamp": None,  # the first tick has none
            "eventId": f"schedule:job:sched-cron:{int(due.timestamp() * 1000)}",
            "source": {"id": "sched-cron", "metadata": None},
            "executions": 1,
        }
        after = await schedule_info(api, "job:sched-cron")
        assert after["lastTickAt"] == iso(due) and after["nextTickAt"] == iso(due + timedelta(minutes=1))
    assert not (await schedule_info(api, "job:sched-cron"))["active"]  # turned off and indexed: it stopped


async def test_an_interval_job_missed_while_down_fires_once_with_its_last_timestamp(
    api: httpx.AsyncClient, container: Container, settings: Settings, environment: EnvironmentInfo,
    compat_endpoint: NodeEndpoint,
) -> None:  # fmt: skip
    key = static_key("sched-interval")
    async with switched(api, compat_endpoint, "sched-interval", True):
        registered = await schedule_info(api, key)
        assert registered["active"] and registered["schedule"] == {"type": "interval", "options": {"seconds": 60}}
        due = datetime.fromisoformat(registered["nextTickAt"])
        assert datetime.now(UTC) + timedelta(seconds=30) < due <= datetime.now(UTC) + timedelta(seconds=60)

        # Rewind it, through the domain's own steps, to the state a service down for ten minutes left it in: one
        # tick fired eleven minutes ago, the next overdue since.
        now = datetime.now(UTC)
        schedule = await container.store.get(ids.schedule_id(str(environment.id), key), Schedule)
        assert schedule is not None
        schedule.stop("rewound by the test")
        schedule.change(schedule.endpoint_id, Spec("interval", seconds=60), None, None, now - timedelta(minutes=12))
        first = schedule.next_tick_at
        assert first is not None
        overdue = schedule.tick(first, first + timedelta(seconds=1))
        tick = FireSchedule(str(schedule.id), overdue.isoformat())
        await container.store.commit(schedule.collect_events(), [Topics(settings.execution_topic).message(key, tick)])

        run = await one_run(api, "sched-interval", timeout=30)
        assert run["status"] == "SUCCESS", run
        assert run["output"]["ts"] == iso(overdue) and run["output"]["lastTimestamp"] == iso(first)
        await asyncio.sleep(2)
        assert len(await runs_of(api, "sched-interval")) == 1  # ten ticks were missed: one fired
        assert (await schedule_info(api, key))["lastTickAt"] == iso(overdue)
        fired = await container.store.get(schedule.id, Schedule)
        assert fired is not None and fired.next_tick_at is not None
        assert now < fired.next_tick_at <= datetime.now(UTC) + timedelta(seconds=60)
        assert (fired.next_tick_at - overdue) % timedelta(seconds=60) == timedelta(0)  # on the interval's phase


async def test_a_dynamic_schedule_registered_from_a_job_runs_the_jobs_attached_to_it(
    api: httpx.AsyncClient, container: Container, settings: Settings, environment: EnvironmentInfo
) -> None:
    output = await succeeded(api, "sched-register", {"key": "user-7", "seconds": 30})
    # DynamicSchedule.register parsed the answer with the SDK's zod schema; 30 s run as a minute.
    assert output["registration"] == {
        "id": "user-7",
        "schedule": {"type": "interval", "options": {"seconds": 60}},
        "metadata": {"user": "user-7"},
        "active": True,
    }
    key = "dynamic:sched-dynamic-schedule:user-7"
    info = await schedule_info(api, key)
    assert info["active"] and info["owner"] == "sched-dynamic-schedule" and info["metadata"] == {"user": "user-7"}
    again = await succeeded(api, "sched-register", {"key": "user-7", "seconds": 30})
    assert again["registration"] == output["registration"]
    assert (await schedule_info(api, key))["nextTickAt"] == info["nextTickAt"]  # registered again: same tick

    # Its tick made due now (as if it had been registered ten minutes ago), so the attached job runs at once.
    schedule = await container.store.get(ids.schedule_id(str(environment.id), key), Schedule)
    assert schedule is not None
    schedule.change(schedule.endpoint_id, Spec("interval", seconds=120), schedule.metadata, None,
                    datetime.now(UTC) - timedelta(minutes=10))  # fmt: skip
    assert schedule.next_tick_at is not None
    tick = FireSchedule(str(schedule.id), schedule.next_tick_at.isoformat())
    await container.store.commit(schedule.collect_events(), [Topics(settings.execution_topic).message(key, tick)])
    run = await one_run(api, "sched-dynamic", timeout=30)
    assert run["status"] == "SUCCESS", run
    assert run["output"]["ts"] == iso(schedule.next_tick_at) and run["output"]["lastTimestamp"] is None
    assert run["output"]["source"] == {"id": "user-7", "metadata": {"user": "user-7"}}  # ctx.source, as in v2

    removed = await succeeded(api, "sched-register", {"key": "user-7", "unregister": True})
    assert removed == {"unregistered": {"ok": True}}
    assert not (await schedule_info(api, key))["active"]


async def test_the_deprecated_io_register_cron_and_unregister_cron_still_work(api: httpx.AsyncClient) -> None:
    registered = await succeeded(api, "sched-register", {"key": "legacy", "legacy": True})
    assert registered["registration"]["schedule"] == {"type": "cron", "options": {"cron": "0 3 * * *"}}
    info = await schedule_info(api, "dynamic:sched-dynamic-schedule:legacy")
    assert info["active"] and datetime.fromisoformat(info["nextTickAt"]).hour == 3
    assert await succeeded(api, "sched-register", {"key": "legacy", "legacy": True, "unregister": True}) == {
        "unregistered": True
    }
    assert not (await schedule_info(api, "dynamic:sched-dynamic-schedule:legacy"))["active"]


async def test_the_sdk_client_registers_and_unregisters_a_dynamic_schedule(
    api: httpx.AsyncClient, settings: Settings, compat_endpoint: NodeEndpoint
) -> None:
    await index(api, compat_endpoint, "compat-client")  # the endpoint client.js's TriggerClient names
    registered, unregistered, lonely = await sdk(
        settings,
        ["registerSchedule", "sched-dynamic-schedule", "nightly", {"type": "cron", "options": {"cron": "0 2 * * *"}}],
        ["unregisterSchedule", "sched-dynamic-schedule", "nightly"],
        ["registerSchedule", "sched-lonely-schedule", "weekly", {"type": "cron", "options": {"cron": "0 3 * * 1"}}],
    )
    assert registered == {
        "id": "nightly",
        "schedule": {"type": "cron", "options": {"cron": "0 2 * * *"}},
        "metadata": None,  # none was given: the answer says null, which the SDK keeps
        "active": True,
    }
    assert unregistered == {"ok": True}
    info = await schedule_info(api, "dynamic:sched-dynamic-schedule:nightly")
    assert not info["active"] and info["nextTickAt"] is None
    assert lonely["id"] == "weekly" and lonely["active"]  # a DynamicSchedule no job is attached to yet
    assert (await schedule_info(api, "dynamic:sched-lonely-schedule:weekly"))["active"]


async def test_a_deleted_job_starts_no_run_and_comes_back_when_indexed_enabled(
    api: httpx.AsyncClient, compat_endpoint: NodeEndpoint
) -> None:
    assert await succeeded(api, "sched-deletable") == {"ran": True}
    refused = await api.delete("/api/v1/jobs/sched-deletable")
    assert refused.status_code == 409 and "disable it first" in refused.json()["message"]
    async with switched(api, compat_endpoint, "sched-deletable", False):
        deleted = await api.delete("/api/v1/jobs/sched-deletable")
        assert deleted.status_code == 200, deleted.text
        assert (await api.get("/api/v1/jobs/sched-deletable")).status_code == 404
        assert (await api.post("/api/v1/jobs/sched-deletable/test", json={})).status_code == 404
        sent = await api.post("/api/v1/events", json={"event": {"id": "after-delete", "name": "sched.deletable"}})
        assert sent.status_code == 200
        assert (await api.get("/api/v2/events/after-delete")).json()["runs"] == []
        assert len(await runs_of(api, "sched-deletable")) == 1  # its history stays
        await index(api, compat_endpoint)
        assert (await api.get("/api/v1/jobs/sched-deletable")).status_code == 404  # indexed disabled: still gone
    # Turned on again and indexed: back.
    assert (await api.get("/api/v1/jobs/sched-deletable")).status_code == 200
    assert await succeeded(api, "sched-deletable") == {"ran": True}


async def test_a_queue_counts_its_runs_and_a_limit_set_ahead_is_the_one_that_holds(
    api: httpx.AsyncClient, compat_endpoint: NodeEndpoint
) -> None:
    empty = (await api.post("/api/v1/queues", json={"name": "sched-empty", "limit": 5})).json()
    assert (empty["name"], empty["limit"], empty["running"], empty["queued"]) == ("sched-empty", 5, 0, 0)
    pool = (await api.get("/api/v1/queues/sched-pool")).json()
    assert pool["limit"] == 1  # what sched-pooled's concurrencyLimit declares

    run_ids = [await start_test_run(api, "sched-pooled", {"ms": 1500, "pool": "narrow"}) for _ in range(3)]

    async def one_running_two_waiting() -> bool:
        queue = (await api.get("/api/v1/queues/sched-pool")).json()
        return (queue["running"], queue["queued"]) == (1, 2)

    await wait_for(one_running_two_waiting, timeout=20, interval=0.1)
    assert [(await finished(api, run_id))["output"]["peak"] for run_id in run_ids] == [1, 1, 1]

    assert (await api.post("/api/v1/queues", json={"name": "sched-pool", "limit": 3})).json()["limit"] == 3
    await index(api, compat_endpoint)
    assert (await api.get("/api/v1/queues/sched-pool")).json()["limit"] == 3  # the index does not lower it
    run_ids = [await start_test_run(api, "sched-pooled", {"ms": 1500, "pool": "wide"}) for _ in range(3)]
    peaks = [(await finished(api, run_id))["output"]["peak"] for run_id in run_ids]
    assert max(peaks) == 3
    listed = [q["name"] for q in (await api.get("/api/v1/queues")).json()["queues"]]
    assert {"sched-empty", "sched-pool", "pair"} <= set(listed)
