"""Run control on the running stack with the real SDK endpoint: cancel, continue, rerun, tags and lists,
concurrency limits, scheduled runs, and history."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.container import Container
from tests.helpers import count, finished, in_status, start_test_run


async def history(api: httpx.AsyncClient, run_id: str) -> list[str]:
    response = await api.get(f"/api/v1/runs/{run_id}/events")
    assert response.status_code == 200, response.text
    return [event["type"] for event in response.json()["events"]]


async def test_cancel_a_waiting_run_withdraws_its_queued_execution(
    api: httpx.AsyncClient, container: Container
) -> None:
    run_id = await start_test_run(api, "waits", {"seconds": 30})
    await in_status(api, run_id, {"WAITING_TO_CONTINUE"})
    assert await count(container.engine, "outbox", "key = :key AND published_at IS NULL", key=run_id) == 1
    canceled = await api.post(f"/api/v1/runs/{run_id}/cancel")
    assert await count(container.engine, "outbox", "key = :key", key=run_id) == 0
    run = (await api.get(f"/api/v2/runs/{run_id}")).json()
    assert canceled.json() == run  # the whole run, as the SDK's cancelRun parses it
    assert run["id"] == run_id and run["status"] == "CANCELED" and run["completedAt"]
    assert [task["status"] for task in run["tasks"]] == ["CANCELED"]
    again = await api.post(f"/api/v1/runs/{run_id}/cancel")
    assert again.json()["status"] == "CANCELED"
    assert (await history(api, run_id))[-2:] == ["TaskCanceled", "RunCanceled"]


async def test_an_execution_in_flight_does_not_complete_a_canceled_run(api: httpx.AsyncClient) -> None:
    run_id = await start_test_run(api, "sleeps", {"ms": 1500})
    await in_status(api, run_id, {"EXECUTING"})
    assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).json()["status"] == "CANCELED"
    await asyncio.sleep(2.5)  # the endpoint answers SUCCESS meanwhile
    run = (await api.get(f"/api/v2/runs/{run_id}")).json()
    assert run["status"] == "CANCELED"
    events = await history(api, run_id)
    assert "RunCompleted" not in events
    assert events[-1] == "StaleAnswerDiscarded"  # the late SUCCESS is recorded, and changes nothing


async def test_cancel_runs_of_a_job(api: httpx.AsyncClient) -> None:
    waiting = [await start_test_run(api, "waits", {"seconds": 30}) for _ in range(3)]
    done = await start_test_run(api, "return-value")
    await finished(api, done)
    for run_id in waiting:
        await in_status(api, run_id, {"WAITING_TO_CONTINUE"})
    response = await api.post("/api/v1/jobs/waits/cancel-runs")
    assert response.status_code == 200
    assert sorted(response.json()["cancelledRunIds"]) == sorted(waiting)
    assert response.json()["failedToCancelRunIds"] == []
    assert (await api.get(f"/api/v2/runs/{done}")).json()["status"] == "SUCCESS"


async def test_continue_a_canceled_run_and_refuse_to_continue_a_successful_one(api: httpx.AsyncClient) -> None:
    run_id = await start_test_run(api, "waits", {"seconds": 30})
    await in_status(api, run_id, {"WAITING_TO_CONTINUE"})
    await api.post(f"/api/v1/runs/{run_id}/cancel")
    continued = await api.post(f"/api/v1/runs/{run_id}/continue")
    assert continued.json() == {"id": run_id, "status": "QUEUED"}
    run = await finished(api, run_id)
    assert (run["status"], run["output"]) == ("SUCCESS", {"woke": True})
    refused = await api.post(f"/api/v1/runs/{run_id}/continue")
    assert refused.status_code == 409
    assert refused.json()["message"] == "the run is SUCCESS: it cannot go to QUEUED"


async def test_rerun_makes_a_new_event_and_a_new_run(api: httpx.AsyncClient) -> None:
    first = await start_test_run(api, "return-value", {"n": 5}, tags=["x"], priority=2)
    await finished(api, first)
    rerun = await api.post(f"/api/v1/runs/{first}/rerun")
    assert rerun.status_code == 200, rerun.text
    second = rerun.json()["id"]
    assert second != first
    run = await finished(api, second)
    assert run["output"] == {"ok": True, "echo": {"n": 5}}
    (listed,) = [r for r in (await api.get("/api/v1/runs?tag=x")).json()["runs"] if r["id"] == second]
    assert (listed["tags"], listed["priority"]) == (["x"], 2)
    events = (await api.get(f"/api/v1/runs/{second}/events")).json()["events"]
    assert (
        events[0]["data"]["event_record_id"]
        != (await api.get(f"/api/v1/runs/{first}/events")).json()["events"][0]["data"]["event_record_id"]
    )


async def test_tags_filter_lists_with_cursor_pagination_newest_first(api: httpx.AsyncClient) -> None:
    tagged = [await start_test_run(api, "return-value", {"i": i}, tags=["batch", f"n{i}"]) for i in range(5)]
    other = await start_test_run(api, "throws", tags=["other"])
    for run_id in [*tagged, other]:
        await finished(api, run_id)
    pages: list[str] = []
    cursor = None
    while True:
        query = "/api/v1/jobs/return-value/runs?tag=batch&take=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(query)).json()
        pages.extend(run["id"] for run in page["runs"])
        cursor = page.get("nextCursor")
        if cursor is None:
            break
    assert pages == list(reversed(tagged))
    failed = (await api.get("/api/v1/runs?status=FAILURE&tag=other&job=throws")).json()["runs"]
    assert [run["id"] for run in failed] == [other]
    assert (await api.get("/api/v1/runs?status=SUCCESS&tag=other")).json()["runs"] == []
    for bad in ("take=51", "take=0", "status=DONE", "cursor=nope"):
        response = await api.get(f"/api/v1/runs?{bad}")
        assert response.status_code == 400, bad
    too_many = await api.post("/api/v1/jobs/return-value/test", json={"tags": [str(i) for i in range(11)]})
    assert too_many.status_code == 400 and "at most 10" in too_many.json()["message"]


async def test_a_concurrency_limit_of_two_over_twenty_runs(api: httpx.AsyncClient, container: Container) -> None:
    events = [{"name": "compat.limited", "payload": {"ms": 150}} for _ in range(20)]
    response = await api.post("/api/v1/events/bulk", json={"events": events})
    assert response.status_code == 200, response.text
    run_ids = [(await api.get(f"/api/v2/events/{e['id']}")).json()["runs"][0]["id"] for e in response.json()]
    runs = [await finished(api, run_id) for run_id in run_ids]
    assert {run["status"] for run in runs} == {"SUCCESS"}
    peak_at_endpoint = max(run["output"]["peak"] for run in runs)
    peak_in_service = await _peak_executing(api, run_ids)
    print(f"\nconcurrency limit 2, 20 runs: peak EXECUTING {peak_in_service} (service), {peak_at_endpoint} (endpoint)")
    assert peak_in_service <= 2 and peak_at_endpoint <= 2
    assert peak_in_service == 2  # the limit is used, not just respected


async def test_a_named_group_limits_the_jobs_that_share_it(api: httpx.AsyncClient) -> None:
    events = [{"name": f"compat.grouped-{side}", "payload": {"ms": 150}} for side in "ab" * 6]
    response = await api.post("/api/v1/events/bulk", json={"events": events})
    run_ids = [(await api.get(f"/api/v2/events/{e['id']}")).json()["runs"][0]["id"] for e in response.json()]
    runs = [await finished(api, run_id) for run_id in run_ids]
    assert {run["status"] for run in runs} == {"SUCCESS"}
    assert await _peak_executing(api, run_ids) <= 2
    assert max(run["output"]["peak"] for run in runs) <= 2


async def _peak_executing(api: httpx.AsyncClient, run_ids: list[str]) -> int:
    """The most runs executing at once, from each run's RunStarted and RunCompleted times."""
    changes: list[tuple[str, int]] = []
    for run_id in run_ids:
        for event in (await api.get(f"/api/v1/runs/{run_id}/events")).json()["events"]:
            if event["type"] == "RunStarted":
                changes.append((event["time"], 1))
            elif event["type"] == "RunCompleted":
                changes.append((event["time"], -1))
    running = peak = 0
    for _, change in sorted(changes, key=lambda c: (c[0], c[1])):
        running += change
        peak = max(peak, running)
    return peak


