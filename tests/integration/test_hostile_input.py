"""Hostile input: every request the OpenAPI document allows, bent out of shape, gets a clear 4xx and changes
nothing; nothing stored can make a read fail."""

import asyncio
import re
from collections import Counter
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import text

from app.adapters.codec import encode_event
from app.adapters.json_limits import UNRENDERABLE
from app.container import Container
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from domain.runs import JobRun
from tests import hostile
from tests.helpers import count, register
from tests.node_endpoint import NodeEndpoint

FUTURE = "2031-01-01T00:00:00Z"


def auth(env: EnvironmentInfo) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.api_key}"}


async def _run_with_a_task(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, endpoint: NodeEndpoint
) -> tuple[str, dict[str, Any]]:
    """A run of the registered SDK endpoint's `return-value` job, with one task created on it."""
    await register(container, environment, endpoint)
    headers = {**auth(environment), "content-type": "application/json"}
    run_id = (await client.post("/api/v1/jobs/return-value/test", json={}, headers=headers)).json()["runId"]
    task = (await client.post(f"/api/v1/runs/{run_id}/tasks", json={"idempotencyKey": "k"}, headers=headers)).json()
    return run_id, task


async def _changes(container: Container) -> tuple[int, int]:
    return await count(container.engine, "events"), await count(container.engine, "outbox")


