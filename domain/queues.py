"""Queues: a named concurrency group (a job's `concurrencyLimit: {id, limit}`) is a queue whose runs execute at
most `limit` at a time. One can be created with its limit before any job names it. A job's declaration sets
the limit of a queue only jobs declared (each index, as trigger.dev upserted the group); once a limit was set
through the API, that one holds: the operator's setting outranks the code's."""

from uuid import UUID

from eventsourcing.domain import Aggregate, event

MAX_NAME_LENGTH = 100
MAX_LIMIT = 100_000
API, INDEX = "api", "index"


class Queue(Aggregate):
    TOPIC = "jobs.Queue"

    class Created(Aggregate.Created):
        TOPIC = "jobs.Queue.Created"

    class QueueCreated(Aggregate.Created):
        TOPIC = "jobs.Queue.QueueCreated"
        environment_id: str
        name: str
        limit: int
        declared_by: str  # "api", or "index" (a job's concurrencyLimit)

    class QueueLimitChanged(Aggregate.Event):
        TOPIC = "jobs.Queue.QueueLimitChanged"
        limit: int
        declared_by: str

    @event(QueueCreated)
    def __init__(self, id: UUID, environment_id: str, name: str, limit: int, declared_by: str) -> None:
        self.environment_id = environment_id
        self.name = name
        self.limit = limit
        self.declared_by = declared_by

    def set_limit(self, limit: int, declared_by: str) -> bool:
        """Set by `declared_by` ("api" or "index"); False when nothing changes (the same limit, or an index's
        declaration for a queue whose limit was set through the API)."""
        if declared_by == INDEX and self.declared_by == API:
            return False
        if limit == self.limit and declared_by == self.declared_by:
            return False
        self._limit_changed(limit=limit, declared_by=declared_by)
        return True

    @event(QueueLimitChanged)
    def _limit_changed(self, limit: int, declared_by: str) -> None:
        self.limit = limit
        self.declared_by = declared_by


def concurrency_key(name: str) -> str:
    """The concurrency key of the runs of a queue (domain.jobs names a group's key so)."""
    return f"group:{name}"
