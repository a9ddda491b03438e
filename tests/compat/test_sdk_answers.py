"""Every answer of a route the @trigger.dev/sdk v2 calls parses with the zod schema the SDK parses it with
(from node_modules/@trigger.dev/core, by tests/compat/zod_parse.js).

Routes covered, each with the schema of ROUTES:
POST /api/v1/runs/{runId}/tasks (plain, and with `Trigger-Version: 2023-09-29`), POST .../tasks/{id}/complete,
POST .../tasks/{id}/fail, PUT /api/v1/runs/{runId}/statuses/{id}, POST /api/v1/events, POST /api/v1/events/bulk,
POST /api/v1/events/{id}/cancel, POST /api/v1/events/{id}/cancel-runs, GET /api/v2/events/{id},
GET /api/v2/runs/{runId}, POST /api/v1/runs/{runId}/cancel, GET /api/v2/runs/{runId}/statuses,
GET /api/v1/jobs/{slug}/runs, POST /api/v1/jobs/{slug}/invoke, POST /api/v1/jobs/{slug}/cancel-runs,
POST /api/v1/event-dispatchers/ephemeral, GET, PUT and DELETE /api/v1/store/{key},
POST /api/v1/{endpointSlug}/schedules/{id}/registrations; HEAD /api/v1/store/{key}, whose answer has no body, by
its status (the SDK reads only `ok`); DELETE .../registrations/{key}, which the SDK parses as `{ok: boolean}`
(no export of core), by that shape. POST /api/v1/endpoints is read by the SDK without a schema.
To cover a new route: add it to ROUTES and one call (or more) to `calls` below."""

import asyncio
import json
from typing import Any

import httpx

from tests.helpers import finished, start_test_run
from tests.node_endpoint import COMPAT_DIR, ENDPOINT_ID

# route → the export of @trigger.dev/core the SDK parses its answer with (`[]`: an array of it)
ROUTES = {
    "POST /api/v1/runs/{runId}/tasks": "ServerTaskSchema",
    "POST /api/v1/runs/{runId}/tasks (Trigger-Version 2023-09-29)": "RunTaskResponseWithCachedTasksBodySchema",
    "POST /api/v1/runs/{runId}/tasks/{id}/complete": "ServerTaskSchema",
    "POST /api/v1/runs/{runId}/tasks/{id}/fail": "ServerTaskSchema",
    "PUT /api/v1/runs/{runId}/statuses/{id}": "JobRunStatusRecordSchema",
    "POST /api/v1/events": "ApiEventLogSchema",
    "POST /api/v1/events/bulk": "ApiEventLogSchema[]",
    "POST /api/v1/events/{id}/cancel": "ApiEventLogSchema",
    "POST /api/v1/events/{id}/cancel-runs": "CancelRunsForEventSchema",
    "GET /api/v2/events/{id}": "GetEventSchema",
    "GET /api/v2/runs/{runId}": "GetRunSchema",
    "POST /api/v1/runs/{runId}/cancel": "GetRunSchema",
    "GET /api/v2/runs/{runId}/statuses": "GetRunStatusesSchema",
    "GET /api/v1/jobs/{slug}/runs": "GetRunsSchema",
    "POST /api/v1/jobs/{slug}/invoke": "InvokeJobResponseSchema",
    "POST /api/v1/jobs/{slug}/cancel-runs": "CancelRunsForJobSchema",
    "POST /api/v1/event-dispatchers/ephemeral": "EphemeralEventDispatcherResponseBodySchema",
    "GET /api/v1/store/{key}": "KeyValueStoreResponseBodySchema",
    "PUT /api/v1/store/{key}": "KeyValueStoreResponseBodySchema",
    "DELETE /api/v1/store/{key}": "KeyValueStoreResponseBodySchema",
    "POST /api/v1/{endpointSlug}/schedules/{id}/registrations": "RegisterScheduleResponseBodySchema",
}


