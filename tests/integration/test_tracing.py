"""One trace from the TestJob request to the endpoint call, across the api, relay and worker processes, with
spans exported over OTLP/HTTP to a receiver in the test; and the trace context carried on without exporting."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from app.observability.tracing import parse_traceparent
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from tests.faults.harness import Cluster, cluster
from tests.helpers import finished, wait_for
from tests.node_endpoint import NodeEndpoint
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.recording_proxy import Forwarded, RecordingProxy

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture(autouse=True)
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The roles get exactly the OTEL_* variables a test gives them."""
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def proxy(compat_endpoint: NodeEndpoint) -> AsyncIterator[RecordingProxy]:
    """The real SDK endpoint behind a proxy that records each request's headers."""
    origin = compat_endpoint.url.removesuffix("/api/trigger")
    async with RecordingProxy(origin) as recording:
        yield recording


@asynccontextmanager
async def _client(
    roles: Cluster, settings: Settings, environment: EnvironmentInfo, proxy: RecordingProxy
) -> AsyncIterator[httpx.AsyncClient]:
    """The roles started, and a client of the API with the endpoint (behind the proxy) registered."""
    for role in ("api", "relay", "worker"):
        roles.start(role)
    headers = {"Authorization": f"Bearer {environment.api_key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", headers=headers, timeout=15) as client:
        endpoint = {"id": "compat-endpoint", "url": proxy.url("/api/trigger")}
        registered = await client.post("/api/v1/endpoints", json=endpoint)
        assert registered.status_code == 200, registered.text
        yield client


async def _test_run(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> str:
    answer = await client.post("/api/v1/jobs/return-value/test", json={"payload": {}}, headers=headers or {})
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["runId"]
    assert (await finished(client, run_id))["status"] == "SUCCESS"
    return run_id


def _execution_of(proxy: RecordingProxy, run_id: str) -> Forwarded:
    (call,) = [r for r in proxy.requests if r.action == "EXECUTE_JOB" and json.loads(r.body)["run"]["id"] == run_id]
    return call


async def test_one_trace_covers_the_request_the_relay_the_worker_and_the_endpoint_call(
    settings: Settings, environment: EnvironmentInfo, proxy: RecordingProxy, tmp_path: Path
) -> None:
    async with OtlpReceiver() as receiver:
        otel = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "jobs-under-test",
            "JOBS_OPS_PORT": "0",
        }
        with cluster(settings, tmp_path, **otel) as roles:
            async with _client(roles, settings, environment, proxy) as client:
                run_id = await _test_run(client, {"traceparent": TRACEPARENT})

                async def covered() -> list[ReceivedSpan] | None:
                    spans = receiver.of_trace(TRACE_ID)
                    names = {(span.role, span.name) for span in spans}
                    wanted = {("api", "POST /api/v1/jobs/{job_slug}/test"), ("relay", "publish ExecuteJobRun")}
                    wanted |= {("worker", "handle ExecuteJobRun"), ("worker", "POST EXECUTE_JOB")}
                    return spans if wanted <= names else None

                try:
                    spans = await wait_for(covered, timeout=30)
                except TimeoutError:
                    seen = sorted({(s.role, s.name, s.trace_id == TRACE_ID) for s in receiver.spans})
                    raise AssertionError(f"spans of the trace missing; received {seen}") from None
        execution = _execution_of(proxy, run_id)

    assert {span.resource["service.name"] for span in spans} == {"jobs-under-test"}
    assert {span.role for span in spans} >= {"api", "relay", "worker"}
    by_id = {span.span_id: span for span in spans}
    (server,) = [s for s in spans if s.parent_span_id == CALLER_SPAN]  # the caller's span goes on in the API
    assert (server.kind, server.role) == (Span.SPAN_KIND_SERVER, "api")
    assert server.attributes["http.route"] == "/api/v1/jobs/{job_slug}/test"
    for span in spans:  # one tree: every span hangs from another of the trace, or from the caller's
        assert span.parent_span_id in by_id or span.span_id == server.span_id, span
    (publish,) = [s for s in spans if s.name == "publish ExecuteJobRun"]
    assert publish.kind == Span.SPAN_KIND_PRODUCER and by_id[publish.parent_span_id].role == "api"
    (handle,) = [s for s in spans if s.name == "handle ExecuteJobRun"]
    assert handle.kind == Span.SPAN_KIND_CONSUMER and handle.parent_span_id == publish.span_id
    assert (handle.attributes["jobs.run_id"], handle.attributes["jobs.attempt"]) == (run_id, 1)
    assert handle.attributes["jobs.job_slug"] == "return-value"
    (call,) = [s for s in spans if s.name == "POST EXECUTE_JOB"]
    assert call.kind == Span.SPAN_KIND_CLIENT and call.parent_span_id == handle.span_id
    assert any(s.name == "db commit" and s.role == "api" for s in spans)
    # The endpoint was called in this trace, as a child of the exported client span.
    seen = parse_traceparent(execution.headers["traceparent"])
    assert seen is not None and (seen.trace_id, seen.span_id) == (TRACE_ID, call.span_id)


async def test_without_an_exporter_the_endpoint_continues_the_requests_trace(
    settings: Settings, environment: EnvironmentInfo, proxy: RecordingProxy, tmp_path: Path
) -> None:
    with cluster(settings, tmp_path, JOBS_OPS_PORT="0") as roles:
        async with _client(roles, settings, environment, proxy) as client:
            continued = await _test_run(client, {"traceparent": TRACEPARENT})
            fresh = await _test_run(client)
            malformed = await _test_run(client, {"traceparent": "00-nothing-like-a-trace-context-01"})

    seen = {
        run: parse_traceparent(_execution_of(proxy, run).headers.get("traceparent"))
        for run in (continued, fresh, malformed)
    }
    assert all(context is not None for context in seen.values()), seen
    contexts = {run: context for run, context in seen.items() if context is not None}
    assert contexts[continued].trace_id == TRACE_ID and contexts[continued].span_id != CALLER_SPAN
    assert TRACE_ID not in (contexts[fresh].trace_id, contexts[malformed].trace_id)
    assert contexts[fresh].trace_id != contexts[malformed].trace_id  # each a new trace of its own
