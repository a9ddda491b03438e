"""Run statuses and the one table of transitions between them."""

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    WAITING_ON_CONNECTIONS = "WAITING_ON_CONNECTIONS"
    PREPROCESSING = "PREPROCESSING"
    STARTED = "STARTED"
    EXECUTING = "EXECUTING"
    WAITING_TO_CONTINUE = "WAITING_TO_CONTINUE"
    WAITING_TO_EXECUTE = "WAITING_TO_EXECUTE"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    CANCELED = "CANCELED"
    UNRESOLVED_AUTH = "UNRESOLVED_AUTH"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"


S = RunStatus

TERMINAL: frozenset[RunStatus] = frozenset(
    {S.SUCCESS, S.FAILURE, S.TIMED_OUT, S.ABORTED, S.CANCELED, S.UNRESOLVED_AUTH, S.INVALID_PAYLOAD}
)

# Terminal statuses a run may be continued from (back to QUEUED), as trigger.dev allows; a waiting run may be
# continued too (it executes at once). A run executing now may not: that would start a second execution.
CONTINUABLE: frozenset[RunStatus] = TERMINAL - {S.SUCCESS}

# How a run that is not executing may end: canceled, refused (disabled, out of time, no endpoint, or its
# environment's key was revoked: UNRESOLVED_AUTH).
_STOPS: frozenset[RunStatus] = frozenset({S.CANCELED, S.ABORTED, S.TIMED_OUT, S.FAILURE, S.UNRESOLVED_AUTH})

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    S.PENDING: frozenset({S.QUEUED, S.WAITING_ON_CONNECTIONS, S.PREPROCESSING}) | _STOPS,
    S.WAITING_ON_CONNECTIONS: frozenset({S.PENDING, S.QUEUED, S.PREPROCESSING, S.UNRESOLVED_AUTH}) | _STOPS,
    S.PREPROCESSING: frozenset({S.QUEUED}) | _STOPS,
    S.QUEUED: frozenset({S.STARTED, S.EXECUTING}) | _STOPS,
    S.STARTED: frozenset({S.EXECUTING}) | TERMINAL,
    S.EXECUTING: frozenset({S.WAITING_TO_CONTINUE, S.WAITING_TO_EXECUTE}) | TERMINAL,
    S.WAITING_TO_CONTINUE: frozenset({S.EXECUTING, S.QUEUED}) | _STOPS,
    S.WAITING_TO_EXECUTE: frozenset({S.EXECUTING, S.QUEUED}) | _STOPS,
    **{status: frozenset({S.QUEUED}) for status in CONTINUABLE},
    S.SUCCESS: frozenset(),
}


class InvalidTransition(ValueError):
    def __init__(self, current: RunStatus, target: RunStatus) -> None:
        super().__init__(f"a run cannot go from {current} to {target}")
        self.current = current
        self.target = target


def can_transition(current: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: RunStatus, target: RunStatus) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(current, target)


def is_terminal(status: RunStatus) -> bool:
    return status in TERMINAL
