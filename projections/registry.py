"""Every projector, and the changes all of them make for one event."""

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from projections import catalog, dispatchers, run_status, schedules
from projections.changes import Change, Handler

Projector = Callable[[Any], Sequence[Change]]

# Each projector with the event classes it matches.
PROJECTORS: tuple[tuple[Projector, tuple[type, ...]], ...] = (
    (catalog.changes, catalog.EVENTS),
    (run_status.changes, run_status.EVENTS),
    (dispatchers.changes, dispatchers.EVENTS),
    (schedules.changes, schedules.EVENTS),
)
_HANDLER_FOR = (catalog.handler_for, run_status.handler_for, dispatchers.handler_for, schedules.handler_for)


@functools.cache
def projectors_for(event_class: type) -> tuple[Projector, ...]:
    """The projectors an event of this class concerns: a replay calls only those, not every one per event."""
    return tuple(projector for projector, handled in PROJECTORS if issubclass(event_class, handled))


@functools.cache
def handlers_for(event_class: type) -> tuple[Handler, ...]:
    """What each projector does with an event of this class (its handler), in the projectors' order."""
    return tuple(handler for handler_for in _HANDLER_FOR if (handler := handler_for(event_class)) is not None)


def changes_for(events: Iterable[Any]) -> Iterator[Change]:
    for event in events:
        for handler in handlers_for(event.__class__):
            yield from handler(event)
