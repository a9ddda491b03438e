"""Every projector, and the changes all of them make for one event."""

import functools
from collections.abc import Iterable, Iterator
from typing import Any

from projections import catalog, dispatchers, run_status, schedules
from projections.changes import Change, Handler, Projector

PROJECTORS: tuple[Projector, ...] = (catalog.changes, run_status.changes, dispatchers.changes, schedules.changes)


@functools.cache
def projectors_for(event_class: type) -> tuple[Projector, ...]:
    """The projectors an event of this class concerns: a replay calls only those, not every one per event."""
    return tuple(projector for projector in PROJECTORS if issubclass(event_class, projector.events))


@functools.cache
def handlers_for(event_class: type) -> tuple[Handler, ...]:
    """What each projector does with an event of this class (its handler), in the projectors' order."""
    event_class = _stood_for(event_class)
    return tuple(handler for projector in PROJECTORS if (handler := projector.handler_for(event_class)) is not None)


def _stood_for(cls: type) -> type:
    """The event class an event's fields stand for, when the replay reads them without making the event."""
    stands_for: type = getattr(cls, "stands_for", cls)
    return stands_for


def changes_for(events: Iterable[Any]) -> Iterator[Change]:
    for event in events:
        for handler in handlers_for(event.__class__):
            yield from handler(event)
