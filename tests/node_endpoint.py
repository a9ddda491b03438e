"""Runs the real @trigger.dev/sdk v2 endpoint of tests/compat under Node."""

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.settings import Settings

COMPAT_DIR = Path(__file__).parent / "compat"
COMPAT_API_KEY = "tr_dev_compat0000000000000000"
ENDPOINT_ID = "compat-endpoint"
# The jobs tests/compat/server.js defines, with the event that triggers each.
COMPAT_JOBS = {
    "return-value": "compat.return",
    "throws": "compat.throws",
    "with-schema": "compat.schema",
    "two-steps": "compat.steps",
    "waits": "compat.wait",
    "flaky-task": "compat.flaky",
    "sends-event": "compat.send",
    "chained": "compat.chained",
    "disabled": "compat.disabled",
    "task-fails": "compat.task-fails",
    "filtered": "compat.order",
    "notified": "compat.notified",
    "sleeps": "compat.sleep",
    "limited": "compat.limited",
    "grouped-a": "compat.grouped-a",
    "grouped-b": "compat.grouped-b",
    "kv-store": "compat.kv",
    "waits-for-event": "compat.wait-event",
    "kv-slow": "compat.kv-slow",
    "sched-cron": "trigger.scheduled",
    "sched-interval": "trigger.scheduled",
    "sched-dynamic": "trigger.scheduled",
    "sched-register": "sched.register",
    "sched-toggle": "sched.toggle",
    "sched-deletable": "sched.deletable",
    "sched-pooled": "sched.pooled",
    "exec-fetch": "exec.fetch",
    "exec-auto-yield": "exec.auto-yield",
    "exec-many-tasks": "exec.many-tasks",
    "hello-world": "dash.hello",
    "dash-markup": "dash.markup",
}


@dataclass(frozen=True)
class NodeEndpoint:
    url: str
    api_key: str
    endpoint_id: str


@contextlib.contextmanager
def node_endpoint(api_url: str = "http://127.0.0.1:9", api_key: str = COMPAT_API_KEY) -> Iterator[NodeEndpoint]:
    if not (COMPAT_DIR / "node_modules" / "@trigger.dev" / "sdk").is_dir():
        raise RuntimeError("tests/compat has no node_modules: run `npm ci --prefix tests/compat` (make test does)")
    env = {
        **os.environ,
        "PORT": "0",
        "TRIGGER_API_KEY": api_key,
        "TRIGGER_API_URL": api_url,
        "ENDPOINT_ID": ENDPOINT_ID,
    }
    process = subprocess.Popen(
        ["node", "server.js"], cwd=COMPAT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        port = _wait_ready(process)
        yield NodeEndpoint(f"http://127.0.0.1:{port}/api/trigger", api_key, ENDPOINT_ID)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: "subprocess.Popen[str]", timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("READY "):
            return int(line.split()[1])
        if not line and process.poll() is not None:
            raise RuntimeError(f"the Node endpoint exited with {process.returncode}")
    raise RuntimeError("the Node endpoint did not start in time")


async def sdk(settings: Settings, *calls: list[Any]) -> list[Any]:
    """The answers of TriggerClient methods (tests/compat/client.js), as the SDK parsed them."""
    process = await asyncio.create_subprocess_exec(
        "node",
        "client.js",
        json.dumps(calls),
        cwd=COMPAT_DIR,
        env={**os.environ, "TRIGGER_API_KEY": COMPAT_API_KEY, "TRIGGER_API_URL": f"http://127.0.0.1:{settings.port}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    answers: list[Any] = json.loads(out)
    return answers


async def store_client(settings: Settings, *calls: list[Any]) -> list[Any]:
    """client.store.env of the real SDK, from outside any run: calls are [get|set|has|delete, ...arguments]."""
    return await sdk(settings, *([f"store.env.{method}", *args] for method, *args in calls))
