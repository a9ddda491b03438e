"""EventRecord: one event received by an environment; runs are created from it."""

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event


class EventRecord(Aggregate):
    TOPIC = "jobs.EventRecord"

    class Created(Aggregate.Created):
        TOPIC = "jobs.EventRecord.Created"

    class EventRecorded(Aggregate.Created):
        TOPIC = "jobs.EventRecord.EventRecorded"
        class_version = 3
        environment_id: str
        event_id: str
        name: str
        payload: Any
        context: Any
        source: str
        sent_at: datetime
        is_test: bool
        deliver_at: datetime | None
        source_context: Any  # what sent it, for the run's `source` (a schedule: {id, metadata}); None mostly

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 kept `sent_at` as the sender gave it: one that is not a time becomes the recording's."""
            try:
                datetime.fromisoformat(state["sent_at"])
            except (TypeError, ValueError):
                state["sent_at"] = state["timestamp"]

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """Version 2 had no source context."""
            state["source_context"] = None

    class EventDelivered(Aggregate.Event):
        TOPIC = "jobs.EventRecord.EventDelivered"
        delivered_at: datetime

    class EventCanceled(Aggregate.Event):
        TOPIC = "jobs.EventRecord.EventCanceled"
        cancelled_at: datetime

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
        sent_at: datetime,
        is_test: bool,
        deliver_at: datetime | None = None,
        source_context: Any = None,
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
        self.source_context = source_context
        self.delivered_at: datetime | None = None
        self.cancelled_at: datetime | None = None

    @property
    def pending(self) -> bool:
        """A scheduled event not delivered nor canceled yet (an event without `deliver_at` is delivered
        as it is recorded)."""
        return self.deliver_at is not None and self.delivered_at is None and self.cancelled_at is None

    def deliver(self, at: datetime) -> None:
        if self.pending:
            self._delivered(delivered_at=at)

    @event(EventDelivered)
    def _delivered(self, delivered_at: datetime) -> None:
        self.delivered_at = delivered_at

    def cancel(self, at: datetime) -> None:
        """Cancel a scheduled event that has not been delivered yet; a delivered event stays as it is."""
        if self.pending:
            self._canceled(cancelled_at=at)

    @event(EventCanceled)
    def _canceled(self, cancelled_at: datetime) -> None:
        self.cancelled_at = cancelled_at


def test_event_id(event_name: str, epoch_ms: int) -> str:
    return f"test:{event_name}:{epoch_ms}"
