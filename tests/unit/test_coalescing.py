"""Coalescing and the short-lived cache: concurrent calls batched or shared, each caller its own outcome."""

import asyncio

import pytest

from app.adapters.coalesce import Coalescer
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
