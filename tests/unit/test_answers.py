"""The answers' wire shapes: camelCase keys, nullable fields sent as null, optional ones left out when absent."""

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import msgspec

from app.api import answers  # the module, not its TestJobResponse: pytest would collect that as a test class
from app.api.answers import EventLog, RunPage, ServerTask, StatusRecord
from domain.event_records import EventRecord
from domain.tasks import TaskSpec, new_task
from domain.times import iso

NOW = datetime(2026, 1, 1, 12, 30, 0, 123456, tzinfo=UTC)


def wire(answer: msgspec.Struct) -> Any:
    return msgspec.json.decode(msgspec.json.encode(answer))


def test_testjob_answers_as_before() -> None:
    answer = msgspec.json.encode(answers.TestJobResponse("r", "test:e:1", "QUEUED"))
    assert answer == b'{"runId":"r","eventId":"test:e:1","status":"QUEUED"}'


def test_a_server_task_sends_every_field_the_sdk_takes_as_nullable() -> None:
    task = new_task(uuid4(), TaskSpec(idempotency_key="k", name="step"), NOW, run_canceled=False)
    assert wire(ServerTask.of(task)) == {
        "id": task.id,
        "idempotencyKey": "k",
        "name": "step",
        "noop": False,
        "status": "RUNNING",
        "startedAt": "2026-01-01T12:30:00.123Z",
        "completedAt": None,
        "delayUntil": None,
        "output": None,
        "outputProperties": None,
        "error": None,
        "attempts": 1,
        "callbackUrl": None,
        "retry": None,
        "icon": None,
        "description": None,
        "params": None,
        "properties": None,
        "style": {"style": "normal"},
        "operation": None,
        "parentId": None,
        "displayKey": None,
    }


def test_a_status_leaves_out_the_state_and_data_it_never_had() -> None:
    fresh = {"key": "step", "label": "Step", "history": []}
    assert wire(StatusRecord.of(fresh)) == fresh
    updated = {
        "key": "step",
        "label": "Step",
        "history": [{"label": "Step"}, {"label": "Step", "state": "loading"}],
        "state": "success",
        "data": {"n": 1},
    }
    assert wire(StatusRecord.of(updated)) == updated


def test_a_run_page_names_its_next_cursor_only_when_there_are_more_runs() -> None:
    row = SimpleNamespace(
        id=uuid4(),
        job_slug="job",
        job_version="1.0.0",
        status="QUEUED",
        started_at=None,
        updated_at=NOW,
        completed_at=None,
        tags=["a"],
        priority=0,
        is_test=True,
    )
    last = wire(RunPage.of([row], None))
    assert last == {
        "runs": [
            {
                "id": str(row.id),
                "jobSlug": "job",
                "version": "1.0.0",
                "status": "QUEUED",
                "startedAt": None,
                "updatedAt": "2026-01-01T12:30:00.123Z",
                "completedAt": None,
                "tags": ["a"],
                "priority": 0,
                "isTest": True,
            }
        ]
    }
    assert wire(RunPage.of([row], str(row.id)))["nextCursor"] == str(row.id)


def test_an_event_log_sends_its_nullable_times_as_null() -> None:
    record = EventRecord(
        id=uuid4(),
        environment_id="env",
        event_id="e-1",
        name="order",
        payload={"n": 1},
        context=None,
        source="trigger.dev",
        sent_at=NOW,
        is_test=False,
    )
    assert wire(EventLog.of(record)) == {
        "id": "e-1",
        "name": "order",
        "payload": {"n": 1},
        "context": None,
        "timestamp": "2026-01-01T12:30:00.123Z",
        "deliverAt": None,
        "deliveredAt": iso(record.created_on),  # an event sent for now is delivered when recorded
        "cancelledAt": None,
    }
