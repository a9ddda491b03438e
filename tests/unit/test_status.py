import pytest

from domain.status import (
    CONTINUABLE,
    TERMINAL,
    TRANSITIONS,
    InvalidTransition,
    RunStatus,
    can_transition,
    check_transition,
    is_terminal,
)


def test_every_status_has_its_transitions_listed() -> None:
    assert set(TRANSITIONS) == set(RunStatus)


def test_the_seven_terminal_statuses() -> None:
    assert {s.value for s in TERMINAL} == {
        "SUCCESS",
        "FAILURE",
        "TIMED_OUT",
        "ABORTED",
        "CANCELED",
        "UNRESOLVED_AUTH",
        "INVALID_PAYLOAD",
    }
    assert all(is_terminal(s) for s in TERMINAL)
    assert not is_terminal(RunStatus.EXECUTING)


def test_success_is_final() -> None:
    assert TRANSITIONS[RunStatus.SUCCESS] == frozenset()


@pytest.mark.parametrize("status", sorted(CONTINUABLE))
def test_failed_runs_can_only_be_continued(status: RunStatus) -> None:
    assert TRANSITIONS[status] == {RunStatus.QUEUED}


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (RunStatus.QUEUED, RunStatus.EXECUTING, True),
        (RunStatus.EXECUTING, RunStatus.SUCCESS, True),
        (RunStatus.EXECUTING, RunStatus.FAILURE, True),
        (RunStatus.EXECUTING, RunStatus.WAITING_TO_CONTINUE, True),
        (RunStatus.QUEUED, RunStatus.SUCCESS, False),
        (RunStatus.SUCCESS, RunStatus.QUEUED, False),
        (RunStatus.SUCCESS, RunStatus.EXECUTING, False),
        (RunStatus.FAILURE, RunStatus.EXECUTING, False),
        (RunStatus.CANCELED, RunStatus.QUEUED, True),
        (RunStatus.EXECUTING, RunStatus.QUEUED, False),
        (RunStatus.WAITING_TO_CONTINUE, RunStatus.QUEUED, True),
        (RunStatus.QUEUED, RunStatus.UNRESOLVED_AUTH, True),
        (RunStatus.WAITING_TO_EXECUTE, RunStatus.UNRESOLVED_AUTH, True),
        (RunStatus.UNRESOLVED_AUTH, RunStatus.QUEUED, True),
        (RunStatus.UNRESOLVED_AUTH, RunStatus.EXECUTING, False),
    ],
)
def test_transitions(current: RunStatus, target: RunStatus, allowed: bool) -> None:
    assert can_transition(current, target) is allowed


def test_check_transition_names_both_statuses() -> None:
    with pytest.raises(InvalidTransition, match="from SUCCESS to EXECUTING"):
        check_transition(RunStatus.SUCCESS, RunStatus.EXECUTING)
