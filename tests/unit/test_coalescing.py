"""Coalescing and the short-lived cache: concurrent calls batched or shared, each caller its own outcome."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from app.adapters.coalesce import Coalescer
from app.adapters.group_commit import Write, group_commit
from app.adapters.ttl_cache import TtlCache


async def test_calls_arriving_together_are_handled_in_batches_with_their_own_outcomes() -> None:
    batches: list[list[int]] = []

    async def handle(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(handle, concurrency=1)
    results = await asyncio.gather(*(coalescer(i) for i in range(8)), return_exceptions=True)

    assert batches == [[0, 1, 2, 3, 4, 5, 6, 7]]
    assert [r if isinstance(r, int) else str(r) for r in results] == [
        0, "odd 1", 20, "odd 3", 40, "odd 5", 60, "odd 7"
    ]  # fmt: skip


async def test_what_arrives_during_a_batch_goes_into_the_next_one() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def handle(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        await gate.wait()
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(handle, concurrency=1)
    first = asyncio.create_task(coalescer(1))
    await asyncio.sleep(0)
    later = [asyncio.create_task(coalescer(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(first, *later) == [1, 2, 3]
    assert batches == [[1], [2, 3]]


async def test_a_failing_batch_fails_each_of_its_callers() -> None:
    async def handle(items: list[int]) -> list[int | BaseException]:
        raise ConnectionError("database down")

    coalescer: Coalescer[int, int] = Coalescer(handle)
    results = await asyncio.gather(coalescer(1), coalescer(2), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    with pytest.raises(ConnectionError):
        await coalescer(3)  # and the next call is tried again, not stuck


async def test_cache_shares_one_load_among_concurrent_misses_and_reloads_after_expiry() -> None:
    loads: list[str] = []

    async def load(key: str) -> str:
        loads.append(key)
        await asyncio.sleep(0.01)
        return key.upper()

    cache: TtlCache[str, str] = TtlCache(load, ttl_seconds=0.05)
    assert await asyncio.gather(*(cache.get("a") for _ in range(5))) == ["A"] * 5
    assert await cache.get("a") == "A"
    assert loads == ["a"]
    await asyncio.sleep(0.06)
    assert await cache.get("a") == "A"
    assert loads == ["a", "a"]


async def test_cache_does_not_keep_a_failed_load() -> None:
    calls = 0

    async def load(key: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise LookupError(key)
        return key

    cache: TtlCache[str, str] = TtlCache(load, ttl_seconds=10)
    with pytest.raises(LookupError):
        await cache.get("x")
    assert await cache.get("x") == "x"


async def test_callers_do_not_wait_forever_on_a_handler_cancelled_at_shutdown() -> None:
    started = asyncio.Event()

    async def handle(items: list[int]) -> list[int | BaseException]:
        started.set()
        await asyncio.sleep(60)
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(handle, concurrency=1)
    calls = [asyncio.create_task(coalescer(i)) for i in range(3)]
    await started.wait()
    later = asyncio.create_task(coalescer(99))
    await asyncio.sleep(0)
    for task in list(coalescer._tasks):
        task.cancel()
    results = await asyncio.wait_for(asyncio.gather(*calls, later, return_exceptions=True), timeout=5)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)


class _Conflict(Exception):
    pass


class _Recorder:
    """A transaction that records what each attempt carried; it fails when it carries a write named `bad`."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error
        self.attempts: list[list[str]] = []

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator["_Recorder"]:
        self.carried: list[str] = []
        yield self
        self.attempts.append(self.carried)
        if any(name.startswith("bad") for name in self.carried):
            raise self.error(f"{self.carried} holds a bad write")

    async def append(self, events: Sequence[Any]) -> None:
        self.carried.extend(events)

    async def enqueue(self, *messages: Any) -> None:
        pass


async def test_a_conflicting_write_splits_its_group_commit_rather_than_committing_each_write_alone() -> None:
    recorder = _Recorder(_Conflict)
    commits = group_commit(recorder, _Conflict, concurrency=1)
    names = [f"ok{i}" for i in range(63)]
    names.insert(40, "bad")
    outcomes = await asyncio.gather(*(commits(Write([name])) for name in names), return_exceptions=True)

    assert isinstance(outcomes[40], _Conflict)
    assert [o for i, o in enumerate(outcomes) if i != 40] == [None] * 63
    assert len(recorder.attempts) <= 2 * 6 + 1  # halves down to the one write: about 2·log2(64), not 64
    committed = [name for attempt in recorder.attempts if "bad" not in attempt for name in attempt]
    assert sorted(committed) == sorted(names[:40] + names[41:])  # each good write committed once


async def test_a_group_commit_failing_otherwise_commits_each_write_alone() -> None:
    recorder = _Recorder(ValueError)
    commits = group_commit(recorder, _Conflict, concurrency=1)
    names = ["ok0", "bad", "ok1", "ok2"]
    outcomes = await asyncio.gather(*(commits(Write([name])) for name in names), return_exceptions=True)

    assert isinstance(outcomes[1], ValueError)
    assert [outcomes[i] for i in (0, 2, 3)] == [None] * 3
    assert recorder.attempts == [names, ["ok0"], ["bad"], ["ok1"], ["ok2"]]
