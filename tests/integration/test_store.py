import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import text

from app.adapters.store import ConcurrencyConflict, EventStore
from domain.runs import JobRun


def new_run() -> JobRun:
    return JobRun(
        id=uuid4(),
        environment_id=str(uuid4()),
        endpoint_id=str(uuid4()),
        job_slug="job",
        job_version="1",
        event_record_id=str(uuid4()),
        is_test=True,
    )


async def test_append_and_load(store: EventStore) -> None:
    run = new_run()
    run.start(1, datetime.now(UTC), timedelta(seconds=5))
    await store.save(run)
    loaded = await store.get(run.id, JobRun)
    assert loaded is not None
    assert (loaded.version, loaded.attempt, loaded.status) == (2, 1, run.status)
    assert await store.get(uuid4(), JobRun) is None


async def test_a_stale_version_conflicts_and_writes_nothing(store: EventStore) -> None:
    run = new_run()
    await store.save(run)
    first = await store.get(run.id, JobRun)
    second = await store.get(run.id, JobRun)
    assert first is not None and second is not None
    first.start(1, datetime.now(UTC), timedelta(seconds=5))
    second.start(1, datetime.now(UTC), timedelta(seconds=9))
    await store.save(first)
    with pytest.raises(ConcurrencyConflict):
        await store.save(second)
    events = await store.load_events(run.id)
    assert len(events) == 2
    assert events[1].__dict__["lease_until"] == first.lease_until


async def test_read_all_is_in_global_order(store: EventStore) -> None:
    runs = [new_run() for _ in range(3)]
    for run in runs:
        await store.save(run)
    read = await store.read_all()
    positions = [p for p, _ in read]
    assert positions == sorted(positions)
    assert [e.originator_id for _, e in read] == [r.id for r in runs]
    assert await store.read_all(after=positions[0]) == read[1:]


async def test_read_all_does_not_pass_a_transaction_still_running(store: EventStore) -> None:
    """The commit-order gap: an event committed later with a lower position must not be skipped."""
    slow, fast = new_run(), new_run()
    async with store.transaction() as uow:
        await uow.save(slow)  # takes the lower position, commits last
        await store.save(fast)
        assert await store.read_all() == []  # `fast` is held back while `slow` can still commit below it
    read = await store.read_all()
    assert [e.originator_id for _, e in read] == [slow.id, fast.id]


async def test_concurrent_writers_of_one_run_conflict(store: EventStore) -> None:
    run = new_run()
    await store.save(run)
    copies = [await store.get(run.id, JobRun) for _ in range(5)]
    for copy in copies:
        assert copy is not None
        copy.start(1, datetime.now(UTC), timedelta(seconds=5))
    results = await asyncio.gather(*(store.save(c) for c in copies if c), return_exceptions=True)
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert all(isinstance(r, ConcurrencyConflict) for r in results if isinstance(r, Exception))
    async with store.engine.connect() as conn:
        count = await conn.execute(text("SELECT count(*) FROM events WHERE originator_id = :id"), {"id": run.id})
        assert count.scalar() == 2


async def test_concurrent_commits_share_a_transaction_and_a_conflict_fails_only_its_own_write(
    store: EventStore,
) -> None:
    taken = new_run()
    await store.save(taken)
    late = await store.get(taken.id, JobRun)
    assert late is not None
    winner = await store.get(taken.id, JobRun)
    assert winner is not None
    winner.start(1, datetime.now(UTC), timedelta(seconds=5))
    await store.save(winner)
    late.start(1, datetime.now(UTC), timedelta(seconds=9))  # version 2 is already taken: a conflict

    fresh = [new_run() for _ in range(20)]
    writes = [store.commit(run.collect_events()) for run in fresh]
    writes.insert(7, store.commit(late.collect_events()))
    results = await asyncio.gather(*writes, return_exceptions=True)

    assert isinstance(results[7], ConcurrencyConflict)
    assert [r for i, r in enumerate(results) if i != 7] == [None] * 20
    async with store.engine.connect() as conn:
        ids = [run.id for run in fresh]
        saved = await conn.execute(text("SELECT count(*) FROM events WHERE originator_id = ANY(:ids)"), {"ids": ids})
        assert saved.scalar() == 20
        shown = await conn.execute(text("SELECT count(*) FROM run_status WHERE id = ANY(:ids)"), {"ids": ids})
        assert shown.scalar() == 20
    events = await store.load_events(taken.id)
    assert events[1].__dict__["lease_until"] == winner.lease_until


async def test_concurrent_loads_each_get_their_own_aggregate(store: EventStore) -> None:
    runs = [new_run() for _ in range(10)]
    for run in runs[:5]:
        run.start(1, datetime.now(UTC), timedelta(seconds=5))
    await store.save(*runs)
    ids = [run.id for run in runs] + [runs[0].id, uuid4()]
    loaded = await asyncio.gather(*(store.get(i, JobRun) for i in ids))
    assert [r.id if r else None for r in loaded] == [*ids[:-1], None]
    assert [r.attempt for r in loaded[:10] if r] == [1] * 5 + [0] * 5
    assert loaded[0] is not loaded[10]  # the same run asked twice: two aggregates, not one shared
