"""The API's middleware (request ids, HTTP metrics by route template) and the timing of endpoint calls by
outcome, against the API in process and real HTTP targets."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from app.adapters.endpoint_client import EndpointClient, EndpointError
from app.adapters.url_policy import UrlPolicy, parse_networks
from app.observability import tracing
from app.tools.embedded import free_port
from tests.recording_proxy import serve_locally


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_requests_are_counted_by_route_template_and_known_method(client: httpx.AsyncClient) -> None:
    test_route = {"method": "POST", "route": "/api/v1/jobs/{job_slug}/test", "status": "401"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    before = (_value("jobs_http_requests_total", **test_route), _value("jobs_http_requests_total", **unmatched))
    timed_before = _value("jobs_http_request_duration_seconds_count", method="POST", route=test_route["route"])
    for slug in ("one", "two", "three"):
        assert (await client.post(f"/api/v1/jobs/{slug}/test", json={})).status_code == 401
    assert (await client.get("/no/such/path/4711")).status_code == 404
    brewed = await client.request("BREW", "/api/v1/runs")
    after = (_value("jobs_http_requests_total", **test_route), _value("jobs_http_requests_total", **unmatched))
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1)
    timed = _value("jobs_http_request_duration_seconds_count", method="POST", route=test_route["route"])
    assert timed - timed_before == 3
    assert _value("jobs_http_requests_total", method="other", route="unmatched", status=str(brewed.status_code)) >= 1
    exposed = {sample.labels.get("route") for metric in REGISTRY.collect() for sample in metric.samples}
    assert not {"/api/v1/jobs/one/test", "/no/such/path/4711"} & exposed  # never a raw path


async def test_the_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/api/v1/runs", headers={"X-Request-ID": "caller-42"})
    assert given.headers["x-request-id"] == "caller-42"
    made = [(await client.get("/api/v1/runs")).headers["x-request-id"] for _ in range(2)]
    assert made[0] != made[1] and all(len(one) == 32 for one in made)
    too_long = await client.get("/api/v1/runs", headers={"X-Request-ID": "x" * 129})
    assert too_long.headers["x-request-id"] != "x" * 129 and len(too_long.headers["x-request-id"]) == 32


class Target:
    """A real HTTP peer: answers `status` after `delay` seconds, and keeps the traceparent of each request."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.traceparents: list[str | None] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _answer(self, request: web.Request) -> web.Response:
        self.traceparents.append(request.headers.get("traceparent"))
        await asyncio.sleep(self.delay)
        return web.json_response({}, status=self.status)

    async def __aenter__(self) -> "Target":
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._answer)
        self.runner, self.port = await serve_locally(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def endpoint_client() -> AsyncIterator[EndpointClient]:
    client = EndpointClient(UrlPolicy(parse_networks("127.0.0.0/8")), timeout_seconds=0.5)
    yield client
    await client.close()


def _calls(outcome: str) -> float:
    return _value("jobs_endpoint_request_duration_seconds_count", outcome=outcome)


async def test_endpoint_calls_are_timed_by_outcome(endpoint_client: EndpointClient) -> None:
    before = {outcome: _calls(outcome) for outcome in ("ok", "error", "timeout", "refused", "unreachable")}
    async with Target(200) as ok, Target(500) as failing, Target(200, delay=2) as slow:
        with tracing.begin("00-11111111111111111111111111111111-2222222222222222-01", "test"):
            assert (
                await endpoint_client.call(f"http://127.0.0.1:{ok.port}/", "key", "EXECUTE_JOB", {})
            ).status_code == 200
        assert (await endpoint_client.post(f"http://127.0.0.1:{failing.port}/cb", b"{}", {})).status_code == 500
        with pytest.raises(EndpointError):
            await endpoint_client.post(f"http://127.0.0.1:{slow.port}/", b"{}", {})
    with pytest.raises(EndpointError):
        await endpoint_client.post(f"http://127.0.0.1:{free_port()}/", b"{}", {})
    strict = EndpointClient(UrlPolicy([]), timeout_seconds=0.5)
    with pytest.raises(EndpointError):
        await strict.post("http://127.0.0.1:9/", b"{}", {})
    await strict.close()
    moved = {outcome: _calls(outcome) - count for outcome, count in before.items()}
    assert moved == {"ok": 1, "error": 1, "timeout": 1, "refused": 1, "unreachable": 1}
    sent = tracing.parse_traceparent(ok.traceparents[0])
    assert sent is not None and sent.trace_id == "1" * 32 and sent.span_id != "2" * 16
    assert tracing.parse_traceparent(failing.traceparents[0]) is not None  # a new trace, outside any
