from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from domain.retention import BadAge, FinishedRun, archive_day, parse_age, removable
from domain.status import TERMINAL, RunStatus

CUTOFF = datetime(2026, 10, 1, tzinfo=UTC)
BEFORE = CUTOFF - timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("5s", timedelta(seconds=5)),
    ],
)
def test_ages_an_operator_writes(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "0d", "1.5d", "3w", "30 days", "36501d"])
def test_what_is_not_an_age(text: str) -> None:
    with pytest.raises(BadAge):
        parse_age(text)


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_a_run_that_ended_before_the_cutoff_goes(status: RunStatus) -> None:
    assert removable(FinishedRun(status, BEFORE, pending_messages=False), CUTOFF)


@pytest.mark.parametrize("status", sorted(set(RunStatus) - TERMINAL))
def test_an_unfinished_run_stays_however_old(status: RunStatus) -> None:
    assert not removable(FinishedRun(status, BEFORE, pending_messages=False), CUTOFF)
    assert not removable(FinishedRun(status, None, pending_messages=False), CUTOFF)


def test_a_run_that_ended_at_or_after_the_cutoff_stays() -> None:
    assert not removable(FinishedRun(RunStatus.SUCCESS, CUTOFF, pending_messages=False), CUTOFF)
    assert not removable(FinishedRun(RunStatus.SUCCESS, CUTOFF + timedelta(days=1), pending_messages=False), CUTOFF)


def test_a_run_with_a_message_still_to_deliver_stays() -> None:
    assert not removable(FinishedRun(RunStatus.FAILURE, BEFORE, pending_messages=True), CUTOFF)


def test_archive_days_are_utc_days() -> None:
    late_evening = datetime(2026, 9, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert archive_day(late_evening) == date(2026, 10, 1)
    with pytest.raises(ValueError):
        archive_day(datetime(2026, 9, 30))
