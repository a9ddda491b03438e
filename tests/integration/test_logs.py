"""JSON logs of real role processes: every line an object; a run's lines name the run and its trace; the
access log names the request and its route template; no API key, Authorization value or payload is written;
a 5xx names its request id; a dependency that goes away is logged when it goes and when it is back."""

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from app.adapters.db import migrate
from app.container import Container
from app.settings import Settings
from app.tools.embedded import EmbeddedPostgres, free_port
from domain.environments import EnvironmentType
from tests.faults.harness import Role, cluster
from tests.helpers import finished
from tests.node_endpoint import COMPAT_API_KEY, NodeEndpoint

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
PAYLOAD_MARKER = "payload-marker-7c1e"
WRONG_KEY = "tr_dev_wrongkey_never_in_the_logs_51"


def _lines(role: Role) -> list[dict[str, Any]]:
    """Every line a role wrote (its ready announcement too), each a JSON object."""
    lines = []
    for text in role.log.read_text().splitlines():
        line = json.loads(text)  # fails the test on anything else
        assert isinstance(line, dict) and {"time", "level", "role", "logger", "message"} <= set(line), line
        assert line["role"] == role.name
        lines.append(line)
    return lines


async def _logged(role: Role, where: Any, timeout: float = 30) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while not (found := [line for line in _lines(role) if where(line)]):
            await asyncio.sleep(0.1)
    return found


async def test_json_lines_of_real_roles(settings: Settings, tmp_path: Path, compat_endpoint: NodeEndpoint) -> None:
    postgres = EmbeddedPostgres(tmp_path / "pg", port=free_port())
    postgres.start()
    try:
        await migrate(postgres.url)
        own = replace(settings, database_url=postgres.url)
        setup = Container.create(own)
        await setup.service.environments.create("test", EnvironmentType.DEVELOPMENT, COMPAT_API_KEY)
        await setup.close()
        (tmp_path / "logs").mkdir()
        env = {"JOBS_LOG_FORMAT": "json", "JOBS_LOG_LEVEL": "INFO", "JOBS_OPS_PORT": "0"}
        with cluster(own, tmp_path / "logs", **env) as roles:
            api, relay, worker = roles.start("api"), roles.start("relay"), roles.start("worker")
            for role in (api, relay, worker):  # its start is announced in the same format
                assert any(line["message"].startswith(f"{role.name} running") for line in _lines(role))
            headers = {"Authorization": f"Bearer {COMPAT_API_KEY}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{own.port}", headers=headers, timeout=15
            ) as client:
                endpoint = {"id": compat_endpoint.endpoint_id, "url": compat_endpoint.url}
                assert (await client.post("/api/v1/endpoints", json=endpoint)).status_code == 200
                refused = await client.get("/api/v1/runs", headers={"Authorization": f"Bearer {WRONG_KEY}"})
                assert refused.status_code == 401

                # The run's notification goes to a port nobody listens on: the worker logs that, in the run's trace.
                invoke = {
                    "payload": {"marker": PAYLOAD_MARKER},
                    "options": {"callbackUrl": f"http://127.0.0.1:{free_port()}/cb"},
                }
                invoked = await client.post(
                    "/api/v1/jobs/return-value/invoke",
                    json=invoke,
                    headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-invoke-1"},
                )
                assert invoked.status_code == 200, invoked.text
                assert invoked.headers["x-request-id"] == "req-invoke-1"
                run_id = invoked.json()["id"]
                assert (await finished(client, run_id))["status"] == "SUCCESS"
                failed_notice = await _logged(worker, lambda line: "notification" in line["message"])

                insane = await client.get(f"/api/v2/runs/{run_id}", headers={"X-Request-ID": "spaces are not sane"})
                assert len(insane.headers["x-request-id"]) == 32  # replaced by a new one

                postgres.stop()
                down_at = time.monotonic()
                unavailable = await client.post("/api/v1/jobs/return-value/test", json={"payload": {}})
                assert unavailable.status_code == 503, unavailable.text
                assert unavailable.json()["requestId"] == unavailable.headers["x-request-id"]
                await _logged(relay, lambda line: "publishing failed" in line["message"])
                await asyncio.sleep(max(0.0, 3 - (time.monotonic() - down_at)))  # several retries of the relay
                postgres.start()
                recovered = await _logged(relay, lambda line: "recovered" in line["message"])
    finally:
        postgres.stop()

    (notice,) = failed_notice[:1]
    assert (notice["run_id"], notice["trace_id"]) == (run_id, TRACE_ID)
    api_lines = _lines(api)
    (access,) = [
        line for line in api_lines if line.get("request_id") == "req-invoke-1" and line["logger"] == "jobs.access"
    ]
    assert access["route"] == "/api/v1/jobs/{job_slug}/invoke"
    assert (access["method"], access["status"], access["trace_id"]) == ("POST", 200, TRACE_ID)
    assert isinstance(access["duration_ms"], float)
    (down,) = [line for line in api_lines if "database unavailable" in line["message"]]
    assert down["request_id"] == unavailable.headers["x-request-id"] and down["level"] == "WARNING"
    relay_lines = [line["message"] for line in _lines(relay)]
    assert sum("publishing failed" in message for message in relay_lines) == 1, relay_lines
    assert len(recovered) == 1 and "after" in recovered[0]["message"]
    everything = "".join(role.log.read_text() for role in (api, relay, worker))
    for secret in (COMPAT_API_KEY, WRONG_KEY, PAYLOAD_MARKER, "Bearer"):
        assert secret not in everything
