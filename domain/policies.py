"""Retry backoff and run limits, as trigger.dev v2 applies them."""

from datetime import datetime, timedelta

from domain.environments import EnvironmentType

MAX_EXECUTION_FAILURES = 10
MAX_EXECUTION_FAILURES_IN_DEVELOPMENT = 1
MAX_EXECUTIONS = 250
MAX_TOTAL_EXECUTION = timedelta(minutes=15)
MAX_YIELDS = 100
RETRY_BASE = timedelta(milliseconds=500)
RETRY_FACTOR = 1.5


def retry_delay(failures: int) -> timedelta:
    """Backoff before the next execution after `failures` failed executions: 1.5^n x 500 ms."""
    return RETRY_BASE * (RETRY_FACTOR**failures)


def retry_at(now: datetime, failures: int) -> datetime:
    return now + retry_delay(failures)


def max_execution_failures(environment_type: EnvironmentType) -> int:
    if environment_type is EnvironmentType.DEVELOPMENT:
        return MAX_EXECUTION_FAILURES_IN_DEVELOPMENT
    return MAX_EXECUTION_FAILURES


def may_retry(failures: int, environment_type: EnvironmentType) -> bool:
    """Whether a run that has now failed `failures` executions gets another one."""
    return failures < max_execution_failures(environment_type)


def over_limits(executions: int, total_execution: timedelta) -> str | None:
    """Why a run may not execute again, or None while it may."""
    if executions >= MAX_EXECUTIONS:
        return f"the run reached the limit of {MAX_EXECUTIONS} executions"
    if total_execution >= MAX_TOTAL_EXECUTION:
        return f"the run executed for longer than {int(MAX_TOTAL_EXECUTION.total_seconds() // 60)} minutes in total"
    return None
