"""What the service does when the endpoint does not answer properly (a real HTTP server that misbehaves
on purpose, as a broken deployment would)."""

import json
from typing import Any

import httpx
import pytest

from app.container import Container
from app.service.environments import EnvironmentInfo
from domain.environments import EnvironmentType
from tests.helpers import wait_for
from tests.http_peer import HttpPeer

JOB = {
    "id": "job",
    "name": "Job",
    "version": "1.0.0",
    "event": {"name": "e"},
    "trigger": {"type": "static", "rule": {"event": "e", "source": "trigger.dev"}},
}
SUCCESS = (200, json.dumps({"status": "SUCCESS", "output": {"fine": True}}))
DROP = (0, "")  # close the connection without answering


class ScriptedEndpoint(HttpPeer):
    """Answers INDEX_ENDPOINT with one job, and each EXECUTE_JOB with the next scripted answer (the last one
    again once the script is used up); a status of 0 drops the connection."""

    def __init__(self, answers: list[tuple[int, str]]) -> None:
        super().__init__(self._answer)
        self.answers = list(answers)
        self.executions = 0

    @property
    def endpoint_url(self) -> str:
        return self.url("/api/trigger")

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, str] | None:
        if headers.get("x-trigger-action") == "INDEX_ENDPOINT":
            return 200, json.dumps({"jobs": [JOB]})
        self.executions += 1
        status, content = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return None if status == 0 else (status, content)


@pytest.fixture
async def production(container: Container) -> EnvironmentInfo:
    environment_id, key = await container.service.environments.create("prod", EnvironmentType.PRODUCTION)
    return EnvironmentInfo(environment_id, "prod", EnvironmentType.PRODUCTION, key)


async def run_once(api: httpx.AsyncClient, env: EnvironmentInfo, endpoint: ScriptedEndpoint) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {env.api_key}"}
    registered = await api.post(
        "/api/v1/endpoints", json={"id": "scripted", "url": endpoint.endpoint_url}, headers=headers
    )
    assert registered.status_code == 200, registered.text
    run_id = (await api.post("/api/v1/jobs/job/test", json={}, headers=headers)).json()["runId"]

    async def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = (await api.get(f"/api/v2/runs/{run_id}", headers=headers)).json()
        return run if run["status"] in ("SUCCESS", "FAILURE") else None

    run: dict[str, Any] = await wait_for(finished, timeout=60)
    return run


@pytest.fixture
def events_of(container: Container) -> Any:
    async def load(run_id: str) -> list[str]:
        from uuid import UUID

        return [type(e).__name__ for e in await container.store.load_events(UUID(run_id))]

    return load


@pytest.mark.parametrize(
    ("answers", "retries"),
    [
        ([(503, "down"), (500, "oops"), SUCCESS], 2),
        ([DROP, SUCCESS], 1),
    ],
)
async def test_no_answer_or_a_5xx_is_retried_with_backoff(
    stack: httpx.AsyncClient,
    production: EnvironmentInfo,
    events_of: Any,
    answers: list[tuple[int, str]],
    retries: int,
) -> None:
    async with ScriptedEndpoint(answers) as endpoint:
        run = await run_once(stack, production, endpoint)
    assert run["status"] == "SUCCESS" and run["output"] == {"fine": True}
    history = await events_of(run["id"])
    assert history.count("RunRetryScheduled") == retries
    assert history.count("RunStarted") == retries + 1


async def test_a_development_environment_fails_at_the_first_failure(
    stack: httpx.AsyncClient, container: Container, events_of: Any
) -> None:
    environment_id, key = await container.service.environments.create("dev", EnvironmentType.DEVELOPMENT)
    env = EnvironmentInfo(environment_id, "dev", EnvironmentType.DEVELOPMENT, key)
    async with ScriptedEndpoint([(503, "down"), SUCCESS]) as endpoint:
        run = await run_once(stack, env, endpoint)
    assert run["status"] == "FAILURE"
    assert run["output"]["message"] == "Endpoint responded with 503 status code"
    assert endpoint.executions == 1


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((404, '{"message": "Job not found"}'), "Endpoint responded with 404 status code"),
        ((200, "this is not json"), "the endpoint's answer is not an execution response"),
        ((200, '{"status": "SOMETHING"}'), "unknown execution status 'SOMETHING'"),
    ],
)
async def test_a_4xx_or_an_answer_outside_the_protocol_fails_the_run(
    stack: httpx.AsyncClient, production: EnvironmentInfo, answer: tuple[int, str], message: str
) -> None:
    async with ScriptedEndpoint([answer, SUCCESS]) as endpoint:
        run = await run_once(stack, production, endpoint)
    assert run["status"] == "FAILURE"
    assert run["output"]["message"] == message
    assert endpoint.executions == 1


@pytest.mark.parametrize("status", [408, 504])
async def test_408_and_504_continue_as_a_new_chunk(
    stack: httpx.AsyncClient, production: EnvironmentInfo, events_of: Any, status: int
) -> None:
    async with ScriptedEndpoint([(status, ""), SUCCESS]) as endpoint:
        run = await run_once(stack, production, endpoint)
    assert run["status"] == "SUCCESS"
    history = await events_of(run["id"])
    assert history.count("RunYielded") == 1 and "RunRetryScheduled" not in history
