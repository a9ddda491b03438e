"""What the roles record in the series of app.observability.metrics, one call each, cheap on hot paths: a
labelled child is made once and kept."""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter

from app.observability import metrics

if TYPE_CHECKING:
    from domain.runs import JobRun


class _Children:
    """The children of a labelled counter, by their label values (a tuple key only on the first use)."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self._made: dict[tuple[str, ...], Counter] = {}

    def __call__(self, *values: str) -> Counter:
        child = self._made.get(values)
        if child is None:
            child = self._made[values] = self.counter.labels(*values)
        return child


_finished = _Children(metrics.RUNS_FINISHED)
_handled = _Children(metrics.MESSAGES_HANDLED)
_published = _Children(metrics.RELAY_PUBLISHED)


def runs_created(count: int = 1) -> None:
    """Runs whose creation was committed."""
    metrics.RUNS_CREATED.inc(count)


def run_started(run: "JobRun", started: datetime) -> None:
    """A committed start: its first one ends the run's wait in the queue (from its creation)."""
    if run.attempt == 1 and run.created_on is not None:
        metrics.RUN_QUEUE_WAIT.observe(max(0.0, (started - run.created_on).total_seconds()))


def run_finished(run: "JobRun") -> None:
    """A committed final status (counted by the write that ended the run, which happens once)."""
    _finished(run.status.value).inc()
    if run.started_at is not None:
        metrics.RUN_EXECUTION.observe(max(0.0, (datetime.now(UTC) - run.started_at).total_seconds()))


def message_done(message_type: str, outcome: str) -> None:
    """A message a worker is done with: handled, dead_lettered, or malformed (then its type is `unknown`)."""
    _handled(message_type, outcome).inc()


def dead_lettered(message_type: str | None) -> None:
    """A message sent to the dead-letter topic: one that failed every try, or one unreadable (no type)."""
    metrics.DEAD_LETTERS.inc()
    if message_type is None:
        message_done("unknown", "malformed")
    else:
        message_done(message_type, "dead_lettered")


def published(topics: Iterable[str]) -> None:
    """The base topics of the rows the relay published (one entry a row)."""
    counts: dict[str, int] = {}
    for topic in topics:
        counts[topic] = counts.get(topic, 0) + 1
    for topic, count in counts.items():
        _published(topic).inc(count)


def rescued() -> None:
    metrics.RUNS_RESCUED.inc()


def requeued() -> None:
    metrics.RUNS_REQUEUED.inc()


def group_committed(writes: int) -> None:
    metrics.GROUP_COMMIT_BATCH_SIZE.observe(writes)
