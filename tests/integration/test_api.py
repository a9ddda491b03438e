import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from app.adapters import store
from app.adapters.store import OutboxMessage, UnitOfWork
from app.container import Container
from app.service import runs
from app.service.environments import EnvironmentInfo
from domain import event_records, ids
from domain.event_records import EventRecord
from domain.runs import JobRun
from tests.helpers import count, outbox_messages, register
from tests.node_endpoint import COMPAT_JOBS, NodeEndpoint


def auth(env: EnvironmentInfo) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.api_key}"}


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True, "database": True, "broker": True}


async def test_register_endpoint_indexes_its_jobs(
    client: httpx.AsyncClient, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    response = await client.post(
        "/api/v1/endpoints",
        json={"id": compat_endpoint.endpoint_id, "url": compat_endpoint.url},
        headers=auth(environment),
    )
    assert response.status_code == 200, response.text
    assert {j["id"] for j in response.json()["jobs"]} == set(COMPAT_JOBS)
    jobs = (await client.get("/api/v1/jobs", headers=auth(environment))).json()["jobs"]
    assert [(j["id"], j["version"], j["event"]) for j in jobs] == [
        (slug, "1.0.0", COMPAT_JOBS[slug]) for slug in sorted(COMPAT_JOBS)
    ]
    job = (await client.get("/api/v1/jobs/return-value", headers=auth(environment))).json()
    assert job["title"] == "Return value"
    assert [v["version"] for v in job["versions"]] == ["1.0.0"]
    assert job["versions"][0]["trigger"]["rule"]["event"] == "compat.return"
    versions = await client.get("/api/v1/jobs/throws/versions", headers=auth(environment))
    assert versions.status_code == 200


async def test_testjob_records_event_run_and_outbox_row_and_answers_queued(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    before = await count(container.engine, "events")
    response = await client.post(
        "/api/v1/jobs/return-value/test", json={"payload": {"n": 1}}, headers=auth(environment)
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "QUEUED"
    assert body["eventId"].startswith("test:compat.return:")
    assert await count(container.engine, "events") == before + 2
    (message,) = await outbox_messages(container.engine)
    assert (message.run_id, message.attempt, message.job_slug) == (body["runId"], 1, "return-value")
    run = (await client.get(f"/api/v2/runs/{body['runId']}", headers=auth(environment))).json()
    assert run["status"] == "QUEUED"
    assert run["startedAt"] is None and run["completedAt"] is None and run["output"] is None


async def test_testjob_without_a_body_uses_an_empty_payload(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    response = await client.post("/api/v1/jobs/return-value/test", headers=auth(environment))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "message"),
    [
        ("/api/v1/jobs/nope/test", b"{}", None, 404, "job 'nope' not found"),
        ("/api/v1/jobs/return-value/test", b"{not json", None, 400, ""),
        ("/api/v1/jobs/return-value/test", b'{"version": 3}', None, 400, ""),
        ("/api/v1/jobs/return-value/test", b'{"version": "9.9.9"}', None, 404, "version '9.9.9'"),
        ("/api/v1/jobs/return-value/test", b"{}", {"Authorization": "Bearer tr_dev_wrong"}, 401, "invalid API key"),
        ("/api/v1/jobs/return-value/test", b"{}", {"Authorization": ""}, 401, "missing API key"),
    ],
)
async def test_bad_requests_get_a_clear_4xx_and_change_nothing(
    client: httpx.AsyncClient,
    container: Container,
    environment: EnvironmentInfo,
    compat_endpoint: NodeEndpoint,
    path: str,
    content: bytes,
    headers: dict[str, str] | None,
    status: int,
    message: str,
) -> None:
    await register(container, environment, compat_endpoint)
    before = await count(container.engine, "events")
    response = await client.post(
        path, content=content, headers={"content-type": "application/json", **auth(environment), **(headers or {})}
    )
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert await count(container.engine, "events") == before
    assert await count(container.engine, "outbox") == 0


async def test_bad_endpoint_registrations(client: httpx.AsyncClient, environment: EnvironmentInfo) -> None:
    cases = [
        ({"id": "x"}, 400),
        ({"id": "has space", "url": "http://127.0.0.1:1/"}, 400),
        ({"id": "ok", "url": "ftp://example/"}, 400),
        ({"id": "ok", "url": "http://127.0.0.1:1/api/trigger"}, 422),
    ]
    for body, status in cases:
        response = await client.post("/api/v1/endpoints", json=body, headers=auth(environment))
        assert response.status_code == status, (body, response.text)
        assert response.json()["message"]
    assert (await client.get("/api/v1/jobs", headers=auth(environment))).json() == {"jobs": []}


async def test_runs_of_another_environment_are_not_found(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    from domain.environments import EnvironmentType

    await register(container, environment, compat_endpoint)
    created = await container.service.runs.test(environment, "return-value", {}, None)
    _, other_key = await container.service.environments.create("other", EnvironmentType.PRODUCTION)
    other = {"Authorization": f"Bearer {other_key}"}
    assert (await client.get(f"/api/v2/runs/{created.run_id}", headers=other)).status_code == 404
    assert (await client.get(f"/api/v2/runs/{created.run_id}", headers=auth(environment))).status_code == 200
    assert (await client.get("/api/v2/runs/not-a-uuid", headers=auth(environment))).status_code == 404
    assert (await client.get("/api/v1/jobs/return-value", headers=other)).status_code == 404


async def test_a_failure_after_the_events_leaves_no_event_and_no_outbox_row(
    container: Container,
    environment: EnvironmentInfo,
    compat_endpoint: NodeEndpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A TestJob is written as one statement (events, read model, outbox row): its outbox part failing in the
    database, after the events' part, leaves nothing of it."""
    await register(container, environment, compat_endpoint)
    before = await count(container.engine, "events")
    columns = store._outbox_columns

    def not_json_headers(messages: Any) -> dict[str, list[Any]]:
        params = columns(messages)
        params["o_headers"] = ["{not json" for _ in params["o_headers"]]
        return params

    monkeypatch.setattr(store, "_outbox_columns", not_json_headers)
    with pytest.raises(asyncpg.PostgresError, match="json"):
        await container.service.runs.test(environment, "return-value", {}, None)
    assert await count(container.engine, "events") == before
    assert await count(container.engine, "outbox") == 0
    assert await count(container.engine, "run_status") == 0


async def test_a_failure_after_the_events_of_a_transaction_leaves_no_event_and_no_outbox_row(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that changes a read-model row twice (a run created and started at once) goes in a transaction:
    a crash after its events and outbox row were written in it leaves nothing of it."""
    enqueue = UnitOfWork.enqueue

    async def enqueue_then_fail(self: UnitOfWork, *messages: Any) -> None:
        await enqueue(self, *messages)
        assert await count_in(self) == 1  # the row really is written inside the transaction
        raise RuntimeError("crash after the events and the outbox row")

    async def count_in(uow: UnitOfWork) -> int:
        from sqlalchemy import text

        return int((await uow.conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one())

    monkeypatch.setattr(UnitOfWork, "enqueue", enqueue_then_fail)
    run = JobRun(
        id=uuid4(),
        environment_id=str(uuid4()),
        endpoint_id=str(uuid4()),
        job_slug="job",
        job_version="1",
        event_record_id=str(uuid4()),
        is_test=True,
    )
    run.start(1, datetime.now(UTC), timedelta(seconds=60))
    message = OutboxMessage("executions", str(run.id), b"{}", {"type": "ExecuteJobRun"})
    with pytest.raises(RuntimeError, match="crash after"):
        await container.store.commit(run.collect_events(), [message])
    assert await count(container.engine, "events") == 0
    assert await count(container.engine, "outbox") == 0
    assert await count(container.engine, "run_status") == 0


async def test_concurrent_testjobs_of_one_job_get_distinct_event_ids_even_against_another_process(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    # Another API process took the next few milliseconds of this job's test events already.
    taken_from = int(time.time() * 1000) + 1
    taken = [event_records.test_event_id("compat.return", ms) for ms in range(taken_from, taken_from + 2000)]
    await container.store.save(
        *(runs.new_record(environment, e, "compat.return", {}, {}, "trigger.dev", is_test=True) for e in taken)
    )
    container.service.runs._last_test_ms[(environment.id, "compat.return")] = taken_from - 1

    # The first try's millisecond is taken: from then on this process tags its test ids of this job.
    first = await container.service.runs.test(environment, "return-value", {}, None)
    shape = re.fullmatch(r"test:compat\.return:(\d+):([0-9a-f]{12})", first.event_id)
    assert shape is not None and taken_from <= int(shape[1]) < taken_from + 2000, first.event_id

    created = await asyncio.gather(
        *(container.service.runs.test(environment, "return-value", {}, None) for _ in range(30))
    )

    event_ids = [c.event_id for c in created]
    assert len(set(event_ids)) == 30
    assert {e.rsplit(":", 1)[1] for e in event_ids} == {shape[2]}  # this process's tag, not a random suffix each
    assert not set(event_ids) & set(taken)
    assert all(e.startswith("test:compat.return:") for e in event_ids)
    records = [await container.store.get(ids.event_record_id(str(environment.id), e), EventRecord) for e in event_ids]
    assert all(r is not None and r.is_test for r in records)
