"""A run as the unit tests of execution rules start from: started at NOW, attempt 1."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from domain.environments import EnvironmentType
from domain.runs import JobRun

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
PROD = EnvironmentType.PRODUCTION


def started_run() -> JobRun:
    run = JobRun(
        id=uuid4(),
        environment_id="e",
        endpoint_id="p",
        job_slug="j",
        job_version="1",
        event_record_id="r",
        is_test=False,
    )
    run.start(1, NOW, LEASE)
    return run
