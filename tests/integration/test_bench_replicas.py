"""Two of each role (`bench --replicas 2`: two API processes sharing the load, two relays, two workers in one
consumer group): every run executed exactly once, as the no-op endpoint and the event store both count."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = 400
EXECUTED_ONCE = ("runs_executed_twice", "runs_not_executed", "attempts_started_twice", "runs_not_completed_once")


def test_two_of_each_role_execute_every_run_once(postgres_url: str, kafka_bootstrap: str) -> None:
    env = {**os.environ, "DATABASE_URL": postgres_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    command = [sys.executable, "-m", "app.cli", "bench", "--replicas", "2", "--runs", str(RUNS), "--no-peer"]
    small = ["--concurrency", "16", "--throughput-only"]
    result = subprocess.run(
        [*command, *small], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            figure = json.loads(line)
            figures[figure["figure"]] = figure["value"]
    assert {name: figures[name] for name in EXECUTED_ONCE} == dict.fromkeys(EXECUTED_ONCE, 0)
    assert figures["end_to_end_runs_per_s"] > 0
    assert "relay_messages_per_s" not in figures  # --throughput-only
    assert figures["peak_rss_api.2"] > 0 and figures["peak_rss_relay.2"] > 0 and figures["peak_rss_worker.2"] > 0
    assert figures["kafka_messages_per_run"] >= 1