async def zod_parse(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        "node",
        "zod_parse.js",
        cwd=COMPAT_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(json.dumps(answers).encode())
    assert process.returncode == 0, err.decode()
    results: list[dict[str, Any]] = json.loads(out)
    return results


class Answers:
    """Calls routes and keeps each answer with the schema of its route."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.kept: list[dict[str, Any]] = []

    async def call(self, route: str, path: str, **request: Any) -> Any:
        method = route.split()[0]
        response = await self.api.request(method, path, **request)
        assert response.status_code == 200, f"{route}: {response.status_code} {response.text}"
        body = response.json()
        self.kept.append({"label": f"{route} ({path})", "route": route, "schema": ROUTES[route], "body": body})
        return body


async def test_every_answer_of_a_route_the_sdk_calls_parses_with_the_sdk_schema(api: httpx.AsyncClient) -> None:
    answers = Answers(api)
    call = answers.call
    run_id = await start_test_run(api, "two-steps")
    done = await finished(api, run_id)
    assert done["status"] == "SUCCESS"
    other = await start_test_run(api, "return-value")
    await finished(api, other)

    tasks = f"/api/v1/runs/{run_id}/tasks"
    plain = await call("POST /api/v1/runs/{runId}/tasks", tasks, json={"idempotencyKey": "plain", "name": "n"})
    cached_version = {"Trigger-Version": "2023-09-29", "Idempotency-Key": "versioned"}
    versioned = await call(
        "POST /api/v1/runs/{runId}/tasks (Trigger-Version 2023-09-29)",
        tasks,
        json={"idempotencyKey": "versioned", "callback": {"enabled": True, "timeoutInSeconds": 600}},
        headers=cached_version,
    )
    await call(
        "POST /api/v1/runs/{runId}/tasks/{id}/complete",
        f"{tasks}/{plain['id']}/complete",
        json={"output": json.dumps({"o": 1})},
        headers={"Trigger-Version": "2023-11-01"},
    )
    failing = await call("POST /api/v1/runs/{runId}/tasks", tasks, json={"idempotencyKey": "failing"})
    await call(
        "POST /api/v1/runs/{runId}/tasks/{id}/fail", f"{tasks}/{failing['id']}/fail", json={"error": {"message": "m"}}
    )
    await call("PUT /api/v1/runs/{runId}/statuses/{id}", f"/api/v1/runs/{run_id}/statuses/s", json={"label": "L"})
    await call(
        "POST /api/v1/event-dispatchers/ephemeral",
        "/api/v1/event-dispatchers/ephemeral",
        json={"url": versioned["task"]["callbackUrl"], "name": "compat.never", "filter": {"a": ["b"]}},
    )

    await call("POST /api/v1/events", "/api/v1/events", json={"event": {"id": "ev-now", "name": "compat.return"}})
    later = {"events": [{"id": "ev-later", "name": "compat.return"}], "options": {"deliverAfter": 3600}}
    await call("POST /api/v1/events/bulk", "/api/v1/events/bulk", json=later)
    await call("POST /api/v1/events/{id}/cancel", "/api/v1/events/ev-later/cancel")
    await call("POST /api/v1/events/{id}/cancel-runs", "/api/v1/events/ev-now/cancel-runs")
    await call("GET /api/v2/events/{id}", "/api/v2/events/ev-now")

    await call("GET /api/v2/runs/{runId}", f"/api/v2/runs/{run_id}")
    await call("GET /api/v2/runs/{runId}", f"/api/v2/runs/{other}")
    await call("GET /api/v2/runs/{runId}/statuses", f"/api/v2/runs/{run_id}/statuses")
    await call("GET /api/v1/jobs/{slug}/runs", "/api/v1/jobs/return-value/runs", params={"take": 1})
    await call("GET /api/v1/jobs/{slug}/runs", "/api/v1/jobs/two-steps/runs")
    invoked = await call("POST /api/v1/jobs/{slug}/invoke", "/api/v1/jobs/kv-slow/invoke", json={"payload": {}})
    await call("POST /api/v1/runs/{runId}/cancel", f"/api/v1/runs/{invoked['id']}/cancel")
    await call("POST /api/v1/runs/{runId}/cancel", f"/api/v1/runs/{run_id}/cancel")  # ended already
    await call("POST /api/v1/jobs/{slug}/cancel-runs", "/api/v1/jobs/kv-slow/cancel-runs")

    store = "/api/v1/store/job%3Aj%3Ak"
    await call("GET /api/v1/store/{key}", store)  # no value yet
    await call("PUT /api/v1/store/{key}", store, content=b'{"v":1}', headers={"content-type": "text/plain"})
    await call("GET /api/v1/store/{key}", store)
    await call("DELETE /api/v1/store/{key}", store)
    await call("DELETE /api/v1/store/{key}", store)
    assert (await api.head(store)).status_code == 404
    await call("PUT /api/v1/store/{key}", store, content=b"")  # what the SDK sends to store `undefined`
    assert (await api.head(store)).status_code == 200

    registrations = f"/api/v1/{ENDPOINT_ID}/schedules/sched-dynamic-schedule/registrations"
    yearly = {"id": "answers", "type": "cron", "options": {"cron": "0 0 1 1 *"}, "metadata": {"m": 1}}
    await call("POST /api/v1/{endpointSlug}/schedules/{id}/registrations", registrations, json=yearly)
    unregistered = await api.delete(f"{registrations}/answers")
    assert (unregistered.status_code, unregistered.json()) == (200, {"ok": True})

    assert {answer["route"] for answer in answers.kept} == set(ROUTES)
    results = await zod_parse(answers.kept)
    failures = [f"{result['label']}: {result['issues']}" for result in results if not result["ok"]]
    assert not failures, "\n".join(failures)
    assert len(results) == len(answers.kept)
