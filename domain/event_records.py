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

    class EventDelivered(Aggregate.Event):
        TOPIC = "jobs.EventRecord.EventDelivered"
        delivered_at: str

    class EventCanceled(Aggregate.Event):
        TOPIC = "jobs.EventRecord.EventCanceled"
        cancelled_at: str

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
        self.delivered_at: str | None = None
        self.cancelled_at: str | None = None

    @property
    def pending(self) -> bool:
        """A scheduled event not delivered nor canceled yet (an event without `deliver_at` is delivered
        as it is recorded)."""
        return self.deliver_at is not None and self.delivered_at is None and self.cancelled_at is None

    def deliver(self, at: str) -> None:
        if self.pending:
            self._delivered(delivered_at=at)

    @event(EventDelivered)
    def _delivered(self, delivered_at: str) -> None:
        self.delivered_at = delivered_at

    def cancel(self, at: str) -> None:
        """Cancel a scheduled event that has not been delivered yet; a delivered event stays as it is."""
        if self.pending:
            self._canceled(cancelled_at=at)

    @event(EventCanceled)
    def _canceled(self, cancelled_at: str) -> None:
        self.cancelled_at = cancelled_at


def test_event_id(event_name: str, epoch_ms: int) -> str:
    return f"test:{event_name}:{epoch_ms}"
