"""The URL policy holds when connecting, not only when a URL is registered: a host name whose DNS answer
changes (rebinding) or an IP literal in a disguised form cannot reach a private address. Real HTTP servers on
loopback addresses stand for the endpoint and for the internal service an attacker aims at; the name → address
step is a hosts table the test edits, and the policy's check on its answers is the real one."""

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from uuid import UUID

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from app.adapters.endpoint_client import EndpointClient, EndpointError
from app.adapters.messages import ExecuteJobRun, NotifyRun
from app.adapters.url_policy import UrlPolicy, parse_networks
from app.container import Container
from app.http_app import create_app
from app.settings import Settings
from app.worker.executor import RunExecutor
from app.worker.notifier import Notifier
from domain.environments import EnvironmentType
from domain.runs import JobRun
from domain.status import RunStatus
from tests.helpers import outbox_messages
from tests.http_peer import HttpPeer

PUBLIC = "93.184.215.14"
JOB = {
    "id": "job",
    "name": "Job",
    "version": "1.0.0",
    "event": {"name": "e"},
    "trigger": {"type": "static", "rule": {"event": "e", "source": "trigger.dev"}},
}


class Hosts(AbstractResolver):
    """A hosts table: name → addresses, answered the way aiohttp's resolvers answer."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(f"{host} is not in the test's hosts table")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


class Recorder(HttpPeer):
    """An endpoint that indexes one job, succeeds every execution, and records each request's action."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(self._answer, host, port)
        self.requests: list[str] = []

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        action = headers.get("x-trigger-action", "POST")
        self.requests.append(action)
        if action == "INDEX_ENDPOINT":
            return 200, json.dumps({"jobs": [JOB]})
        return 200, json.dumps({"status": "SUCCESS", "output": {"ok": True}})


@pytest.fixture
async def endpoint_and_inside() -> AsyncIterator[tuple[Recorder, Recorder]]:
    """The user's endpoint on 127.0.0.1, and an internal service on 127.0.0.2 at the same port: a name that
    rebinds from the first address to the second would reach the service, were it not checked."""
    async with Recorder() as endpoint, Recorder("127.0.0.2", endpoint.port) as inside:
        yield endpoint, inside


async def test_a_name_that_rebinds_to_a_private_address_is_refused_when_connecting() -> None:
    hosts = Hosts()
    strict = UrlPolicy([], hosts)
    async with Recorder() as inside:
        url = f"http://service.test:{inside.port}/hook"
        hosts.names["service.test"] = [PUBLIC]  # what the URL check saw
        assert await strict.check(url, "url") == url
        client = EndpointClient(strict, 5)
        try:
            for answer in (["127.0.0.1"], [PUBLIC, "127.0.0.1"], ["::ffff:127.0.0.1"]):
                hosts.names["service.test"] = answer
                with pytest.raises(EndpointError) as refused:
                    await client.post(url, b"{}", {"content-type": "application/json"})
                assert str(refused.value).startswith(
                    f"refused to call {url}: service.test resolves to a private address ("
                ), refused.value
                assert "JOBS_ALLOWED_PRIVATE_NETWORKS" in str(refused.value)
                assert not refused.value.timed_out
        finally:
            await client.close()
        assert inside.requests == []

        # The same name and server with loopback allowed: the call goes through, so the refusal was the policy's.
        hosts.names["service.test"] = ["127.0.0.1"]
        allowing = EndpointClient(UrlPolicy(parse_networks("127.0.0.0/8"), hosts), 5)
        try:
            response = await allowing.post(url, b"{}", {"content-type": "application/json"})
        finally:
            await allowing.close()
        assert response.status_code == 200
        assert inside.requests == ["POST"]


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::ffff:127.0.0.1]", "[::127.0.0.1]", "[::ffff:0:127.0.0.1]", "[64:ff9b::7f00:1]", "[::1]"]
)
async def test_an_ip_literal_host_is_checked_by_the_client(host: str) -> None:
    client = EndpointClient(UrlPolicy([], Hosts()), 5)
    async with Recorder() as inside:
        url = f"http://{host}:{inside.port}/hook"
        try:
            with pytest.raises(EndpointError) as refused:
                await client.post(url, b"{}", {})
        finally:
            await client.close()
        assert str(refused.value).startswith(f"refused to call {url}: its host is a private address (")
        assert inside.requests == []


