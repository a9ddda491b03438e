"""Every projector, and the changes all of them make for one event."""

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from projections import catalog, dispatchers, run_status, schedules
from projections.changes import Change

Projector = Callable[[Any], Iterable[Change]]

# Each projector with the event classes it matches.
PROJECTORS: tuple[tuple[Projector, tuple[type, ...]], ...] = (
    (catalog.changes, catalog.EVENTS),
    (run_status.changes, run_status.EVENTS),
    (dispatchers.changes, dispatchers.EVENTS),
    (schedules.changes, schedules.EVENTS),
)


@functools.cache
def projectors_for(event_class: type) -> tuple[Projector, ...]:
    """The projectors an event of this class concerns: a replay calls only those, not every one per event."""
    return tuple(projector for projector, handled in PROJECTORS if issubclass(event_class, handled))


def changes_for(events: Iterable[Any]) -> Iterator[Change]:
    for event in events:
        for projector in projectors_for(event.__class__):
            yield from projector(event)
