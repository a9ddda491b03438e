"""trigger.dev v2 jobs written with the real @trigger.dev/sdk, run unchanged on this service."""

import asyncio
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import httpx

from app.container import Container
from app.service.environments import EnvironmentInfo
from domain.runs import JobRun
from tests.helpers import finished, start_test_run, wait_for
from tests.http_peer import CallbackReceiver


async def event_types(container: Container, run_id: str) -> list[str]:
    from uuid import UUID

    return [type(e).__name__ for e in await container.store.load_events(UUID(run_id))]


async def test_each_step_runs_once_though_the_job_is_re_executed(api: httpx.AsyncClient, container: Container) -> None:
    run = await finished(api, await start_test_run(api, "two-steps"))
    assert run["status"] == "SUCCESS", run
    output = run["output"]
    assert output["first"] == {"a": 1} and output["second"] == {"b": 2}
    assert output["calls"]["executions"] >= 2  # io.wait made the service execute the job again
    assert output["calls"]["step-1"] == 1 and output["calls"]["step-2"] == 1
    tasks = {task["name"]: task for task in run["tasks"]}
    assert tasks["log"]["noop"] and tasks["log"]["status"] == "COMPLETED"
    assert tasks["log"]["description"] == "between the steps"
    assert tasks["wait"]["status"] == "COMPLETED"
    assert [t["status"] for t in run["tasks"] if t["name"] == "Task"] == ["COMPLETED", "COMPLETED"]
    (status,) = run["statuses"]
    assert status["key"] == "progress"
    assert (status["label"], status["state"], status["data"]) == ("Halfway", "success", {"p": 1})
    assert status["history"] == [{"label": "Halfway", "state": "loading", "data": {"p": 0.5}}]
    statuses = (await api.get(f"/api/v2/runs/{run['id']}/statuses")).json()
    assert statuses["run"]["status"] == "SUCCESS" and statuses["statuses"] == run["statuses"]
    history = await event_types(container, run["id"])
    assert history.count("RunStarted") == output["calls"]["executions"]
    assert "RunWaiting" in history


async def test_io_wait_resumes_no_earlier_than_its_delay(api: httpx.AsyncClient) -> None:
    run = await finished(api, await start_test_run(api, "waits", {"seconds": 2}))
    assert run["status"] == "SUCCESS" and run["output"] == {"woke": True}
    (wait,) = run["tasks"]
    waited = datetime.fromisoformat(run["completedAt"]) - datetime.fromisoformat(wait["startedAt"])
    assert waited.total_seconds() >= 2


async def test_a_task_that_throws_twice_is_retried_by_the_sdk_and_succeeds(
    api: httpx.AsyncClient, container: Container
) -> None:
    run = await finished(api, await start_test_run(api, "flaky-task"))
    assert run["status"] == "SUCCESS", run
    assert run["output"] == {"attempt": 3}
    (task,) = run["tasks"]
    assert (task["status"], task["attempts"]) == ("COMPLETED", 3)
    history = await event_types(container, run["id"])
    assert history.count("TaskRetryScheduled") == 2
    assert history.count("RunStarted") == 3


async def test_send_event_triggers_a_second_job(api: httpx.AsyncClient) -> None:
    run = await finished(api, await start_test_run(api, "sends-event", {"n": 7}))
    assert run["status"] == "SUCCESS", run
    event_id = run["output"]["sentEventId"]
    event = (await api.get(f"/api/v2/events/{event_id}")).json()
    assert event["name"] == "compat.chained"
    (chained,) = event["runs"]
    second = await finished(api, chained["id"])
    assert second["status"] == "SUCCESS"
    assert second["output"] == {"received": {"from": run["id"], "n": 7}}


async def test_an_invalid_payload_for_a_job_with_a_schema(api: httpx.AsyncClient) -> None:
    run = await finished(api, await start_test_run(api, "with-schema", {"n": "not a number"}))
    assert run["status"] == "INVALID_PAYLOAD"
    assert run["output"]["errors"][0]["path"] == ["n"]