async def test_an_event_delivered_later_starts_its_run_no_earlier(api: httpx.AsyncClient) -> None:
    deliver_at = datetime.now(UTC) + timedelta(seconds=2)
    sent = await api.post(
        "/api/v1/events",
        json={
            "event": {"id": "later-1", "name": "compat.return"},
            "options": {"deliverAt": deliver_at.isoformat()},
        },
    )
    assert sent.status_code == 200, sent.text

    async def delivered() -> list[dict[str, Any]]:
        return list((await api.get("/api/v2/events/later-1")).json()["runs"])

    from tests.helpers import wait_for

    (run,) = await wait_for(delivered, timeout=30)
    result = await finished(api, run["id"])
    assert datetime.fromisoformat(result["startedAt"]) >= deliver_at


async def test_history_and_the_run_as_it_was(api: httpx.AsyncClient) -> None:
    run_id = await start_test_run(api, "sleeps", {"ms": 400})
    run = await finished(api, run_id)
    events = (await api.get(f"/api/v1/runs/{run_id}/events")).json()["events"]
    assert [e["type"] for e in events] == ["RunCreated", "RunStarted", "RunCompleted"]
    assert [e["version"] for e in events] == [1, 2, 3]
    assert events[2]["data"]["status"] == "SUCCESS" and events[2]["data"]["output"] == {"slept": 400}
    started, completed = (datetime.fromisoformat(events[i]["time"]) for i in (1, 2))
    middle = started + (completed - started) / 2
    during = (await api.get(f"/api/v2/runs/{run_id}", params={"at": middle.isoformat()})).json()
    assert (during["status"], during["completedAt"], during["output"]) == ("EXECUTING", None, None)
    before = await api.get(f"/api/v2/runs/{run_id}", params={"at": (started - timedelta(hours=1)).isoformat()})
    assert before.status_code == 404
    after = (await api.get(f"/api/v2/runs/{run_id}", params={"at": completed.isoformat()})).json()
    assert after == run
    assert (await api.get(f"/api/v2/runs/{run_id}", params={"at": "yesterday"})).status_code == 400


