"""The service's answers as the real @trigger.dev/sdk v2 client reads them: each parses with the SDK's own zod
schema (a null where the SDK wants a value or nothing fails it)."""

from typing import Any

import httpx

from app.settings import Settings
from tests.helpers import finished, start_test_run, wait_for
from tests.node_endpoint import sdk


async def test_the_sdk_client_reads_runs_statuses_and_pages_of_runs(api: httpx.AsyncClient, settings: Settings) -> None:
    run_id = await start_test_run(api, "two-steps")
    assert (await finished(api, run_id))["status"] == "SUCCESS"
    older, newer = [await start_test_run(api, "return-value", {"i": i}) for i in range(2)]
    for other in (older, newer):
        await finished(api, other)

    run, statuses, record, first, last = await sdk(
        settings,
        ["getRun", run_id],
        ["getRunStatuses", run_id],
        ["updateStatus", run_id, "note", {"label": "A label alone"}],
        ["getRuns", "return-value", {"take": 1}],
        ["getRuns", "return-value", {"take": 1, "cursor": newer}],
    )
    assert run["id"] == run_id and run["status"] == "SUCCESS" and "nextCursor" not in run
    assert {task["name"] for task in run["tasks"]} >= {"log", "wait"}
    assert [status["key"] for status in run["statuses"]] == ["progress"]
    assert statuses["run"]["status"] == "SUCCESS" and statuses["statuses"] == run["statuses"]
    assert record == {"key": "note", "label": "A label alone", "history": []}
    assert [r["id"] for r in first["runs"]] == [newer] and first["nextCursor"] == newer
    assert [r["id"] for r in last["runs"]] == [older] and "nextCursor" not in last


async def test_the_sdk_client_sends_reads_and_cancels_events_and_invokes_jobs(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    sent, later, canceled, invoked, nothing_to_cancel = await sdk(
        settings,
        ["sendEvent", {"id": "sdk-now", "name": "compat.return", "payload": {"n": 1}}],
        ["sendEvent", {"id": "sdk-later", "name": "compat.return", "payload": {}}, {"deliverAfter": 3600}],
        ["cancelEvent", "sdk-later"],
        ["invokeJob", "return-value", {"n": 2}],
        ["cancelRunsForJob", "limited"],
    )
    assert sent["id"] == "sdk-now" and sent["deliveredAt"] and sent["cancelledAt"] is None
    assert later["deliverAt"] and later["deliveredAt"] is None
    assert canceled["id"] == "sdk-later" and canceled["cancelledAt"]
    assert (await finished(api, invoked["id"]))["status"] == "SUCCESS"
    assert nothing_to_cancel == {"cancelledRunIds": [], "failedToCancelRunIds": []}

    async def started() -> Any:
        event = (await sdk(settings, ["getEvent", "sdk-now"]))[0]
        return event if event["runs"] and event["runs"][0]["completedAt"] else None

    event = await wait_for(started, interval=0.2)
    assert event["name"] == "compat.return" and event["runs"][0]["status"] == "SUCCESS"
