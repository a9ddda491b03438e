"""The benchmark command works end to end (with small numbers: figures come from `make bench`).

The benches of this module run side by side (each its own stack, database and topics): a bench spends much of
its time waiting (for PostgreSQL to publish its counters, for steady rates), so the suite waits once."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPLICA_RUNS = 400

EXPECTED = {
    "testjob_submissions_per_s",
    "submit_latency_p99",
    "testjob_submissions_per_s_while_executing",
    "end_to_end_runs_per_s",
    "stage_commit_to_published_p99",
    "stage_published_to_started_p99",
    "stage_started_to_completed_p99",
    "stage_completed_to_visible_p99",
    "steady_rate_achieved_at_40_per_s",
    "submit_to_started_p99_at_40_per_s",
    "submit_to_started_p99_9_at_40_per_s",
    "submit_to_started_max_at_40_per_s",
    "steady_stage_commit_to_published_p99_at_40_per_s",
    "steady_stage_published_to_started_p99_at_40_per_s",
    "submit_to_started_p99_at_20_per_s",  # each rate of --rate has its own phase
    "steady_stage_published_to_started_p99_at_20_per_s",
    "relay_messages_per_s",
    "rebuild_events_per_s",
    "rebuild_peak_rss_mib",
    "rebuild_cpu_us_per_event",
    "submitted_during_rebuild",
    "submit_latency_during_rebuild_p99",
    "peak_rss_api",
    "peak_rss_relay",
    "peak_rss_worker",
    "peer_procrastinate_end_to_end_per_s",
    "cpu_ms_per_run",
    "cpu_ms_per_run_api",
    "cpu_ms_per_run_worker",
    "spans_exported",  # --export-traces: every role's spans reached the bench's OTLP receiver
    "pg_commits_per_run",
    "pg_write_xacts_per_run",
    "pg_wal_bytes_per_run",
    "pg_rows_inserted_per_run",
    "kafka_messages_per_run",
    "kafka_bytes_per_run",
    "peer_celery_redis_tasks_per_s",
    "end_to_end_vs_celery",
    "end_to_end_vs_procrastinate",
    "get_run_p50",
    "get_run_p99",
}
HISTORY = {  # --history: the same figures again over a loaded history, and each ratio to the first
    "history_events_loaded_per_s",
    *(f"{name}_with_history" for name in ("testjob_submissions_per_s", "end_to_end_runs_per_s")),
    *(f"get_run_p{p}_with_history" for p in (50, 99)),
    *(f"{name}_history_ratio" for name in ("testjob_submissions_per_s", "end_to_end_runs_per_s")),
    *(f"get_run_p{p}_history_ratio" for p in (50, 99)),
}
EXECUTED_ONCE = ("runs_executed_twice", "runs_not_executed", "attempts_started_twice", "runs_not_completed_once")
DASHBOARD = {
    "dashboard_baseline_end_to_end_runs_per_s",
    "end_to_end_runs_per_s_with_dashboard_pages",
    "dashboard_baseline_stack_cpu_ms_per_run",
    "stack_cpu_ms_per_run_with_dashboard_pages",
    *(f"dashboard_page_{page}_p{p}" for page in ("jobs", "runs", "run") for p in (50, 99)),
}


class Bench:
    """`jobs-service bench` with these arguments, started now in its own process; `figures()` waits for it."""

    def __init__(self, env: dict[str, str], *arguments: str) -> None:
        command = [sys.executable, "-m", "app.cli", "bench", *arguments]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def figures(self) -> dict[str, float]:
        try:
            stdout, stderr = self.process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        assert self.process.returncode == 0, stdout[-3000:] + stderr[-3000:]
        lines = (json.loads(line) for line in stdout.splitlines() if line.startswith("{"))
        return {figure["figure"]: figure["value"] for figure in lines}


@pytest.fixture(scope="module")
def benches(postgres_url: str, kafka_bootstrap: str) -> Iterator[dict[str, Bench]]:
    env = {**os.environ, "DATABASE_URL": postgres_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    started = {
        "replicas": Bench(
            env, "--replicas", "2", "--runs", str(REPLICA_RUNS), "--no-peer", "--concurrency", "16", "--throughput-only"
        ),
        "steady": Bench(env, "--steady-only", "--rate", "30", "--steady-seconds", "1"),
        "rebuild": Bench(env, "--rebuild-only", "--rebuild-events", "2000"),
        "everything": Bench(
            env,
            *("--runs", "60", "--concurrency", "8", "--rate", "40,20", "--steady-seconds", "1"),
            *("--relay-messages", "200", "--rebuild-events", "1000", "--export-traces"),
            *("--dashboard-pages", "3", "--history", "3000"),
        ),
    }
    yield started
    for bench in started.values():
        if bench.process.poll() is None:
            bench.process.kill()
            bench.process.communicate()


def test_bench_prints_one_json_line_per_figure(benches: dict[str, Bench]) -> None:
    figures = benches["everything"].figures()
    assert EXPECTED <= set(figures), EXPECTED - set(figures)
    assert all(value > 0 for name, value in figures.items() if name in EXPECTED)
    assert figures["rebuild_events"] >= 1000
    assert all(figures[name] == 0 for name in EXECUTED_ONCE), [figures[n] for n in EXECUTED_ONCE]
    assert DASHBOARD <= set(figures), DASHBOARD - set(figures)
    assert all(figures[name] > 0 for name in DASHBOARD)
    assert figures["dashboard_run_pages_open"] == 3  # every page's stream was still open at the end
    assert "dashboard_pages_throughput_change_pct" in figures
    assert figures["backlog_outbox_max"] >= 0  # where the throughput phase's runs waited
    assert figures["backlog_published_unhandled_max"] >= 0

    assert HISTORY <= set(figures), HISTORY - set(figures)
    assert all(figures[name] > 0 for name in HISTORY)


def test_bench_steady_only_runs_just_the_steady_phases(benches: dict[str, Bench]) -> None:
    names = set(benches["steady"].figures())
    assert {"submit_to_started_p99_at_30_per_s", "steady_stage_commit_to_published_p99_at_30_per_s"} <= names
    assert not names & {"testjob_submissions_per_s", "end_to_end_runs_per_s", "relay_messages_per_s"}
    assert not any(name.startswith("peer_") for name in names)


def test_bench_rebuild_only_runs_just_the_rebuild_phase(benches: dict[str, Bench]) -> None:
    figures = benches["rebuild"].figures()
    assert figures["rebuild_events"] >= 2000
    assert figures["rebuild_events_per_s"] > 0 and figures["submitted_during_rebuild"] > 0
    assert not set(figures) & {"testjob_submissions_per_s", "end_to_end_runs_per_s", "relay_messages_per_s"}
    assert not any(name.startswith("peer_") for name in figures)


def test_two_of_each_role_execute_every_run_once(benches: dict[str, Bench]) -> None:
    """Two of each role (`--replicas 2`: two API processes sharing the load, two relays, two workers in one
    consumer group): every run executed exactly once, as the no-op endpoint and the event store both count."""
    figures = benches["replicas"].figures()
    assert {name: figures[name] for name in EXECUTED_ONCE} == dict.fromkeys(EXECUTED_ONCE, 0)
    assert figures["end_to_end_runs_per_s"] > 0
    assert "relay_messages_per_s" not in figures  # --throughput-only
    assert figures["peak_rss_api.2"] > 0 and figures["peak_rss_relay.2"] > 0 and figures["peak_rss_worker.2"] > 0
    assert figures["kafka_messages_per_run"] >= 1


def test_bench_refuses_a_bad_rate_list() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "bench", "--rate", "500,fast"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "must be runs/s as positive whole numbers, comma-separated, got '500,fast'" in result.stderr