async def test_every_operation_refuses_hostile_input_with_a_clear_4xx(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    headers = {**auth(environment), "content-type": "application/json"}
    run_id, task = await _run_with_a_task(client, container, environment, compat_endpoint)
    waiting = {"idempotencyKey": "waits", "callback": {"enabled": True}}
    callback_url = (await client.post(f"/api/v1/runs/{run_id}/tasks", json=waiting, headers=headers)).json()
    sent = await client.post("/api/v1/events", json={"event": {"id": "ev-1", "name": "x"}}, headers=headers)
    assert sent.status_code == 200, sent.text
    values = {
        "job_slug": "return-value",
        "run_id": run_id,
        "task_id": task["id"],
        "status_id": "progress",
        "event_id": "ev-1",
        "secret": "0" * 40,
        "key": "run:r:k",
        "endpoint_slug": compat_endpoint.endpoint_id,
        "schedule_id": "sched-dynamic-schedule",
        "registration_id": "r1",
        "name": "sched-pool",
    }
    examples: dict[str, Any] = {
        "/api/v1/endpoints": {"id": "other", "url": "http://127.0.0.1:9/api/trigger"},
        "/api/v1/jobs/{job_slug}/test": {"payload": {"n": 1}, "tags": ["a"], "priority": 1},
        "/api/v1/jobs/{job_slug}/invoke": {
            "payload": {"n": 1},
            "context": {"c": "d"},
            "options": {"callbackUrl": "http://127.0.0.1:9/cb", "tags": ["t"], "priority": 1},
        },
        "/api/v1/events": {"event": {"name": "x", "payload": {"p": "q"}}, "options": {"deliverAt": FUTURE}},
        "/api/v1/events/bulk": {"events": [{"name": "x", "payload": {}}], "options": {"deliverAt": FUTURE}},
        "/api/v1/runs/{run_id}/tasks": {
            "idempotencyKey": "k2",
            "name": "t",
            "delayUntil": FUTURE,
            "params": {"a": [1]},
            "callback": {"enabled": True, "timeoutInSeconds": 10},
        },
        "/api/v1/runs/{run_id}/tasks/{task_id}/complete": {"output": {"o": 1}, "properties": [{"label": "l"}]},
        "/api/v1/runs/{run_id}/tasks/{task_id}/fail": {"error": {"message": "m", "name": "E"}},
        "/api/v1/runs/{run_id}/statuses/{status_id}": {"label": "l", "state": "loading", "data": {"d": 1}},
        "/api/v1/runs/{run_id}/tasks/{task_id}/callback/{secret}": {"result": 1},
        "/api/v1/event-dispatchers/ephemeral": {
            "url": callback_url["callbackUrl"],
            "name": ["x", "y"],
            "source": "s",
            "filter": {"a": ["b"], "n": [{"$gt": 1}]},
            "contextFilter": {"c": [True]},
            "timeoutInSeconds": 60,
        },
        "/api/v1/{endpoint_slug}/schedules/{schedule_id}/registrations": {
            "id": "r1",
            "type": "cron",
            "options": {"cron": "0 0 * * *", "timezone": "Europe/Paris"},
            "metadata": {"m": 1},
        },
    }
    document = (await client.get("/schema/openapi.json")).json()
    outcomes: Counter[int] = Counter()
    failures = []
    for case in hostile.cases(document, values, examples):
        before = await _changes(container)
        response = await client.request(
            case.method,
            case.path,
            params=case.query,
            content=case.body,
            headers=headers if case.body else auth(environment),
        )
        outcomes[response.status_code] += 1
        problem = _problem(case, response)
        if problem is None and case.must_refuse and await _changes(container) != before:
            problem = "a refused request changed what is stored"
        if problem:
            failures.append(f"{case.method} {case.path[:80]} [{case.label}] -> {response.status_code}: {problem}")
    sent = sum(outcomes.values())
    print(f"\n{sent} hostile requests: {dict(sorted(outcomes.items()))}")
    assert sent > 1_000
    assert not failures, "\n".join(failures[:40])


def _problem(case: hostile.Case, response: httpx.Response) -> str | None:
    if response.status_code >= 500:
        return response.text[:200]
    if case.method == "HEAD":  # an answer to HEAD has no body to check: its status says it all
        return "must be refused with a 4xx" if case.must_refuse and not 400 <= response.status_code < 500 else None
    if response.headers.get("content-type", "").startswith("application/json") is False:
        return f"not JSON: {response.text[:100]}"
    if case.must_refuse and not 400 <= response.status_code < 500:
        return "must be refused with a 4xx"
    if 400 <= response.status_code < 500 and not response.json().get("message"):
        return "a 4xx without a message"
    return None


async def test_a_task_output_nested_a_thousand_levels_is_refused_and_the_run_still_reads(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    headers = {**auth(environment), "content-type": "application/json"}
    run_id, task = await _run_with_a_task(client, container, environment, compat_endpoint)
    deep = b'{"output": ' + b"[" * 1_000 + b"1" + b"]" * 1_000 + b"}"
    completed = await client.post(f"/api/v1/runs/{run_id}/tasks/{task['id']}/complete", content=deep, headers=headers)
    assert completed.status_code == 400
    assert "nested deeper than 32 levels" in completed.json()["message"]
    for path in (f"/api/v2/runs/{run_id}", f"/api/v1/runs/{run_id}/events"):
        assert (await client.get(path, headers=headers)).status_code == 200


async def test_nothing_stored_can_make_a_read_fail(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    """Data deeper than anything renders (written before the limits, or by hand) reads back with a marker."""
    await register(container, environment, compat_endpoint)
    headers = auth(environment)
    run_id = (await client.post("/api/v1/jobs/return-value/test", json={}, headers=headers)).json()["runId"]
    task = (await client.post(f"/api/v1/runs/{run_id}/tasks", json={"idempotencyKey": "k"}, headers=headers)).json()
    run = await container.store.get(UUID(run_id), JobRun)
    assert run is not None
    run.complete_task(task["id"], "PLACEHOLDER", None, run.modified_on)
    (event,) = run.collect_events()
    stored = encode_event(event)
    deep = b"[" * 5_000 + b'"bottom"' + b"]" * 5_000
    async with container.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO events (originator_id, originator_version, topic, state) VALUES (:i, :v, :t, :s)"),
            {
                "i": stored.originator_id,
                "v": stored.originator_version,
                "t": stored.topic,
                "s": stored.state.replace(b'"PLACEHOLDER"', deep),
            },
        )
        await conn.execute(
            text("UPDATE run_status SET output = CAST(:o AS jsonb) WHERE id = :id"),
            {"o": ("[" * 2_000 + "1" + "]" * 2_000), "id": stored.originator_id},
        )
    read = await client.get(f"/api/v2/runs/{run_id}", headers=headers)
    assert read.status_code == 200, read.text[:300]
    body = read.text
    assert UNRENDERABLE in body and "bottom" not in body
    history = await client.get(f"/api/v1/runs/{run_id}/events", headers=headers)
    assert history.status_code == 200 and UNRENDERABLE in history.text
    listed = await client.get("/api/v1/runs", headers=headers)
    assert listed.status_code == 200


async def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
    except ConnectionError:
        pass  # the server may answer and close before it read everything
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    body = await reader.readexactly(length)
    writer.close()
    return int(head.split(b" ", 2)[1]), body


async def test_request_heads_over_the_limits_get_431_or_414(
    stack: httpx.AsyncClient, settings: Settings, environment: EnvironmentInfo
) -> None:
    port = settings.port
    key = f"Authorization: Bearer {environment.api_key}\r\n".encode()
    big_header = b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(2_000))
    many_headers = b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"
    long_url = b"GET /api/v1/runs?tag=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    for request, status, reason in (
        (big_header, 431, b"exceed 32768 bytes"),
        (many_headers, 431, b"more than 100 header fields"),
        (long_url, 414, b"URL exceeds 8192 bytes"),
    ):
        answer, body = await _raw(port, request)
        assert answer == status
        assert reason in body
    fields = b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * 100) for i in range(60))
    ordinary = b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n" + key + fields + b"\r\n"
    assert (await _raw(port, ordinary))[0] == 200
    payload = b'{"payload": {"blob": [' + b'"zzzzzzzz",' * 60_000 + b'"z"]}}'
    large_body = (
        b"POST /api/v1/jobs/nope/test HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        + key
        + b"content-length: %d\r\n\r\n" % len(payload)
        + payload
    )
    assert (await _raw(port, large_body))[0] == 404  # a large body is not a large head
