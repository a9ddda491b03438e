"""A projector is called only for the event classes it lists: the list must hold every class its match names."""

import ast
import inspect

import pytest

from domain.runs import JobRun
from projections import catalog, dispatchers, run_status, schedules
from projections.registry import PROJECTORS, projectors_for


@pytest.mark.parametrize("module", [catalog, dispatchers, run_status, schedules], ids=lambda module: module.__name__)
def test_events_lists_every_class_the_projector_matches(module: object) -> None:
    matched = {
        ast.unparse(node.cls)
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.MatchClass)
    }
    listed = {event.__qualname__ for event in module.EVENTS}  # type: ignore[attr-defined]
    assert matched
    assert listed == matched


def test_every_projector_is_registered_with_its_events() -> None:
    assert {projector.__module__ for projector, _ in PROJECTORS} == {
        module.__name__ for module in (catalog, dispatchers, run_status, schedules)
    }
    assert projectors_for(JobRun.RunCreated) == (run_status.changes,)
    assert projectors_for(JobRun.Created) == ()
