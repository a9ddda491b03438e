"""Schedules (no I/O): what a schedule accepts, when it fires, and how a missed tick fires once."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.schedules import Schedule, ScheduleError, Spec, new_schedule, scheduled_payload, tick_event_id

T0 = datetime(2026, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)


def schedule(spec: Spec, now: datetime = T0) -> Schedule:
    return new_schedule(uuid4(), "env", "endpoint", "job:report", "report", False, spec, None, None, now)


@pytest.mark.parametrize(
    ("declared", "runs_as"),
    [
        ({"type": "interval", "options": {"seconds": 20}}, {"type": "interval", "options": {"seconds": 60}}),
        ({"type": "interval", "options": {"seconds": 59}}, {"type": "interval", "options": {"seconds": 60}}),
        ({"type": "interval", "options": {"seconds": 300}}, {"type": "interval", "options": {"seconds": 300}}),
        ({"type": "cron", "options": {"cron": "0 * * * *"}}, {"type": "cron", "options": {"cron": "0 * * * *"}}),
        (
            {"type": "cron", "options": {"cron": "0 9 * * *", "timezone": "Asia/Tokyo"}},
            {"type": "cron", "options": {"cron": "0 9 * * *", "timezone": "Asia/Tokyo"}},
        ),
    ],
)
def test_an_interval_runs_at_least_every_minute_as_trigger_dev_ran_it(declared: dict, runs_as: dict) -> None:
    assert Spec.parse(declared).as_metadata() == runs_as


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ({"type": "interval", "options": {"seconds": 19}}, "from 20 to 2592000"),
        ({"type": "interval", "options": {"seconds": 2_592_001}}, "from 20 to 2592000"),
        ({"type": "interval", "options": {"seconds": 60.5}}, "must be an integer"),
        ({"type": "interval", "options": {"seconds": True}}, "must be an integer"),
        ({"type": "cron", "options": {"cron": "61 * * * *"}}, "minute value 61"),
        ({"type": "cron", "options": {"cron": "* * * * *", "timezone": "Nowhere"}}, "unknown time zone"),
        ({"type": "weekly", "options": {}}, "must be 'interval' or 'cron'"),
        ({"type": "cron"}, "needs `options`"),
        ("every minute", "must be an object"),
    ],
)
def test_a_schedule_this_service_cannot_run_is_refused(declared: object, problem: str) -> None:
    with pytest.raises(ScheduleError, match=problem):
        Spec.parse(declared)


def test_an_interval_first_fires_one_interval_after_it_was_registered() -> None:
    s = schedule(Spec("interval", seconds=60))
    assert s.next_tick_at == T0 + timedelta(seconds=60)


def test_a_cron_first_fires_at_its_next_time() -> None:
    s = schedule(Spec("cron", cron="*/5 * * * *"))
    assert s.next_tick_at == datetime(2026, 1, 1, 10, 5, tzinfo=UTC)


def test_a_tick_on_time_schedules_the_next_and_the_payload_carries_the_last() -> None:
    s = schedule(Spec("interval", seconds=60))
    first = s.next_tick_at
    assert first is not None
    second = s.tick(first, first + timedelta(milliseconds=40))
    assert second == first + timedelta(seconds=60)
    assert s.last_tick_at == first
    assert scheduled_payload(second, s.last_tick_at) == {
        "ts": "2026-01-01T10:02:00.123Z",
        "lastTimestamp": "2026-01-01T10:01:00.123Z",
    }
    assert scheduled_payload(first, None) == {"ts": "2026-01-01T10:01:00.123Z"}


def test_ticks_missed_while_down_fire_once_and_an_interval_keeps_its_phase() -> None:
    s = schedule(Spec("interval", seconds=60))
    due = s.next_tick_at
    assert due is not None
    back = due + timedelta(minutes=30, seconds=10)  # the service was down for half an hour
    following = s.tick(due, back)
    assert following == due + timedelta(minutes=31)  # the next one after now, on the same phase
    assert not s.due(due)  # the late tick fired once
    assert s.due(following)
    cron = schedule(Spec("cron", cron="0 * * * *"))
    hour = cron.next_tick_at
    assert hour is not None
    assert cron.tick(hour, hour + timedelta(hours=5, minutes=1)) == hour + timedelta(hours=6)


def test_a_tick_fires_once_and_only_when_due() -> None:
    s = schedule(Spec("interval", seconds=60))
    due = s.next_tick_at
    assert due is not None
    with pytest.raises(ScheduleError, match="not due"):
        s.tick(due - timedelta(seconds=60), due)
    s.tick(due, due)
    with pytest.raises(ScheduleError, match="not due"):
        s.tick(due, due)


def test_registering_the_same_again_keeps_the_pending_tick_and_a_change_replaces_it() -> None:
    s = schedule(Spec("interval", seconds=60))
    s.collect_events()
    due = s.next_tick_at
    assert not s.change("endpoint", Spec("interval", seconds=60), None, None, T0 + timedelta(seconds=30))
    assert s.collect_events() == [] and s.next_tick_at == due
    assert s.change("endpoint", Spec("interval", seconds=120), None, None, T0 + timedelta(seconds=30))
    assert s.next_tick_at == T0 + timedelta(seconds=150)
    assert due is not None and not s.due(due)  # the old tick's row is stale now


def test_a_stopped_schedule_has_no_tick_until_it_changes_again() -> None:
    s = schedule(Spec("interval", seconds=60))
    due = s.next_tick_at
    assert due is not None
    assert s.stop("unregistered") and not s.stop("again")
    assert not s.due(due) and s.next_tick_at is None
    assert s.change("endpoint", Spec("interval", seconds=60), None, None, T0)
    assert s.active and s.next_tick_at == due


def test_a_ticks_event_id_names_the_schedule_and_the_tick() -> None:
    assert tick_event_id("job:report", T0) == "schedule:job:report:1767261600123"


def test_an_event_record_stored_before_source_contexts_reads_with_none() -> None:
    import msgspec

    from app.adapters.codec import decode_event

    recorded_v2 = {
        "timestamp": "2026-01-01T00:00:00.000001+00:00",
        "originator_topic": "jobs.EventRecord",
        "class_version": 2,
        "environment_id": str(uuid4()),
        "event_id": "e1",
        "name": "order.placed",
        "payload": {},
        "context": {},
        "source": "trigger.dev",
        "sent_at": "2026-01-01T00:00:00+00:00",
        "is_test": False,
        "deliver_at": None,
    }
    recorded = decode_event(uuid4(), 1, "jobs.EventRecord.EventRecorded", msgspec.json.encode(recorded_v2))
    assert recorded.mutate(None).source_context is None
