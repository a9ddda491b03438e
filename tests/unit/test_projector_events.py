"""A projector is called only for the event classes it lists: the list is the classes it has a handler for."""

import pytest

from domain.runs import JobRun
from projections import catalog, dispatchers, run_status, schedules
from projections.registry import PROJECTORS, projectors_for


@pytest.mark.parametrize("module", [catalog, dispatchers, run_status, schedules], ids=lambda module: module.__name__)
def test_events_lists_every_class_the_projector_handles(module: object) -> None:
    handlers = module.HANDLERS  # type: ignore[attr-defined]
    assert handlers
    assert set(module.EVENTS) == set(handlers)  # type: ignore[attr-defined]
    for event_class, handler in handlers.items():
        assert module.handler_for(event_class) is handler  # type: ignore[attr-defined]
    assert module.handler_for(JobRun.TaskStarted) is None  # type: ignore[attr-defined]


def test_a_subclass_of_a_handled_event_is_handled_as_its_base() -> None:
    class LateCreated(JobRun.RunCreated):
        pass

    assert run_status.handler_for(LateCreated) is run_status.HANDLERS[JobRun.RunCreated]
    assert projectors_for(LateCreated) == (run_status.changes,)


def test_every_projector_is_registered_with_its_events() -> None:
    assert set(PROJECTORS) == {module.changes for module in (catalog, dispatchers, run_status, schedules)}
    assert projectors_for(JobRun.RunCreated) == (run_status.changes,)
    assert projectors_for(JobRun.Created) == ()
