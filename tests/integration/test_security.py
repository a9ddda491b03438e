"""Keys, isolation between environments, and hostile input at the API."""

import asyncio
import hashlib
import re
from typing import Any

import httpx
from sqlalchemy import text

from app.container import Container
from app.http_app import create_app
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from domain.environments import EnvironmentType
from domain.runs import JobRun
from domain.status import RunStatus
from tests.helpers import count, finished, register, start_test_run, wait_for
from tests.http_peer import HttpPeer
from tests.node_endpoint import NodeEndpoint

OPEN_PATHS = {"/healthz", "/readyz"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_every_path_but_health_needs_a_key(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    checked = 0
    for path, operations in schema["paths"].items():
        if path in OPEN_PATHS or "/callback/" in path:
            continue
        concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
        for method in operations:
            for headers in ({}, bearer("tr_dev_not_a_key")):
                response = await client.request(method.upper(), concrete, headers=headers, json={})
                assert response.status_code == 401, (method, path, response.text)
                if method != "head":  # an answer to HEAD has no body
                    assert response.json()["message"]
            checked += 1
    assert checked >= 20


async def test_keys_are_stored_hashed_and_can_be_rotated_and_revoked(container: Container) -> None:
    _, key = await container.service.environments.create("ops", EnvironmentType.PRODUCTION)
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert await count(container.engine, "environments", "api_key_hash = :h", h=digest) == 1
    assert await count(container.engine, "events", "position(:k in convert_from(state, 'UTF8')) > 0", k=key) == 0

    async def status(api_key: str) -> int:
        fresh_cache = Container.create(container.settings)  # the API of another process: nothing cached yet
        transport = httpx.ASGITransport(app=create_app(fresh_cache))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as fresh:
                return (await fresh.get("/api/v1/jobs", headers=bearer(api_key))).status_code
        finally:
            await fresh_cache.close()

    assert await status(key) == 200
    new_key = await container.service.environments.rotate_key("ops")
    assert (await status(key), await status(new_key)) == (401, 200)
    await container.service.environments.revoke_key("ops")
    assert await status(new_key) == 401


async def test_another_environment_cannot_see_or_change_anything(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    run = await container.service.runs.test(environment, "return-value", {}, None)
    sent = await client.post(
        "/api/v1/events", json={"event": {"id": "secret", "name": "x"}}, headers=bearer(environment.api_key)
    )
    assert sent.status_code == 200
    _, prod_key = await container.service.environments.create("prod", EnvironmentType.PRODUCTION)
    prod = bearer(prod_key)
    for method, path in [
        ("GET", f"/api/v2/runs/{run.run_id}"),
        ("GET", f"/api/v2/runs/{run.run_id}/statuses"),
        ("GET", f"/api/v1/runs/{run.run_id}/events"),
        ("POST", f"/api/v1/runs/{run.run_id}/cancel"),
        ("POST", f"/api/v1/runs/{run.run_id}/rerun"),
        ("POST", f"/api/v1/runs/{run.run_id}/tasks"),
        ("GET", "/api/v1/jobs/return-value"),
        ("POST", "/api/v1/jobs/return-value/test"),
        ("POST", "/api/v1/jobs/return-value/invoke"),
        ("GET", "/api/v2/events/secret"),
        ("POST", "/api/v1/events/secret/cancel"),
        ("POST", "/api/v1/events/secret/cancel-runs"),
    ]:
        body: dict[str, Any] = {"idempotencyKey": "k"} if path.endswith("/tasks") else {}
        response = await client.request(method, path, headers=prod, json=body)
        assert response.status_code == 404, (method, path, response.text)
    assert (await client.get("/api/v1/runs", headers=prod)).json()["runs"] == []
    mine = await client.get(f"/api/v2/runs/{run.run_id}", headers=bearer(environment.api_key))
    assert mine.status_code == 200 and mine.json()["status"] == "QUEUED"


async def test_hostile_bodies_get_a_clear_4xx_and_change_nothing(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    before = await count(container.engine, "events")
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"d": deep}
    cases = [
        ("/api/v1/jobs/return-value/test", {"content": b'{"payload": "' + b"x" * (2 * 1024 * 1024) + b'"}'}, 413),
        ("/api/v1/jobs/return-value/test", {"json": {"payload": deep}}, 400),
        ("/api/v1/jobs/return-value/test", {"json": {"payload": "y" * 200_000}}, 400),
        ("/api/v1/jobs/return-value/test", {"content": b"[1, 2"}, 400),
        ("/api/v1/jobs/return-value/test", {"json": {"priority": 99}}, 400),
        ("/api/v1/events", {"json": {"event": {"name": ""}}}, 400),
        ("/api/v1/events", {"json": {"event": {"name": "x"}, "options": {"deliverAt": "soon"}}}, 400),
        ("/api/v1/events", {"json": {"event": {"name": "x"}, "options": {"deliverAfter": -1}}}, 400),
        ("/api/v1/events/bulk", {"json": {"events": []}}, 400),
        ("/api/v1/jobs/return-value/invoke", {"json": {"options": {"callbackUrl": "http://10.1.2.3/cb"}}}, 400),
        ("/api/v1/jobs/return-value/invoke", {"json": {"options": {"callbackUrl": "file:///etc/passwd"}}}, 400),
        ("/api/v1/endpoints", {"json": {"id": "inside", "url": "http://192.168.0.10/api/trigger"}}, 400),
        ("/api/v1/endpoints", {"json": {"id": "meta", "url": "http://169.254.169.254/latest"}}, 400),
        ("/api/v1/endpoints", {"json": {"id": "port", "url": "http://127.0.0.1:99999/x"}}, 400),
    ]
    headers = {**bearer(environment.api_key), "content-type": "application/json"}
    for path, request, status in cases:
        response = await client.post(path, headers=headers, **request)
        assert response.status_code == status, (path, response.text[:300])
        assert response.json()["message"], path
    assert await count(container.engine, "events") == before
    private = (
        await client.post(
            "/api/v1/endpoints", headers=headers, json={"id": "inside", "url": "http://192.168.0.10/api/trigger"}
        )
    ).json()
    assert "JOBS_ALLOWED_PRIVATE_NETWORKS" in private["message"]


DISGUISED_OR_MALFORMED_URLS = [
    "http://[::1/",  # urlsplit raises
    "http://" + "h" * 10_000 + ".com/",
    "http://" + "h" * 300 + "/",
    "http://" + "h" * 100 + ".example/",  # a DNS label longer than 63: the IDNA codec raises
    "http://1.1.1.1/" + "x" * 2_100,
    "http://1.1.1.1:70000/",
    "http://1.1.1.1:0/",
    "http://[::ffff:10.1.2.3]/",
    "http://[::10.1.2.3]/",
    "http://[::ffff:0:192.168.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/latest",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[fe80::1]/",
    "http://[ff02::1]/",
    "http://0.0.0.0/",
]


async def test_malformed_and_disguised_urls_get_a_400_naming_the_field(
    client: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    before = await count(container.engine, "events")
    places = [
        ("/api/v1/endpoints", "url", lambda url: {"id": "elsewhere", "url": url}),
        ("/api/v1/jobs/return-value/invoke", "options.callbackUrl", lambda url: {"options": {"callbackUrl": url}}),
    ]
    for path, field, body in places:
        for url in DISGUISED_OR_MALFORMED_URLS:
            response = await client.post(path, headers=bearer(environment.api_key), json=body(url))
            assert response.status_code == 400, (path, url[:80], response.text[:300])
            assert response.json()["message"].startswith(f"`{field}`"), (url[:80], response.json()["message"])
    assert await count(container.engine, "events") == before


async def test_a_failed_registration_does_not_echo_what_the_target_answered(
    client: httpx.AsyncClient, environment: EnvironmentInfo
) -> None:
    secret = "internal-secret-" + "s" * 40
    for status, content, expected in [
        (500, f'{{"detail": "{secret}"}}', "INDEX_ENDPOINT answered HTTP 500, not 200"),
        (404, f'"<html>{secret}</html>"', "INDEX_ENDPOINT answered HTTP 404, not 200"),
        (
            200,
            f'{{"jobs": [{{"id": "{secret}"}}]}}',
            "INDEX_ENDPOINT answered a `jobs` list whose job #1 has no string `version`",
        ),
    ]:
        async with HttpPeer(lambda headers, body, answer=(status, content): answer) as target:
            response = await client.post(
                "/api/v1/endpoints", headers=bearer(environment.api_key), json={"id": "t", "url": target.url("/x")}
            )
        assert response.status_code == 422, response.text
        assert response.json()["message"] == f"could not index endpoint 't': {expected}"
        assert secret not in response.text

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"NOT-HTTP {secret}\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
    try:
        response = await client.post(
            "/api/v1/endpoints", headers=bearer(environment.api_key), json={"id": "t", "url": url}
        )
    finally:
        server.close()
    assert response.status_code == 422, response.text
    assert (
        response.json()["message"]
        == f"could not index endpoint 't': could not reach {url}: its answer is not valid HTTP"
    )
    assert secret not in response.text


async def test_a_queued_run_of_a_revoked_environment_ends_unresolved_auth_and_continues_after_a_rotation(
    api: httpx.AsyncClient, container: Container, environment: EnvironmentInfo, settings: Settings
) -> None:
    await container.service.environments.revoke_key("test")
    queued = await container.service.runs.test(environment, "return-value", {"n": 1}, None)

    async def ended() -> JobRun | None:
        run = await container.store.get(queued.run_id, JobRun)
        return run if run is not None and run.is_terminal else None

    run = await wait_for(ended)
    assert run.status is RunStatus.UNRESOLVED_AUTH
    assert run.error == {
        "message": "the API key of environment 'test' was revoked; rotate a key in "
        "(`jobs-service env rotate-key test`) and continue the run",
        "name": "Error",
    }
    events = [type(e).__name__ for e in await container.store.load_events(queued.run_id)]
    assert events == ["RunCreated", "RunCompleted"], "the endpoint was not called"

    # The key the endpoint's deployment knows is rotated back in; the run continues and runs.
    await container.service.environments.rotate_key("test", environment.api_key)
    continued = await api.post(f"/api/v1/runs/{queued.run_id}/continue")
    assert continued.json() == {"id": str(queued.run_id), "status": "QUEUED"}
    done = await finished(api, str(queued.run_id))
    assert (done["status"], done["output"]) == ("SUCCESS", {"ok": True, "echo": {"n": 1}})


async def test_a_run_whose_endpoint_is_gone_fails_naming_the_endpoint(
    api: httpx.AsyncClient, container: Container
) -> None:
    # No command deletes an endpoint yet; its row gone from the read model stands for one that was.
    async with container.engine.begin() as conn:
        endpoint_id = (await conn.execute(text("DELETE FROM endpoints RETURNING id"))).scalar_one()
    run = await finished(api, await start_test_run(api, "return-value"))
    assert run["status"] == "FAILURE"
    assert run["output"] == {"message": f"endpoint {endpoint_id} is not registered", "name": "Error"}
