"""The rebuild into shadow tables: writers keep writing throughout, the swap loses none of their writes, a
crash leaves the live tables as they were, and writers in another process go on across the swap."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.store import EventStore
from app.container import Container
from app.tools.bench.rebuild_phase import load_events
from domain.endpoints import Endpoint
from projections import batch, rebuild, shadow
from projections.apply import Fold
from projections.changes import primary_key
from projections.registry import changes_for
from projections.shadow import SHADOW
from projections.tables import READ_MODELS
from tests.rebuild_writers import advance, write_until

Rows = dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]


async def live_rows(engine: AsyncEngine) -> Rows:
    async with engine.connect() as conn:
        return {
            table.name: {
                tuple(row._mapping[name] for name in primary_key(table)): tuple(row)
                for row in await conn.execute(select(table))
            }
            for table in READ_MODELS
        }


async def folded_from_scratch(store: EventStore) -> Rows:
    """What a fold of every stored event gives, in memory: the reference a rebuild must match."""
    fold, position = Fold(), 0
    while events := await store.read_all(position, 5000):
        fold.apply(changes_for(event for _, event in events))
        position = events[-1][0]
    return {
        table.name: {
            tuple(row[name] for name in primary_key(table)): tuple(row[column] for column in table.c.keys())
            for row in fold.table_rows(table)
        }
        for table in READ_MODELS
    }


async def shadow_exists(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": SHADOW})
        return found.scalar() is not None


def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many reads, flushes and catch-up passes over a small store: rows span batches, as in a large one."""
    monkeypatch.setattr(rebuild, "READ_BATCH", 50)
    monkeypatch.setattr(rebuild, "FLUSH_EVERY", 120)
    monkeypatch.setattr(rebuild, "SMALL_TAIL", 20)


