"""Queues (no I/O): whose declaration of a limit holds."""

from uuid import uuid4

from domain.queues import API, INDEX, Queue


def queue(limit: int, by: str) -> Queue:
    created = Queue(id=uuid4(), environment_id="env", name="emails", limit=limit, declared_by=by)
    created.collect_events()
    return created


def test_an_index_sets_the_limit_of_a_queue_only_jobs_declared() -> None:
    declared = queue(1, INDEX)
    assert declared.set_limit(3, INDEX) and declared.limit == 3
    assert not declared.set_limit(3, INDEX)  # the same again records nothing
    assert declared.collect_events()[0].limit == 3  # type: ignore[attr-defined]


def test_a_limit_set_through_the_api_holds_over_the_jobs_declarations() -> None:
    created = queue(5, API)
    assert not created.set_limit(1, INDEX) and created.limit == 5
    assert created.collect_events() == []
    taken_over = queue(1, INDEX)
    assert taken_over.set_limit(1, API)  # the API takes the queue over, even at the same limit
    assert not taken_over.set_limit(2, INDEX) and taken_over.limit == 1
    assert taken_over.set_limit(2, API) and taken_over.limit == 2