async def test_continue_refuses_a_run_that_is_executing_and_starts_no_second_execution(
    api: httpx.AsyncClient,
) -> None:
    run_id = await start_test_run(api, "sleeps", {"ms": 1500})
    await in_status(api, run_id, {"EXECUTING"})
    before = await history(api, run_id)
    refused = await api.post(f"/api/v1/runs/{run_id}/continue")
    assert refused.status_code == 409
    assert refused.json()["status"] == "EXECUTING"
    assert await history(api, run_id) == before
    run = await finished(api, run_id)
    assert run["status"] == "SUCCESS"
    assert (await history(api, run_id)).count("RunStarted") == 1


async def test_an_idempotency_key_reused_for_another_request_is_a_conflict(api: httpx.AsyncClient) -> None:
    body = {"payload": {"n": 1}, "context": {"c": 1}}
    first = await api.post("/api/v1/jobs/return-value/invoke", json=body, headers={"Idempotency-Key": "order-7"})
    assert first.status_code == 200, first.text
    run_id = first.json()["id"]
    same = await api.post("/api/v1/jobs/return-value/invoke", json=body, headers={"Idempotency-Key": "order-7"})
    assert same.status_code == 200 and same.json()["id"] == run_id
    for path, changed, differs in (
        ("/api/v1/jobs/return-value/invoke", {**body, "payload": {"n": 2}}, "payload"),
        ("/api/v1/jobs/return-value/invoke", {**body, "options": {"tags": ["x"]}}, "options.tags"),
        ("/api/v1/jobs/two-steps/invoke", body, "job"),
    ):
        conflict = await api.post(path, json=changed, headers={"Idempotency-Key": "order-7"})
        assert conflict.status_code == 409, conflict.text
        assert differs in conflict.json()["message"] and conflict.json()["runId"] == run_id
    listed = (await api.get("/api/v1/runs")).json()["runs"]
    assert [run["id"] for run in listed] == [run_id]