async def test_writes_during_the_rebuild_all_land_in_the_swapped_tables(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_batches(monkeypatch)
    store = container.store
    runs: dict[UUID, str] = {}
    for _ in range(150):
        await advance(store, runs)
    reads: list[int] = []

    async def read_all(after: int = 0, limit: int = 1000, conn: Any = None) -> list[tuple[int, Any]]:
        reads.append(after)
        return await store.read_all_fields(after, limit, conn)

    done = asyncio.Event()
    writing = asyncio.create_task(write_until(store, done, runs))
    before = len(runs)
    try:
        replayed = await rebuild.rebuild(container.engine, read_all)
    finally:
        done.set()
        rounds_during = await writing
    assert rounds_during > 0 and len(runs) > before  # the writers kept going while it ran
    for _ in range(5):  # and after the swap, on the new tables
        await advance(store, runs)

    rows = await live_rows(container.engine)
    assert rows == await folded_from_scratch(store)
    status = {key[0]: row[5] for key, row in rows["run_status"].items()}
    assert status == runs  # every run, at the step its writer last saved: no write of the window lost
    assert replayed >= 3 * 150 and len(set(reads)) > 10
    assert not await shadow_exists(container.engine)


async def test_upserts_of_rows_an_earlier_batch_made_give_the_live_rows(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint indexed again and again upserts its jobs' rows (composite keys) in later batches; runs
    advance in later batches too: both are applied as written, over the rows copied before."""
    small_batches(monkeypatch)
    endpoint = Endpoint(id=uuid4(), environment_id=str(uuid4()), slug="ep", url="http://127.0.0.1:1/api")
    runs: dict[UUID, str] = {}
    for version in range(40):
        jobs = [{"id": f"job-{n}", "version": f"1.{version}", "name": f"Job {n} v{version}"} for n in range(3)]
        endpoint.index(jobs)
        if version % 7 == 0:
            endpoint.delete_job("job-2")
        await container.store.save(endpoint)
        for _ in range(3):
            await advance(container.store, runs)
    before = await live_rows(container.engine)
    assert len(before["job_versions"]) == 120 and before["jobs"]
    await rebuild.rebuild(container.engine, container.store.read_all_fields)
    assert await live_rows(container.engine) == before
    async with container.engine.connect() as conn:
        indexes = await conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'run_status'")
        )
        assert "run_status_job_idx" in {name for (name,) in indexes}  # the live names, that migrations use


async def test_the_shadow_is_filled_unlogged_and_swapped_in_as_persistent_as_the_live_tables(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk load writes no WAL, yet what is swapped in survives a crash of the database as the live tables
    would; a live table an operator made unlogged stays so."""
    runs: dict[UUID, str] = {}
    for _ in range(20):
        await advance(container.store, runs)
    persistence = text(
        "SELECT c.relname, c.relpersistence::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relkind = 'r'"
    )
    during: dict[str, str] = {}
    bulk_pass = rebuild._Rebuild._pass

    async def observed_pass(self: Any) -> int:
        read = await bulk_pass(self)
        if not during:  # the bulk pass has just filled the shadow
            async with container.engine.connect() as conn:
                during.update({name: kind for name, kind in await conn.execute(persistence, {"schema": SHADOW})})
        return read

    monkeypatch.setattr(rebuild._Rebuild, "_pass", observed_pass)
    async with container.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE queues SET UNLOGGED"))
    try:
        await rebuild.rebuild(container.engine, container.store.read_all_fields)
        async with container.engine.connect() as conn:
            after = {name: kind for name, kind in await conn.execute(persistence, {"schema": "public"})}
    finally:
        async with container.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE queues SET LOGGED"))
    assert during == {table.name: "u" for table in READ_MODELS}
    assert {table.name: after[table.name] for table in READ_MODELS} == {
        table.name: "u" if table.name == "queues" else "p" for table in READ_MODELS
    }
    assert after["events"] == "p"
    rows = await live_rows(container.engine)
    assert {key[0]: row[5] for key, row in rows["run_status"].items()} == runs


async def test_an_injected_failure_leaves_the_live_tables_untouched(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_batches(monkeypatch)
    runs: dict[UUID, str] = {}
    for _ in range(100):
        await advance(container.store, runs)
    before = await live_rows(container.engine)
    flushes = 0
    flush = batch.Batch.flush

    async def failing_flush(self: batch.Batch, conn: Any, *rest: Any) -> None:
        nonlocal flushes
        flushes += 1
        if flushes == 3:
            raise OSError("disk gone")
        await flush(self, conn, *rest)

    monkeypatch.setattr(batch.Batch, "flush", failing_flush)
    with pytest.raises(OSError, match="disk gone"):
        await rebuild.rebuild(container.engine, container.store.read_all_fields)
    assert await live_rows(container.engine) == before
    assert not await shadow_exists(container.engine)


def _env(database_url: str, secret_key: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "JOBS_SECRET_KEY": secret_key}


def start_rebuild(database_url: str, secret_key: str) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "projections", "rebuild"],
        env=_env(database_url, secret_key),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_rebuild(database_url: str, secret_key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "projections", "rebuild"],
        env=_env(database_url, secret_key),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def start_writers(database_url: str, stop: Path) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-m", "tests.rebuild_writers", database_url, str(stop)], stdout=subprocess.PIPE, text=True
    )


async def test_a_killed_rebuild_leaves_the_live_tables_untouched_and_the_next_one_succeeds(
    container: Container, database_url: str, secret_key: str
) -> None:
    runs: dict[UUID, str] = {}
    for _ in range(30):
        await advance(container.store, runs)
    await load_events(container, 150_000)  # a store the bulk pass takes a while over
    before = await live_rows(container.engine)
    process = start_rebuild(database_url, secret_key)
    try:
        while True:  # until the bulk pass has written to the shadow
            if await shadow_exists(container.engine):
                async with container.engine.connect() as conn:
                    if (await conn.execute(text(f"SELECT count(*) FROM {SHADOW}.run_status"))).scalar_one():
                        break
            assert process.poll() is None, "the rebuild ended before it could be killed"
            await asyncio.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert await live_rows(container.engine) == before
    assert await shadow_exists(container.engine)  # what it left, until the next rebuild

    second = run_rebuild(database_url, secret_key)
    assert second.returncode == 0, second.stderr
    rows = await live_rows(container.engine)
    assert rows == await folded_from_scratch(container.store)
    assert len(rows["run_status"]) > 45_000  # the synthetic runs too
    assert {key[0]: rows["run_status"][key][5] for key in before["run_status"]} == runs
    assert not await shadow_exists(container.engine)


async def test_a_second_rebuild_is_refused_while_one_runs(
    container: Container, database_url: str, secret_key: str
) -> None:
    async with container.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(hashtextextended('jobs.projections.rebuild', 0))"))
        await conn.commit()
        with pytest.raises(rebuild.RebuildRunning):
            await rebuild.rebuild(container.engine, container.store.read_all_fields)
        refused = run_rebuild(database_url, secret_key)
        await conn.execute(text("SELECT pg_advisory_unlock(hashtextextended('jobs.projections.rebuild', 0))"))
        await conn.commit()
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("jobs-service: a projections rebuild is already running; wait for it to finish")


async def test_writers_in_another_process_keep_working_across_swaps(
    container: Container, database_url: str, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    writer = start_writers(database_url, stop)
    assert writer.stdout is not None
    try:

        async def rounds_reach(count: int) -> None:
            assert writer.stdout is not None
            while json.loads(await asyncio.to_thread(writer.stdout.readline)).get("rounds", 0) < count:
                pass

        await asyncio.wait_for(
            rounds_reach(20), 120
        )  # its connections have prepared their statements on the live tables
        for swaps in range(1, 3):
            await rebuild.rebuild(container.engine, container.store.read_all_fields)
            await asyncio.wait_for(
                rounds_reach(20 + swaps * 20), 120
            )  # and it goes on writing on the tables swapped in
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == []
    rows = await live_rows(container.engine)
    status = {str(key[0]): row[5] for key, row in rows["run_status"].items()}
    assert status == result["runs"]
    assert rows == await folded_from_scratch(container.store)


async def test_the_swap_gives_way_to_a_long_reader_and_tries_again(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: dict[UUID, str] = {}
    for _ in range(10):
        await advance(container.store, runs)
    attempts = 0
    lock_live = shadow.lock_live

    async def counted(conn: Any) -> None:
        nonlocal attempts
        attempts += 1
        await lock_live(conn)

    monkeypatch.setattr(shadow, "lock_live", counted)
    async with container.engine.connect() as reader:
        await reader.execute(text("SELECT count(*) FROM run_status"))  # holds it until this transaction ends
        rebuilding = asyncio.create_task(rebuild.rebuild(container.engine, container.store.read_all_fields))
        while attempts < 2:  # its lock waits gave up (each briefly holding appends back), and it tried again
            assert not rebuilding.done()
            await asyncio.sleep(0.05)
        await advance(container.store, runs)  # appends are not held back between attempts
        await reader.commit()
    await rebuilding
    rows = await live_rows(container.engine)
    assert {key[0]: row[5] for key, row in rows["run_status"].items()} == runs
    assert rows == await folded_from_scratch(container.store)


async def test_a_view_on_a_read_model_is_refused_before_anything_changes(container: Container) -> None:
    async with container.engine.begin() as conn:
        await conn.execute(
            text("CREATE VIEW finished_runs AS SELECT id FROM run_status WHERE completed_at IS NOT NULL")
        )
    try:
        with pytest.raises(RuntimeError, match="finished_runs depend"):
            await rebuild.rebuild(container.engine, container.store.read_all_fields)
        assert not await shadow_exists(container.engine)
    finally:
        async with container.engine.begin() as conn:
            await conn.execute(text("DROP VIEW finished_runs"))
