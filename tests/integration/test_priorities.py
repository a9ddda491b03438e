"""A high-priority run submitted behind a backlog of low-priority ones starts before most of them."""

from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from app.settings import Settings
from tests.helpers import finished, start_test_run

BACKLOG = 120


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, worker_concurrency=4)  # a small worker, so a backlog builds up


async def test_a_high_priority_run_overtakes_a_backlog(api: httpx.AsyncClient) -> None:
    events = [{"name": "compat.sleep", "payload": {"ms": 50}} for _ in range(BACKLOG)]
    for start in range(0, BACKLOG, 60):
        response = await api.post("/api/v1/events/bulk", json={"events": events[start : start + 60]})
        assert response.status_code == 200, response.text
    submitted = datetime.now(UTC)
    urgent = await start_test_run(api, "sleeps", {"ms": 50}, priority=5)
    await finished(api, urgent)
    runs: list[dict[str, str]] = []
    cursor = None
    while True:
        page = (
            await api.get("/api/v1/jobs/sleeps/runs", params={"take": 50, **({"cursor": cursor} if cursor else {})})
        ).json()
        runs.extend(page["runs"])
        if not (cursor := page.get("nextCursor")):
            break
    assert len(runs) == BACKLOG + 1
    for run in runs:
        if run["status"] != "SUCCESS":
            await finished(api, run["id"])
    runs = [(await api.get(f"/api/v2/runs/{run['id']}")).json() | {"priority": run["priority"]} for run in runs]
    started = {run["id"]: datetime.fromisoformat(run["startedAt"]) for run in runs}
    waiting = [run_id for run_id, at in started.items() if at > submitted and run_id != urgent]
    overtaken = [run_id for run_id in waiting if started[run_id] > started[urgent]]
    print(
        f"\npriority: {len(waiting)} of {BACKLOG} low-priority runs were still waiting when the high-priority "
        f"run was submitted; it started before {len(overtaken)} of them"
    )
    assert len(waiting) >= 20, "no backlog to overtake"
    assert len(overtaken) >= 0.8 * len(waiting)
