"""EventDispatcher: what io.waitForEvent registers (an ephemeral event dispatcher, in trigger.dev v2 terms).

It waits for the first event of its environment that matches its names, source and filters, until it
expires; that event is handed to the task that waits for it (the task whose callback URL registered it).
It matches at most once: a second match of the same dispatcher is a conflicting append."""

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.event_filter import rule_matches

_NAMESPACE = UUID("0b7cf1c4-6f0e-4f59-8d7e-2f3a9c1d5e21")
DEFAULT_SOURCE = "trigger.dev"
MIN_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 365 * 24 * 3600
DEFAULT_TIMEOUT_SECONDS = 3600


def dispatcher_id(environment_id: str, url: str) -> UUID:
    """One dispatcher per callback URL in an environment: registering it again finds the first."""
    return uuid5(_NAMESPACE, f"{environment_id}:{url}")


class EventDispatcher(Aggregate):
    TOPIC = "jobs.EventDispatcher"

    class Created(Aggregate.Created):
        TOPIC = "jobs.EventDispatcher.Created"

    class DispatcherCreated(Aggregate.Created):
        TOPIC = "jobs.EventDispatcher.DispatcherCreated"
        environment_id: str
        url: str
        run_id: str
        task_id: str
        names: list[str]
        source: str
        payload_filter: dict[str, Any] | None
        context_filter: dict[str, Any] | None
        expires_at: datetime

    class DispatcherMatched(Aggregate.Event):
        TOPIC = "jobs.EventDispatcher.DispatcherMatched"
        event_record_id: str
        event_id: str

    @event(DispatcherCreated)
    def __init__(
        self,
        id: UUID,
        environment_id: str,
        url: str,
        run_id: str,
        task_id: str,
        names: list[str],
        source: str,
        payload_filter: dict[str, Any] | None,
        context_filter: dict[str, Any] | None,
        expires_at: datetime,
    ) -> None:
        self.environment_id = environment_id
        self.url = url
        self.run_id = run_id
        self.task_id = task_id
        self.names = list(names)
        self.source = source
        self.payload_filter = payload_filter
        self.context_filter = context_filter
        self.expires_at = expires_at
        self.matched_event: str | None = None

    def matches(self, name: str, source: str, payload: Any, context: Any, now: datetime) -> bool:
        """Whether an event recorded `now` is the one this dispatcher waits for."""
        if self.matched_event is not None or now >= self.expires_at:
            return False
        rule: dict[str, Any] = {
            "event": self.names,
            "source": self.source,
            "payload": self.payload_filter,
            "context": self.context_filter,
        }
        return rule_matches(rule, name, source, payload, context)

    def match(self, event_record_id: UUID, event_id: str) -> None:
        self._matched(event_record_id=str(event_record_id), event_id=event_id)

    @event(DispatcherMatched)
    def _matched(self, event_record_id: str, event_id: str) -> None:
        self.matched_event = event_record_id
