"""EventRecord: one event received by an environment; runs are created from it."""

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event


class EventRecord(Aggregate):
    TOPIC = "jobs.EventRecord"

    class Created(Aggregate.Created):
        TOPIC = "jobs.EventRecord.Created"

    class EventRecorded(Aggregate.Created):
        TOPIC = "jobs.EventRecord.EventRecorded"
        environment_id: str
        event_id: str
        name: str
        payload: Any
        context: Any
        source: str
        sent_at: str
        is_test: bool
        deliver_at: str | None

    @event(EventRecorded)
    def __init__(
        self,
        id: UUID,
        environment_id: str,
        event_id: str,
        name: str,
        payload: Any,
        context: Any,
        source: str,
        sent_at: str,
        is_test: bool,
        deliver_at: str | None = None,
    ) -> None:
        self.environment_id = environment_id
        self.event_id = event_id
        self.name = name
        self.payload = payload
        self.context = context
        self.source = source
        self.sent_at = sent_at
        self.is_test = is_test
        self.deliver_at = deliver_at


def test_event_id(event_name: str, epoch_ms: int) -> str:
    return f"test:{event_name}:{epoch_ms}"
