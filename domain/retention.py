"""Retention: which finished runs are old enough to remove, and how an operator says how old.

A run is removed only once it has ended (a terminal status), ended before the cutoff, and nothing is still
to be delivered for it (no outbox row names it or its dispatchers): what River's job cleaner and Temporal's
namespace retention do for finished jobs and closed workflows. Unfinished runs are kept however old they are.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from domain.status import RunStatus, is_terminal

_AGE = re.compile(r"^([0-9]{1,6})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
LONGEST = timedelta(days=36_500)


class BadAge(ValueError):
    """An age an operator wrote that is not one."""


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m` or `45s`: a whole, positive number and one unit, at most 100 years."""
    found = _AGE.match(text.strip())
    if found is None:
        raise BadAge(f"must be a whole number followed by s, m, h or d (like 30d), got {text!r}")
    age = timedelta(**{_UNITS[found[2]]: int(found[1])})
    if not timedelta(0) < age <= LONGEST:
        raise BadAge(f"must be more than 0 and at most {LONGEST.days} days, got {text!r}")
    return age


@dataclass(frozen=True, slots=True)
class FinishedRun:
    status: RunStatus
    completed_at: datetime | None
    pending_messages: bool  # an outbox row still names the run or one of its dispatchers


def removable(run: FinishedRun, cutoff: datetime) -> bool:
    """Whether retention may remove the run: ended before the cutoff with nothing left to deliver."""
    return (
        is_terminal(run.status)
        and run.completed_at is not None
        and run.completed_at < cutoff
        and not run.pending_messages
    )


def archive_day(completed_at: datetime) -> date:
    """The day (UTC) whose archive directory holds a removed run: the day it ended."""
    if completed_at.tzinfo is None:
        raise ValueError("a completion time must say its time zone")
    return completed_at.astimezone(UTC).date()
