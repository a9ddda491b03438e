"""The key-value store (io.store, client.store), io.waitForEvent and run control (client.cancelRun,
client.cancelRunsForEvent) with the real @trigger.dev/sdk: the jobs of tests/compat/jobs_kv.js."""

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
from sqlalchemy import text

from app.container import Container
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from domain.environments import EnvironmentType
from domain.tasks import CALLBACK_TIMEOUT_OUTPUT
from tests.helpers import count, finished, in_status, start_roles, start_test_run, stop_roles
from tests.node_endpoint import NodeEndpoint, sdk, store_client

DISPATCHERS = "/api/v1/event-dispatchers/ephemeral"


def store_path(key: str) -> str:
    return "/api/v1/store/" + quote(key, safe="")


async def event_types(container: Container, aggregate_id: str | UUID) -> Counter[str]:
    events = await container.store.load_events(UUID(str(aggregate_id)))
    return Counter(type(event).__name__ for event in events)


# -- the key-value store ----------------------------------------------------------------------------------


async def test_io_store_keeps_keys_per_environment_job_and_run(
    api: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    stored, has, got, missing = await store_client(
        settings,
        ["set", "greeting", {"hello": "world"}],
        ["has", "greeting"],
        ["get", "greeting"],
        ["get", "nothing-here"],
    )
    assert (stored, has, got, missing) == ({"hello": "world"}, True, {"hello": "world"}, None)

    first = await finished(api, await start_test_run(api, "kv-store", {"envKey": "greeting"}))
    second = await finished(api, await start_test_run(api, "kv-store", {"envKey": "greeting"}))
    assert first["status"] == second["status"] == "SUCCESS", (first, second)
    one, two = first["output"], second["output"]
    assert (one["jobBefore"], two["jobBefore"]) == (0, 1)  # a job's key is shared by its runs
    assert one["mineBefore"] is False and two["mineBefore"] is False  # a run's key is its own
    assert one["mine"] == {"run": first["id"]} and two["mine"] == {"run": second["id"]}
    assert one["mineNow"] is True
    assert one["envValue"] == {"hello": "world"}  # what client.store set outside any run
    assert (one["deleted"], one["deletedAgain"], one["tempAfter"]) == (True, False, None)
    # io.wait made the job execute again; the step and each store call ran once all the same
    assert one["calls"]["executions"] >= 2 and one["calls"]["step"] == 1
    names = Counter(task["name"] for task in first["tasks"])
    assert names["Key-Value Store Set"] == 4 and names["Key-Value Store Get"] == 4
    assert names["Key-Value Store Has"] == 2 and names["Key-Value Store Delete"] == 2
    store_tasks = [task for task in first["tasks"] if task["name"].startswith("Key-Value Store")]
    assert all(task["status"] == "COMPLETED" and task["attempts"] == 1 for task in store_tasks)

    counter = (await api.get(store_path("job:kv-store:counter"))).json()
    assert counter == {"action": "GET", "key": "job:kv-store:counter", "value": "2"}
    mine = (await api.get(store_path(f"run:{first['id']}:mine"))).json()
    assert json.loads(mine["value"]) == {"run": first["id"]}
    assert (await api.head(store_path(f"run:{second['id']}:temp"))).status_code == 404
    seen, deleted, gone = await store_client(
        settings, ["get", f"seen-by-{first['id']}"], ["delete", "greeting"], ["has", "greeting"]
    )
    assert (seen, deleted, gone) == ({"at": "run"}, True, False)

    _, other_key = await container.service.environments.create("other", EnvironmentType.PRODUCTION)
    other = {"Authorization": f"Bearer {other_key}"}
    assert "value" not in (await api.get(store_path("job:kv-store:counter"), headers=other)).json()
    assert (await api.head(store_path("job:kv-store:counter"), headers=other)).status_code == 404


async def test_the_store_refuses_bad_keys_and_values_and_changes_nothing(
    api: httpx.AsyncClient, container: Container
) -> None:
    key = "a/b:ü ?#%"
    put = await api.put(store_path(key), content=b'{"v": 1}', headers={"content-type": "text/plain"})
    assert put.json() == {"action": "SET", "key": key, "value": '{"v": 1}'}
    assert (await api.get(store_path(key))).json()["value"] == '{"v": 1}'
    assert (await api.head(store_path(key))).status_code == 200
    refused = {
        "too long": await api.get(store_path("k" * 1025)),
        "not UTF-8": await api.get("/api/v1/store/%FF%FE"),
        "NUL": await api.put("/api/v1/store/a%00b", content=b"1"),
        "NUL in the value": await api.put(store_path("k"), content=b'"a\x00b"'),
        "value not UTF-8": await api.put(store_path("k"), content=b'"\xff"'),
        "value over 256 KiB": await api.put(store_path("k"), content=b'"' + b"x" * (256 * 1024) + b'"'),
    }
    statuses = {label: response.status_code for label, response in refused.items()}
    assert statuses == {label: 413 if "256" in label else 400 for label in refused}, statuses
    for response in refused.values():
        assert response.json()["message"]
    assert "longer than 1024 bytes" in refused["too long"].json()["message"]
    assert "256" in refused["value over 256 KiB"].json()["message"]
    assert await count(container.engine, "kv_items") == 1
    assert (await api.head(store_path("k"))).status_code == 404
    assert (await api.get(store_path(key), headers={"Authorization": "Bearer tr_dev_nope"})).status_code == 401


# -- io.waitForEvent --------------------------------------------------------------------------------------


async def _waiting(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    run = await in_status(api, run_id, {"WAITING_TO_CONTINUE"}, timeout=30)
    (wait,) = [task for task in run["tasks"] if task["name"] == "Wait for Event"]
    assert wait["status"] == "WAITING"
    return run


async def _send(api: httpx.AsyncClient, event: dict[str, Any]) -> None:
    sent = await api.post("/api/v1/events", json={"event": event})
    assert sent.status_code == 200, sent.text


async def test_wait_for_event_resumes_the_run_with_the_matching_event(
    api: httpx.AsyncClient, container: Container
) -> None:
    run_id = await start_test_run(api, "waits-for-event", {"orderId": "o-1"})
    await _waiting(api, run_id)
    await _send(api, {"id": "paid-other", "name": "compat.order-paid", "payload": {"orderId": "o-2"}})
    await _send(api, {"id": "other-name", "name": "compat.order-refunded", "payload": {"orderId": "o-1"}})
    await asyncio.sleep(1.5)
    assert (await api.get(f"/api/v2/runs/{run_id}")).json()["status"] == "WAITING_TO_CONTINUE"

    sent_at = "2030-01-02T03:04:05.678Z"
    paid = {"orderId": "o-1", "amount": 12}
    await _send(
        api,
        {
            "id": "paid-1",
            "name": "compat.order-paid",
            "payload": paid,
            "context": {"via": "test"},
            "timestamp": sent_at,
        },
    )
    run = await finished(api, run_id)
    assert run["status"] == "SUCCESS", run
    output = run["output"]
    assert output["event"] == {
        "id": "paid-1",
        "name": "compat.order-paid",
        "source": "trigger.dev",
        "payload": paid,
        "context": {"via": "test"},
        "timestamp": sent_at,
    }
    assert output["calls"] == {"executions": 2, "before": 1, "after": 1}
    (wait,) = [task for task in run["tasks"] if task["name"] == "Wait for Event"]
    assert wait["status"] == "COMPLETED" and wait["output"]["payload"] == paid

    await _send(api, {"id": "paid-again", "name": "compat.order-paid", "payload": {"orderId": "o-1"}})
    await asyncio.sleep(1)
    async with container.engine.connect() as conn:
        (dispatcher,) = (await conn.execute(text("SELECT id, matched_at FROM event_dispatchers"))).all()
    assert dispatcher.matched_at is not None
    assert (await event_types(container, dispatcher.id))["DispatcherMatched"] == 1
    assert (await event_types(container, run_id))["RunStarted"] == 2


async def test_wait_for_event_survives_a_restart_and_takes_one_event_of_two(
    settings: Settings, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    headers = {"Authorization": f"Bearer {environment.api_key}"}
    base = f"http://127.0.0.1:{settings.port}"
    roles = await start_roles(settings, "api", "relay", "worker")
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
            registered = await api.post(
                "/api/v1/endpoints", json={"id": compat_endpoint.endpoint_id, "url": compat_endpoint.url}
            )
            assert registered.status_code == 200, registered.text
            run_id = await start_test_run(api, "waits-for-event", {"orderId": "o-9"})
            waiting = await _waiting(api, run_id)
    finally:
        await stop_roles(roles)
    # the time-out is an outbox row due when the task's time is up (300 s here), not a timer in a process
    (wait,) = [task for task in waiting["tasks"] if task["name"] == "Wait for Event"]
    async with container.engine.connect() as conn:
        due = (
            await conn.execute(text("SELECT available_at FROM outbox WHERE headers ->> 'type' = 'TimeOutCallback'"))
        ).scalar_one()
    assert abs((due - datetime.fromisoformat(wait["startedAt"])).total_seconds() - 300) < 1

    # Restarted with the API alone: the events are recorded, the handover to the task waits in the outbox.
    roles = await start_roles(settings, "api")
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
            events = [
                {"id": f"paid-{n}", "name": "compat.order-paid", "payload": {"orderId": "o-9", "n": n}} for n in (1, 2)
            ]
            await asyncio.gather(*(_send(api, event) for event in events))
    finally:
        await stop_roles(roles)
    assert await count(container.engine, "outbox", "headers ->> 'type' = 'DispatchEvent'") == 1

    roles = await start_roles(settings, "api", "relay", "worker")
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
            run = await finished(api, run_id)
    finally:
        await stop_roles(roles)
    assert run["status"] == "SUCCESS", run
    assert run["output"]["event"]["payload"]["n"] in (1, 2)
    assert run["output"]["calls"] == {"executions": 2, "before": 1, "after": 1}


async def test_wait_for_event_times_out_as_trigger_dev_did(api: httpx.AsyncClient, container: Container) -> None:
    run_id = await start_test_run(api, "waits-for-event", {"orderId": "never", "timeoutInSeconds": 10})
    await _waiting(api, run_id)
    run = await finished(api, run_id, timeout=60)
    # The task fails with trigger.dev's message; the run executes again, the SDK throws it from
    # io.waitForEvent, and the run fails with it (as the SDK words a task error that is a string).
    assert run["status"] == "FAILURE", run
    assert run["output"]["message"] == json.dumps(CALLBACK_TIMEOUT_OUTPUT)
    (wait,) = [task for task in run["tasks"] if task["name"] == "Wait for Event"]
    assert (wait["status"], wait["output"]) == ("ERRORED", CALLBACK_TIMEOUT_OUTPUT)
    waited = datetime.fromisoformat(wait["completedAt"]) - datetime.fromisoformat(wait["startedAt"])
    assert 10 <= waited.total_seconds() < 30
    assert [task["displayKey"] for task in run["tasks"] if task["name"] == "Task"] == ["before"]
    assert (await event_types(container, run_id))["RunStarted"] == 2

    async with container.engine.connect() as conn:
        expires_at = (await conn.execute(text("SELECT expires_at FROM event_dispatchers"))).scalar_one()
    await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.1)
    await _send(api, {"id": "too-late", "name": "compat.order-paid", "payload": {"orderId": "never"}})
    assert await count(container.engine, "event_dispatchers", "matched_at IS NOT NULL") == 0
    assert (await api.get(f"/api/v2/runs/{run_id}")).json()["status"] == "FAILURE"


async def test_a_dispatcher_waits_only_for_a_task_callback_of_the_callers_environment(
    api: httpx.AsyncClient, container: Container
) -> None:
    run_id = await start_test_run(api, "kv-slow", {"seconds": 60})
    await in_status(api, run_id, {"WAITING_TO_CONTINUE"})
    waiting = {"idempotencyKey": "w", "callback": {"enabled": True, "timeoutInSeconds": 60}}
    url = (await api.post(f"/api/v1/runs/{run_id}/tasks", json=waiting)).json()["callbackUrl"]
    body = {"url": url, "name": "compat.x"}
    first, again = [await api.post(DISPATCHERS, json=body) for _ in range(2)]
    assert first.status_code == again.status_code == 200, first.text
    assert first.json() == again.json()  # one dispatcher per callback URL
    wrong_secret = url[:-1] + ("1" if url[-1] != "1" else "2")
    refused = {
        "not a task callback URL": ({**body, "url": "http://127.0.0.1:9/elsewhere"}, 400),
        "a wrong secret": ({**body, "url": wrong_secret}, 404),
        "under 10 seconds": ({**body, "timeoutInSeconds": 5}, 400),
        "a filter no event can be matched with": ({**body, "filter": {"a": [{"$between": 3}]}}, 400),
        "no event name": ({**body, "name": []}, 400),
    }
    for label, (request, status) in refused.items():
        response = await api.post(DISPATCHERS, json=request)
        assert response.status_code == status and response.json()["message"], (label, response.text)
    _, other_key = await container.service.environments.create("other", EnvironmentType.PRODUCTION)
    other = await api.post(DISPATCHERS, json=body, headers={"Authorization": f"Bearer {other_key}"})
    assert other.status_code == 404
    assert await count(container.engine, "event_dispatchers") == 1


# -- run control through the SDK client -------------------------------------------------------------------


async def test_cancel_run_and_cancel_runs_for_event_through_the_sdk_client(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    slow = await start_test_run(api, "kv-slow", {"seconds": 60})
    await in_status(api, slow, {"WAITING_TO_CONTINUE"})
    busy = [await start_test_run(api, "limited", {"ms": 8000}) for _ in range(2)]
    for run_id in busy:
        await in_status(api, run_id, {"EXECUTING"})
    await _send(api, {"id": "queued-behind", "name": "compat.limited", "payload": {"ms": 10}})
    await _send(api, {"id": "makes-a-waiting-run", "name": "compat.wait-event", "payload": {"orderId": "x"}})
    (queued,) = (await api.get("/api/v2/events/queued-behind")).json()["runs"]
    (waiting,) = (await api.get("/api/v2/events/makes-a-waiting-run")).json()["runs"]
    await _waiting(api, waiting["id"])
    assert (await api.get(f"/api/v2/runs/{queued['id']}")).json()["status"] == "QUEUED"

    canceled_run, for_event, for_waiting_event, again = await sdk(
        settings,
        ["cancelRun", slow],
        ["cancelRunsForEvent", "queued-behind"],
        ["cancelRunsForEvent", "makes-a-waiting-run"],
        ["cancelRun", slow],
    )
    assert canceled_run["id"] == slow and canceled_run["status"] == "CANCELED"
    assert [task["status"] for task in canceled_run["tasks"]] == ["CANCELED"]
    assert for_event == {"cancelledRunIds": [queued["id"]], "failedToCancelRunIds": []}
    # as in trigger.dev v2, a run that started executing is not canceled for its event
    assert for_waiting_event == {"cancelledRunIds": [], "failedToCancelRunIds": []}
    assert again["status"] == "CANCELED" and again["updatedAt"] == canceled_run["updatedAt"]
    assert (await finished(api, queued["id"]))["status"] == "CANCELED"
    assert (await api.get(f"/api/v2/runs/{waiting['id']}")).json()["status"] == "WAITING_TO_CONTINUE"
    missing = await api.post("/api/v1/events/no-such-event/cancel-runs")
    assert missing.status_code == 404 and missing.json()["message"]
    for run_id in busy:
        assert (await finished(api, run_id))["status"] == "SUCCESS"
