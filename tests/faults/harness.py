"""Real role processes for crash tests: start, SIGKILL, SIGTERM, and count what happened to the runs."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Role:
    name: str
    process: "subprocess.Popen[bytes]"
    log: Path

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> float:
        """SIGTERM; returns how long the role took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@dataclass
class Cluster:
    """The roles as separate processes against one database and one broker."""

    settings: Settings
    logs: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    roles: list[Role] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        s = self.settings
        env = {
            **os.environ,
            "DATABASE_URL": s.required_database_url,
            "KAFKA_BOOTSTRAP_SERVERS": s.required_kafka,
            "JOBS_PORT": str(s.port),
            "JOBS_EXECUTION_TOPIC": s.execution_topic,
            "JOBS_CONSUMER_GROUP": s.consumer_group,
            "JOBS_TOPIC_RING_SECONDS": str(s.topic_ring_seconds),
            "JOBS_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "JOBS_LEASE_SECONDS": "2",
            "JOBS_RESCUE_INTERVAL_SECONDS": "0.5",
            "JOBS_REDELIVER_AFTER_SECONDS": "3",
            "JOBS_RELAY_POLL_SECONDS": "0.5",
            "JOBS_SHUTDOWN_SECONDS": "10",
            "JOBS_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
            "JOBS_SECRET_KEY": s.required_secret_key,
            "JOBS_LOG_LEVEL": "WARNING",
            "JOBS_OPS_PORT": "0",
        }
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start(self, role: str, **overrides: str) -> Role:
        log = self.logs / f"{role}-{len(self.roles)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", role],
                cwd=ROOT,
                env=self.env(**overrides),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started = Role(role, process, log)
        self.roles.append(started)
        _wait_running(started)
        return started

    def stop(self) -> None:
        for role in self.roles:
            role.stop()


@contextmanager
def cluster(settings: Settings, logs: Path, **extra_env: str) -> Iterator[Cluster]:
    running = Cluster(settings, logs, dict(extra_env))
    try:
        yield running
    finally:
        running.stop()


def _wait_running(role: Role, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if role.process.poll() is not None:
            raise AssertionError(f"{role.name} exited:\n{role.log.read_text()[-3000:]}")
        if "running" in role.log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{role.name} did not start:\n{role.log.read_text()[-3000:]}")


@dataclass
class Tally:
    """What happened to the runs a fault test submitted."""

    accepted: list[str]
    completed: int
    duplicates: int
    statuses: dict[str, int]

    def row(self, fault: str, recovery_seconds: float) -> str:
        return (
            f"FAULT {fault}: accepted {len(self.accepted)}, completed {self.completed}, "
            f"duplicate completions {self.duplicates}, recovered in {recovery_seconds:.1f}s"
        )


async def tally(api: httpx.AsyncClient, run_ids: list[str]) -> Tally:
    completed = duplicates = 0
    statuses: dict[str, int] = {}
    for run_id in run_ids:
        events = (await api.get(f"/api/v1/runs/{run_id}/events")).json()["events"]
        completions = sum(1 for e in events if e["type"] == "RunCompleted")
        status = (await api.get(f"/api/v2/runs/{run_id}")).json()["status"]
        statuses[status] = statuses.get(status, 0) + 1
        completed += completions > 0
        duplicates += max(0, completions - 1)
    return Tally(run_ids, completed, duplicates, statuses)


def any_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
