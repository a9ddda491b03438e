"""Every projector, and the changes all of them make for one event."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from projections import catalog, dispatchers, run_status, schedules
from projections.changes import Change

PROJECTORS: tuple[Callable[[Any], Iterable[Change]], ...] = (
    catalog.changes,
    run_status.changes,
    dispatchers.changes,
    schedules.changes,
)


def changes_for(events: Iterable[Any]) -> Iterator[Change]:
    for event in events:
        for projector in PROJECTORS:
            yield from projector(event)