@pytest.fixture
async def guarded(container: Container, settings: Settings) -> AsyncIterator[tuple[Container, Hosts]]:
    """A container that allows only 127.0.0.1 and looks names up in a hosts table."""
    hosts = Hosts()
    guarded = Container.create(replace(settings, allowed_private_networks="127.0.0.1/32"), hosts)
    yield guarded, hosts
    await guarded.close()


async def test_a_run_whose_endpoint_rebinds_retries_with_the_refusal_and_its_callback_is_not_delivered(
    guarded: tuple[Container, Hosts], endpoint_and_inside: tuple[Recorder, Recorder], settings: Settings
) -> None:
    container, hosts = guarded
    endpoint, inside = endpoint_and_inside
    _, key = await container.service.environments.create("prod", EnvironmentType.PRODUCTION)
    hosts.names.update({"endpoint.test": ["127.0.0.1"], "callback.test": ["127.0.0.1"]})
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        api.headers["Authorization"] = f"Bearer {key}"
        registered = await api.post(
            "/api/v1/endpoints", json={"id": "ep", "url": f"http://endpoint.test:{endpoint.port}/api/trigger"}
        )
        assert registered.status_code == 200, registered.text
        invoked = await api.post(
            "/api/v1/jobs/job/invoke",
            json={"payload": {}, "options": {"callbackUrl": f"http://callback.test:{endpoint.port}/done"}},
        )
        assert invoked.status_code == 200, invoked.text
    run_id = UUID(invoked.json()["id"])
    assert endpoint.requests == ["INDEX_ENDPOINT"]

    # Both names now answer with the internal service's address. A fresh client, as a worker process has: its
    # connection pool and DNS cache know nothing of the earlier answers.
    hosts.names.update({"endpoint.test": ["127.0.0.2"], "callback.test": ["127.0.0.2"]})
    client = EndpointClient(container.url_policy, 5)
    executor = RunExecutor(container.service, client)
    notifier = Notifier(container.service, client)
    try:
        (first,) = [m for m in await outbox_messages(container.engine) if isinstance(m, ExecuteJobRun)]
        assert await executor.handle(first) == "continued"
        run = await container.store.get(run_id, JobRun)
        assert run is not None and run.status is RunStatus.WAITING_TO_EXECUTE and run.failures == 1
        retried = (await container.store.load_events(run_id))[-1]
        assert type(retried).__name__ == "RunRetryScheduled"
        assert retried.error["name"] == "EndpointUnreachable"
        assert retried.error["message"].startswith(
            f"refused to call http://endpoint.test:{endpoint.port}/api/trigger: "
            "endpoint.test resolves to a private address (127.0.0.2)"
        )

        # The retry reaches the endpoint once its name is back on an allowed address.
        hosts.names["endpoint.test"] = ["127.0.0.1"]
        (second,) = [
            m for m in await outbox_messages(container.engine) if isinstance(m, ExecuteJobRun) and m.attempt == 2
        ]
        assert await executor.handle(second) == "completed"
        run = await container.store.get(run_id, JobRun)
        assert run is not None and run.status is RunStatus.SUCCESS

        (notify,) = [m for m in await outbox_messages(container.engine) if isinstance(m, NotifyRun)]
        assert notify.target == "callback"
        assert await notifier.handle(notify) == "failed"
    finally:
        await client.close()
    attempted = (await container.store.load_events(run_id))[-1]
    assert type(attempted).__name__ == "NotificationAttempted"
    assert attempted.delivered is False
    assert "callback.test resolves to a private address (127.0.0.2)" in attempted.detail
    assert inside.requests == []
    assert endpoint.requests == ["INDEX_ENDPOINT", "EXECUTE_JOB"]
