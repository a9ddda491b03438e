"""Schedules on real PostgreSQL and the real broker: indexing registers a scheduled job's schedule once, each
tick is recorded once however many workers see it (or after a crash), and a schedule missed while nothing ran
fires once when the service is back. Ticks are made due now (registered in the past) rather than waited for."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text

from app.adapters.messages import FireSchedule, decode_message
from app.container import Container
from app.errors import NotFound
from app.service.environments import EnvironmentInfo
from app.service.writes import Topics
from app.settings import Settings
from app.worker.rescuer import Rescuer
from domain import ids
from domain.event_records import EventRecord
from domain.runs import JobRun
from domain.schedules import Schedule, Spec, new_schedule, static_key, tick_event_id
from domain.times import iso
from projections.rebuild import rebuild
from tests.helpers import count, start_roles, stop_roles, wait_for
from tests.integration.test_projections import snapshot

ENDPOINT = "sched-endpoint"
URL = "http://127.0.0.1:9/api/trigger"  # nothing listens: the runs ticks start fail, which is not the point here
EVERY_MINUTE = {"type": "interval", "options": {"seconds": 60}}


def job(slug: str, trigger: dict[str, Any], enabled: bool = True, **more: Any) -> dict[str, Any]:
    event = {"name": "trigger.scheduled", "title": "Schedule", "source": "trigger.dev", "icon": "schedule"}
    return {"id": slug, "name": slug, "version": "1.0.0", "event": event, "trigger": trigger, "enabled": enabled,
            "integrations": {}, "internal": False, **more}  # fmt: skip


def scheduled(slug: str, schedule: dict[str, Any] = EVERY_MINUTE, enabled: bool = True) -> dict[str, Any]:
    return job(slug, {"type": "scheduled", "schedule": schedule}, enabled)


def auth(env: EnvironmentInfo) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.api_key}"}


async def index(container: Container, env: EnvironmentInfo, *jobs: dict[str, Any]) -> None:
    await container.service.catalog.record_index(env, ENDPOINT, URL, list(jobs))


async def tick_rows(container: Container) -> list[FireSchedule]:
    async with container.engine.connect() as conn:
        values = (await conn.execute(text("SELECT value FROM outbox ORDER BY id"))).scalars().all()
    return [m for m in map(decode_message, values) if isinstance(m, FireSchedule)]


async def schedule_of(container: Container, env: EnvironmentInfo, key: str) -> Schedule:
    schedule = await container.store.get(ids.schedule_id(str(env.id), key), Schedule)
    assert schedule is not None
    return schedule


async def registered_long_ago(
    container: Container, settings: Settings, env: EnvironmentInfo, slug: str, ago: timedelta, copies: int = 1
) -> Schedule:
    """The job's schedule as if registered `ago` and never fired since (the service was down): its first tick,
    and its row, are long past. `copies` rows carry that tick (a duplicate delivery)."""
    now = datetime.now(UTC)
    key = static_key(slug)
    schedule = new_schedule(
        ids.schedule_id(str(env.id), key), str(env.id), str(ids.endpoint_id(str(env.id), ENDPOINT)), key, slug,
        False, Spec.parse(EVERY_MINUTE), None, None, now - ago,
    )  # fmt: skip
    assert schedule.next_tick_at is not None
    topics = Topics(settings.execution_topic)
    rows = [
        topics.message(f"{schedule.id}:{copy}", FireSchedule(str(schedule.id), schedule.next_tick_at.isoformat()))
        for copy in range(copies)
    ]  # each copy with a key of its own: on a partition of its own, perhaps at another worker
    await container.store.commit(schedule.collect_events(), rows)
    return schedule


async def test_indexing_registers_each_scheduled_jobs_schedule_once(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo
) -> None:
    hourly = {"type": "cron", "options": {"cron": "0 * * * *"}}
    before = datetime.now(UTC)
    await index(
        container, environment, scheduled("hourly", hourly), scheduled("minutely"), scheduled("off", enabled=False)
    )
    listed = (await client.get("/api/v1/schedules", headers=auth(environment))).json()["schedules"]
    assert [(s["key"], s["kind"], s["owner"], s["active"]) for s in listed] == [
        ("job:hourly", "job", "hourly", True),
        ("job:minutely", "job", "minutely", True),
    ]
    hour = datetime.fromisoformat(listed[0]["nextTickAt"])
    assert (hour.minute, hour.second) == (0, 0) and before < hour <= before + timedelta(hours=1)
    minute = datetime.fromisoformat(listed[1]["nextTickAt"])
    assert before + timedelta(seconds=59) < minute < datetime.now(UTC) + timedelta(seconds=61)
    assert listed[1]["schedule"] == EVERY_MINUTE and listed[1]["lastTickAt"] is None
    assert len(await tick_rows(container)) == 2

    events = await count(container.engine, "events")
    await index(
        container, environment, scheduled("hourly", hourly), scheduled("minutely"), scheduled("off", enabled=False)
    )
    assert len(await tick_rows(container)) == 2  # indexing again adds no tick
    assert await count(container.engine, "events") == events + 1  # only EndpointIndexed

    every_two = {"type": "interval", "options": {"seconds": 120}}
    await index(container, environment, scheduled("minutely", every_two))  # `hourly` is gone, `minutely` changed
    hourly_schedule = await schedule_of(container, environment, "job:hourly")
    assert not hourly_schedule.active and hourly_schedule.next_tick_at is None
    minutely = await schedule_of(container, environment, "job:minutely")
    assert minutely.schedule == every_two and minutely.next_tick_at is not None
    rows = await tick_rows(container)
    assert len(rows) == 3  # the old rows stay until due, and are then found stale
    assert [r.tick_at for r in rows if r.schedule_id == str(minutely.id)][-1] == minutely.next_tick_at.isoformat()


async def test_a_schedule_this_service_cannot_run_refuses_the_index(
    container: Container, environment: EnvironmentInfo
) -> None:
    from app.errors import Unprocessable

    before = await count(container.engine, "events")
    try:
        await index(container, environment, scheduled("fast", {"type": "interval", "options": {"seconds": 5}}))
    except Unprocessable as error:
        assert "job 'fast' has a schedule this service cannot run" in str(error)
    else:
        raise AssertionError("an interval of 5 s was accepted")
    assert await count(container.engine, "events") == before  # nothing of the index was recorded


async def test_a_tick_is_fired_once_however_many_try_at_the_same_moment(
    container: Container, settings: Settings, environment: EnvironmentInfo
) -> None:
    schedule = await registered_long_ago(container, settings, environment, "report", timedelta(minutes=10))
    await index(container, environment, scheduled("report"))
    tick = schedule.next_tick_at
    assert tick is not None
    outcomes = await asyncio.gather(*(container.service.schedules.fire(schedule.id, tick) for _ in range(10)))
    assert sorted(outcomes) == ["duplicate"] * 9 + ["fired"]
    record = await container.store.get(
        ids.event_record_id(str(environment.id), tick_event_id("job:report", tick)), EventRecord
    )
    assert record is not None and record.name == "trigger.scheduled"
    assert record.payload == {"ts": iso(tick)}  # the first tick: no lastTimestamp at all
    assert await count(container.engine, "run_status", "job_slug = 'report'") == 1
    fired = await schedule_of(container, environment, "job:report")
    assert fired.last_tick_at == tick and fired.next_tick_at is not None
    # Missed ticks are not caught up: the next is the first due after now, on the interval's phase.
    assert datetime.now(UTC) - timedelta(seconds=5) < fired.next_tick_at <= datetime.now(UTC) + timedelta(seconds=60)
    assert (fired.next_tick_at - tick) % timedelta(seconds=60) == timedelta(0)


async def test_two_workers_record_each_tick_once_and_schedules_missed_while_down_fire_once(
    container: Container, settings: Settings, environment: EnvironmentInfo
) -> None:
    slugs = [f"report-{n}" for n in range(6)]
    missed = {
        slug: await registered_long_ago(container, settings, environment, slug, timedelta(minutes=30), copies=3)
        for slug in slugs
    }
    await index(container, environment, *(scheduled(slug) for slug in slugs))  # the same schedules: kept as they are
    first, second = await start_roles(settings, "relay", "worker"), await start_roles(settings, "worker")
    try:

        async def all_fired() -> bool:
            return await count(container.engine, "run_status", "job_slug LIKE 'report-%'") >= len(slugs)

        await wait_for(all_fired, timeout=60)
        await wait_for(lambda: _no_tick_pending_now(container), timeout=30)
        await asyncio.sleep(1)  # room for a late duplicate to show up, if there were one
    finally:
        await stop_roles(second)
        await stop_roles(first)
    for slug, schedule in missed.items():
        assert await count(container.engine, "run_status", "job_slug = :slug", slug=slug) == 1
        after = await schedule_of(container, environment, static_key(slug))
        assert after.last_tick_at == schedule.next_tick_at  # the missed tick fired, once, late
        assert after.next_tick_at is not None and after.next_tick_at > datetime.now(UTC) - timedelta(seconds=5)
        ticked = [e for e in await container.store.load_events(after.id) if type(e).__name__ == "ScheduleTicked"]
        assert len(ticked) == 1
    tick_events = await count(container.engine, "events", "topic = 'jobs.EventRecord.EventRecorded'")
    assert tick_events == len(slugs)
    assert len(await tick_rows(container)) == len(slugs)  # each schedule's next tick, once


async def _no_tick_pending_now(container: Container) -> bool:
    return await count(container.engine, "outbox", "available_at <= now() AND headers ->> 'type' = 'FireSchedule'") == 0


async def test_a_tick_recorded_just_before_a_crash_is_not_recorded_again_when_its_message_comes_back(
    container: Container, settings: Settings, environment: EnvironmentInfo
) -> None:
    schedule = await registered_long_ago(container, settings, environment, "report", timedelta(minutes=5))
    await index(container, environment, scheduled("report"))
    assert schedule.next_tick_at is not None
    # A worker recorded the tick and died before it acknowledged the message: the row is still there.
    assert await container.service.schedules.fire(schedule.id, schedule.next_tick_at) == "fired"
    assert len(await tick_rows(container)) == 2
    roles = await start_roles(settings, "relay", "worker")
    try:
        await wait_for(lambda: _no_tick_pending_now(container), timeout=30)
    finally:
        await stop_roles(roles)
    assert await count(container.engine, "run_status", "job_slug = 'report'") == 1
    assert await count(container.engine, "events", "topic = 'jobs.Schedule.ScheduleTicked'") == 1
    (next_tick,) = await tick_rows(container)
    assert next_tick.tick_at == (await schedule_of(container, environment, "job:report")).next_tick_at.isoformat()  # type: ignore[union-attr]


async def test_a_dynamic_schedule_is_registered_answered_as_the_sdk_reads_it_and_unregistered(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo
) -> None:
    await index(container, environment, job("per-user", {"type": "dynamic", "id": "users"}))
    base = f"/api/v1/{ENDPOINT}/schedules/users/registrations"
    body = {"id": "user-1", "type": "interval", "options": {"seconds": 30}, "metadata": {"user": 1}}
    registered = await client.post(base, json=body, headers=auth(environment))
    assert registered.status_code == 200, registered.text
    assert registered.json() == {
        "id": "user-1",
        "schedule": {"type": "interval", "options": {"seconds": 60}},  # raised to a minute, as trigger.dev did
        "metadata": {"user": 1},
        "active": True,
    }
    again = await client.post(base, json=body, headers=auth(environment))
    assert again.json() == registered.json()
    assert len(await tick_rows(container)) == 1  # registering the same again adds no tick
    cron = {"id": "user-2", "type": "cron", "options": {"cron": "0 9 * * 1", "timezone": "Europe/Paris"}}
    assert (await client.post(base, json=cron, headers=auth(environment))).json()["schedule"] == {
        "type": "cron",
        "options": {"cron": "0 9 * * 1", "timezone": "Europe/Paris"},
    }
    listed = (await client.get("/api/v1/schedules", headers=auth(environment))).json()["schedules"]
    assert [(s["key"], s["kind"], s["owner"], s["metadata"]) for s in listed] == [
        ("dynamic:users:user-1", "dynamic", "users", {"user": 1}),
        ("dynamic:users:user-2", "dynamic", "users", None),
    ]
    monday = datetime.fromisoformat(listed[1]["nextTickAt"])
    assert monday.weekday() == 0 and monday.hour in (7, 8)  # 09:00 in Paris

    removed = await client.delete(f"{base}/user-1", headers=auth(environment))
    assert removed.status_code == 200 and removed.json() == {"ok": True}
    assert (await client.delete(f"{base}/user-1", headers=auth(environment))).json() == {"ok": True}
    assert not (await schedule_of(container, environment, "dynamic:users:user-1")).active

    refused = [
        (await client.post(base, json={**body, "options": {"seconds": 10}}, headers=auth(environment)), 400, "20"),
        (
            await client.post(base, json={**cron, "options": {"cron": "bad"}}, headers=auth(environment)),
            400,
            "5 fields",
        ),
        (await client.post(base.replace("users", "nobody"), json=body, headers=auth(environment)), 404, "nobody"),
        (
            await client.post(base.replace(ENDPOINT, "elsewhere"), json=body, headers=auth(environment)),
            404,
            "elsewhere",
        ),
        (await client.delete(f"{base}/never", headers=auth(environment)), 404, "never"),
    ]
    for response, status, words in refused:
        assert response.status_code == status, response.text
        assert words in response.json()["message"]


async def test_a_tick_of_a_dynamic_schedule_runs_every_job_attached_to_it(
    container: Container, environment: EnvironmentInfo
) -> None:
    attached = [job(f"per-user-{n}", {"type": "dynamic", "id": "users"}) for n in range(2)]
    await index(container, environment, *attached, job("other", {"type": "dynamic", "id": "others"}))
    registered = await container.service.schedules.register(
        environment, ENDPOINT, "users", "user-1", EVERY_MINUTE, {"user": 1}, None
    )
    registered.change(registered.endpoint_id, Spec("interval", seconds=120), {"user": 1}, None,
                      datetime.now(UTC) - timedelta(minutes=10))  # fmt: skip
    await container.store.commit(registered.collect_events())
    assert registered.next_tick_at is not None
    assert await container.service.schedules.fire(registered.id, registered.next_tick_at) == "fired"
    jobs = await _run_jobs(container)
    assert jobs == ["per-user-0", "per-user-1"]


async def test_a_dynamic_schedule_the_index_defines_without_jobs_takes_registrations_and_ticks_with_no_run(
    container: Container, environment: EnvironmentInfo
) -> None:
    """As trigger.dev: a DynamicSchedule is in the index's `dynamicSchedules` from its definition on, before any
    job is attached to it; one the index does not name is still unknown."""
    await container.service.catalog.record_index(environment, ENDPOINT, URL, [], ["lonely"])
    registered = await container.service.schedules.register(
        environment, ENDPOINT, "lonely", "r1", EVERY_MINUTE, None, None
    )
    assert registered.active and registered.next_tick_at is not None
    assert await container.service.schedules.fire(registered.id, registered.next_tick_at) == "fired"
    assert await _run_jobs(container) == []
    assert await count(container.engine, "events", "topic = 'jobs.EventRecord.EventRecorded'") == 1
    with pytest.raises(NotFound, match="defines no DynamicSchedule 'unnamed'"):
        await container.service.schedules.register(environment, ENDPOINT, "unnamed", "r1", EVERY_MINUTE, None, None)


async def _run_jobs(container: Container) -> list[str]:
    async with container.engine.connect() as conn:
        return list((await conn.execute(text("SELECT job_slug FROM run_status ORDER BY job_slug"))).scalars())


async def test_a_deleted_job_starts_no_run_keeps_its_history_and_comes_back_only_enabled(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo
) -> None:
    headers = auth(environment)
    await index(container, environment, scheduled("report"))
    run = await client.post("/api/v1/jobs/report/test", json={}, headers=headers)
    assert run.status_code == 202
    refused = await client.delete("/api/v1/jobs/report", headers=headers)
    assert refused.status_code == 409 and "disable it first" in refused.json()["message"]

    await index(container, environment, scheduled("report", enabled=False))
    assert not (await schedule_of(container, environment, "job:report")).active
    deleted = await client.delete("/api/v1/jobs/report", headers=headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["id"] == "report" and deleted.json()["deleted"] is True
    for path in ("/api/v1/jobs/report", "/api/v1/jobs/report/versions"):
        assert (await client.get(path, headers=headers)).status_code == 404
    assert (await client.post("/api/v1/jobs/report/test", json={}, headers=headers)).status_code == 404
    assert (await client.delete("/api/v1/jobs/report", headers=headers)).status_code == 404
    assert (await client.get("/api/v1/jobs", headers=headers)).json()["jobs"] == []
    history = (await client.get("/api/v1/jobs/report/runs", headers=headers)).json()
    assert [r["id"] for r in history["runs"]] == [run.json()["runId"]]
    assert (await client.get(f"/api/v2/runs/{run.json()['runId']}", headers=headers)).status_code == 200

    await index(container, environment, scheduled("report", enabled=False))
    assert (await client.get("/api/v1/jobs/report", headers=headers)).status_code == 404  # still deleted
    await index(container, environment, scheduled("report"))
    assert (await client.get("/api/v1/jobs/report", headers=headers)).status_code == 200
    assert (await schedule_of(container, environment, "job:report")).active


async def test_queues_are_created_ahead_of_jobs_and_count_their_runs(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo
) -> None:
    headers = auth(environment)
    created = await client.post("/api/v1/queues", json={"name": "emails", "limit": 3}, headers=headers)
    assert created.status_code == 200, created.text
    assert {k: created.json()[k] for k in ("name", "limit", "running", "queued")} == {
        "name": "emails",
        "limit": 3,
        "running": 0,
        "queued": 0,
    }
    pooled = job("mailer", {"type": "static", "title": "t", "rule": {"event": "mail"}},
                 concurrencyLimit={"id": "emails", "limit": 1})  # fmt: skip
    other = job(
        "pdf", {"type": "static", "title": "t", "rule": {"event": "pdf"}}, concurrencyLimit={"id": "pdfs", "limit": 2}
    )
    await index(container, environment, pooled, other)
    for _ in range(3):
        assert (await client.post("/api/v1/jobs/mailer/test", json={}, headers=headers)).status_code == 202
    emails = (await client.get("/api/v1/queues/emails", headers=headers)).json()
    assert (emails["limit"], emails["running"], emails["queued"]) == (3, 0, 3)  # the API's limit holds
    listed = (await client.get("/api/v1/queues", headers=headers)).json()["queues"]
    assert [(q["name"], q["limit"], q["queued"]) for q in listed] == [("emails", 3, 3), ("pdfs", 2, 0)]
    await index(container, environment, pooled, {**other, "concurrencyLimit": {"id": "pdfs", "limit": 4}})
    assert (await client.get("/api/v1/queues/pdfs", headers=headers)).json()["limit"] == 4  # a job's queue follows it

    for body, words in (
        ({"name": "", "limit": 1}, "`name` must be"),
        ({"name": "a b", "limit": 1}, "`name` must be"),
        ({"name": "ok", "limit": 0}, "`limit` must be from 1"),
        ({"name": "ok"}, "missing required field `limit`"),
    ):
        response = await client.post("/api/v1/queues", json=body, headers=headers)
        assert response.status_code == 400 and words in response.text, response.text
    missing = await client.get("/api/v1/queues/nope", headers=headers)
    assert missing.status_code == 404 and "queue 'nope' not found" in missing.json()["message"]


async def test_a_queue_limit_set_through_the_api_is_the_one_runs_start_under(
    container: Container, environment: EnvironmentInfo
) -> None:
    pooled = job("mailer", {"type": "static", "title": "t", "rule": {"event": "mail"}},
                 concurrencyLimit={"id": "emails", "limit": 1})  # fmt: skip
    await index(container, environment, pooled)
    run_ids = [(await container.service.runs.test(environment, "mailer", {}, None)).run_id for _ in range(3)]
    executions = container.service.executions
    runs = [run for run in await asyncio.gather(*(container.store.get(UUID(str(i)), JobRun) for i in run_ids))]
    assert all(run is not None for run in runs)
    assert isinstance(await executions.start(runs[0], 1), datetime)
    assert await executions.start(runs[1], 1) == "deferred"  # the job's own limit: 1
    await container.service.queues.create(environment, "emails", 2)
    assert isinstance(await executions.start(runs[1], 1), datetime)
    assert await executions.start(runs[2], 1) == "deferred"


async def test_a_schedule_whose_tick_row_was_lost_gets_it_back_from_the_rescuer(
    container: Container, settings: Settings, environment: EnvironmentInfo
) -> None:
    schedule = await registered_long_ago(container, settings, environment, "report", timedelta(minutes=5))
    await index(container, environment, scheduled("report"))
    async with container.engine.begin() as conn:  # its message was dead-lettered: the row is gone
        await conn.execute(text("DELETE FROM outbox"))
    rescuer = Rescuer(container.service, container.outbox, interval_seconds=0.1, orphan_grace_seconds=0.0)
    await rescuer.sweep()
    (row,) = await tick_rows(container)
    assert row.schedule_id == str(schedule.id) and row.tick_at == schedule.next_tick_at.isoformat()  # type: ignore[union-attr]
    await rescuer.sweep()
    assert len(await tick_rows(container)) == 1  # a row is there now: nothing more
    assert await container.service.schedules.fire(schedule.id, schedule.next_tick_at) == "fired"  # type: ignore[arg-type]


async def test_a_rebuild_gives_the_live_schedules_queues_and_deleted_jobs(
    container: Container, settings: Settings, environment: EnvironmentInfo
) -> None:
    schedule = await registered_long_ago(container, settings, environment, "report", timedelta(minutes=3))
    pooled = job("mailer", {"type": "static", "title": "t", "rule": {"event": "mail"}},
                 concurrencyLimit={"id": "emails", "limit": 1})  # fmt: skip
    await index(container, environment, scheduled("report"), scheduled("gone"), pooled)
    assert await container.service.schedules.fire(schedule.id, schedule.next_tick_at) == "fired"  # type: ignore[arg-type]
    await index(container, environment, scheduled("report"), scheduled("gone", enabled=False), pooled)
    await container.service.catalog.delete_job(environment, "gone")
    await container.service.queues.create(environment, "emails", 4)
    live = await snapshot(container.engine)
    assert len(live["schedules"]) == 2 and len(live["queues"]) == 1
    assert next(row for row in live["jobs"] if row[1] == "gone")[-1] is not None  # deleted_at
    await rebuild(container.engine, container.store.read_all_fields)
    assert await snapshot(container.engine) == live