async def test_invoke_with_a_callback_url_posts_a_signed_notification(
    api: httpx.AsyncClient, environment: EnvironmentInfo, container: Container
) -> None:
    async with CallbackReceiver(fail_first=1) as receiver:
        body = {"payload": {"x": 1}, "context": {"c": 2}, "options": {"callbackUrl": receiver.url("/callback")}}
        first = await api.post("/api/v1/jobs/return-value/invoke", json=body, headers={"Idempotency-Key": "k-1"})
        again = await api.post("/api/v1/jobs/return-value/invoke", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == again.status_code == 200, first.text
        run_id = first.json()["id"]
        assert again.json()["id"] == run_id
        run = await finished(api, run_id)
        assert run["status"] == "SUCCESS"
        await wait_for(lambda: _delivered(container, run_id), timeout=30)
    assert len(receiver.received) == 2  # the first try answered 500 and was retried
    headers, content = receiver.received[-1]
    expected = hmac.new(environment.api_key.encode(), content, hashlib.sha256).hexdigest()
    assert headers["x-trigger-signature-256"] == expected
    notification = json.loads(content)
    assert (notification["id"], notification["ok"], notification["status"]) == (run_id, True, "SUCCESS")
    assert notification["output"] == {"ok": True, "echo": {"x": 1}}
    assert notification["invocation"]["payload"] == {"x": 1}
    assert notification["invocation"]["context"] == {"c": 2}
    assert notification["job"] == {"id": "return-value", "version": "1.0.0"}


async def _delivered(container: Container, run_id: str) -> bool:
    from uuid import UUID

    run = await container.store.get(UUID(run_id), JobRun)
    return run is not None and "callback" in run.delivered


async def test_events_trigger_matching_jobs_once_per_event_id(api: httpx.AsyncClient) -> None:
    sent = await api.post("/api/v1/events", json={"event": {"id": "e-1", "name": "compat.return", "payload": {"v": 1}}})
    assert sent.status_code == 200, sent.text
    log = sent.json()
    assert (log["id"], log["name"], log["payload"], log["cancelledAt"]) == ("e-1", "compat.return", {"v": 1}, None)
    again = await api.post("/api/v1/events", json={"event": {"id": "e-1", "name": "compat.return", "payload": {}}})
    assert again.json()["payload"] == {"v": 1}
    event = (await api.get("/api/v2/events/e-1")).json()
    (run,) = event["runs"]
    assert (await finished(api, run["id"]))["output"] == {"ok": True, "echo": {"v": 1}}
    nothing = await api.post("/api/v1/events", json={"event": {"id": "e-2", "name": "no.such.event"}})
    assert nothing.status_code == 200
    assert (await api.get("/api/v2/events/e-2")).json()["runs"] == []


async def test_scheduled_events_deliver_later_and_can_be_canceled(api: httpx.AsyncClient) -> None:
    bulk = await api.post(
        "/api/v1/events/bulk",
        json={
            "events": [{"id": "later", "name": "compat.return"}, {"id": "never", "name": "compat.return"}],
            "options": {"deliverAfter": 1},
        },
    )
    assert bulk.status_code == 200, bulk.text
    assert all(e["deliverAt"] and e["deliveredAt"] is None for e in bulk.json())
    canceled = await api.post("/api/v1/events/never/cancel")
    assert canceled.json()["cancelledAt"] is not None
    assert (await api.get("/api/v2/events/later")).json()["runs"] == []

    async def delivered() -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = (await api.get("/api/v2/events/later")).json()["runs"]
        return runs

    (run,) = await wait_for(delivered, timeout=30)
    assert (await finished(api, run["id"]))["status"] == "SUCCESS"
    await asyncio.sleep(1.5)
    assert (await api.get("/api/v2/events/never")).json()["runs"] == []


async def test_a_disabled_job_version_is_aborted(api: httpx.AsyncClient) -> None:
    run = await finished(api, await start_test_run(api, "disabled"))
    assert run["status"] == "ABORTED"
    assert "disabled" in run["output"]["message"]


async def test_a_task_that_fails_without_retry_fails_the_run(api: httpx.AsyncClient, container: Container) -> None:
    run = await finished(api, await start_test_run(api, "task-fails"))
    assert run["status"] == "FAILURE"
    assert run["output"]["message"] == "task failed for good"
    (task,) = run["tasks"]
    assert task["status"] == "ERRORED"
    assert task["output"]["message"] == "task failed for good"
    assert "TaskFailed" in await event_types(container, run["id"])


async def test_trigger_filters_pick_the_events_a_job_runs_for(api: httpx.AsyncClient) -> None:
    orders = {
        "gold-big": {"tier": "gold", "total": 150},
        "gold-small": {"tier": "gold", "total": 50},
        "silver-big": {"tier": "silver", "total": 500},
    }
    for event_id, payload in orders.items():
        sent = await api.post(
            "/api/v1/events", json={"event": {"id": event_id, "name": "compat.order", "payload": payload}}
        )
        assert sent.status_code == 200, sent.text
    runs = {event_id: (await api.get(f"/api/v2/events/{event_id}")).json()["runs"] for event_id in orders}
    assert [len(runs[e]) for e in orders] == [1, 0, 0]
    assert (await finished(api, runs["gold-big"][0]["id"]))["output"] == {"order": orders["gold-big"]}


async def test_an_endpoint_that_asks_hears_of_its_runs_by_run_notification(api: httpx.AsyncClient) -> None:
    run = await finished(api, await start_test_run(api, "notified"))
    assert run["status"] == "SUCCESS"

    async def heard() -> dict[str, Any] | None:
        response = await api.get(f"/api/v2/events/heard-{run['id']}")
        return response.json() if response.status_code == 200 else None

    event = await wait_for(heard, timeout=30)
    assert event["name"] == "compat.heard"
