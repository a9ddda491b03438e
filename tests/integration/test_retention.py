"""Retention on real PostgreSQL: runs that ended before a cutoff go with their history; nothing else does."""

import asyncio
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.archive import Archive, read_streams
from app.adapters.messages import ExecuteJobRun, decode_message
from app.adapters.retention import RetentionStore
from app.cli import main as cli_main
from app.container import Container
from app.service.environments import EnvironmentInfo
from app.service.retention import Retention
from app.settings import Settings
from app.worker.executor import RunExecutor
from app.worker.retention_keeper import RetentionKeeper
from domain.dispatchers import EventDispatcher
from domain.runs import JobRun
from projections.rebuild import rebuild
from tests.helpers import finished, in_status, register, start_roles, start_test_run, stop_roles, wait_for
from tests.integration.test_cli import jobs_service
from tests.integration.test_projections import snapshot
from tests.node_endpoint import NodeEndpoint

CATALOG = ("environments", "endpoints", "jobs", "job_versions", "schedules", "queues")


async def execute_all(container: Container) -> None:
    """Handle every execution in the outbox as a worker would, deleting each row once handled; rows the runs
    write meanwhile (a waiting run's next execution) are deleted too, so only a run's status keeps it."""
    executor = RunExecutor(container.service, container.endpoint_client)
    async with container.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, value FROM outbox ORDER BY id"))).all()
    for _row_id, value in rows:
        message = decode_message(value)
        if isinstance(message, ExecuteJobRun):
            await executor.handle(message)
    async with container.engine.begin() as conn:
        await conn.execute(text("DELETE FROM outbox"))


async def start(container: Container, env: EnvironmentInfo, job: str, payload: Any = None) -> UUID:
    return (await container.service.runs.test(env, job, payload or {}, None)).run_id


async def dispatcher_of(container: Container, env: EnvironmentInfo, run_id: UUID) -> UUID:
    dispatcher = EventDispatcher(
        id=uuid4(),
        environment_id=str(env.id),
        url=f"http://127.0.0.1/callback/{uuid4()}",
        run_id=str(run_id),
        task_id="wait-for-event",
        names=["never.sent"],
        source="trigger.dev",
        payload_filter=None,
        context_filter=None,
        expires_at=datetime.now(UTC) + timedelta(minutes=1),
    )
    await container.store.commit(dispatcher.collect_events())
    return dispatcher.id


async def events_of(engine: AsyncEngine, ids: list[UUID]) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT position, originator_id, originator_version, topic, state FROM events "
                "WHERE originator_id = ANY(:ids) ORDER BY position"
            ),
            {"ids": ids},
        )
        return [tuple(row) for row in rows]


async def record_of(engine: AsyncEngine, run_id: UUID) -> UUID:
    async with engine.connect() as conn:
        record: UUID = (
            await conn.execute(text("SELECT event_record_id FROM run_status WHERE id = :id"), {"id": run_id})
        ).scalar_one()
    return record


async def db_now(container: Container) -> datetime:
    return await container.outbox.now()


class History:
    """Old runs (two ended, one executing, one queued, with dispatchers), then the cutoff, then a recent one."""

    def __init__(self) -> None:
        self.ended: list[UUID] = []
        self.unfinished: list[UUID] = []
        self.recent: list[UUID] = []
        self.dispatchers: dict[str, UUID] = {}
        self.cutoff = datetime.min

    @classmethod
    async def build(cls, container: Container, env: EnvironmentInfo, endpoint: NodeEndpoint) -> "History":
        history = cls()
        await register(container, env, endpoint)
        succeeded = await start(container, env, "return-value")
        failed = await start(container, env, "throws")
        await execute_all(container)
        executing = await start(container, env, "return-value")  # started by a worker that is still at it
        run = await container.store.get(executing, JobRun)
        assert run is not None
        run.start(1, datetime.now(UTC), timedelta(hours=1))
        await container.store.commit(run.collect_events())
        queued = await start(container, env, "return-value")  # never executed: its row is gone, it stays QUEUED
        async with container.engine.begin() as conn:
            await conn.execute(text("DELETE FROM outbox"))
        history.ended = [succeeded, failed]
        history.unfinished = [executing, queued]
        history.dispatchers = {
            "ended": await dispatcher_of(container, env, succeeded),
            "waiting": await dispatcher_of(container, env, executing),
        }
        await asyncio.sleep(0.01)
        history.cutoff = await db_now(container)
        history.recent = [await start(container, env, "return-value")]
        await execute_all(container)
        statuses = await status_of(container.engine)
        assert [statuses[run] for run in history.ended] == ["SUCCESS", "FAILURE"]
        assert [statuses[run] for run in history.unfinished] == ["EXECUTING", "QUEUED"]
        assert statuses[history.recent[0]] == "SUCCESS"
        return history


async def status_of(engine: AsyncEngine) -> dict[UUID, str]:
    async with engine.connect() as conn:
        return {row.id: row.status for row in await conn.execute(text("SELECT id, status FROM run_status"))}


async def test_runs_that_ended_before_the_cutoff_go_with_their_history_and_come_back_from_the_archive(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint, tmp_path: Path
) -> None:
    history = await History.build(container, environment, compat_endpoint)
    engine = container.engine
    records = [await record_of(engine, run) for run in history.ended]
    kept_ids = [*history.unfinished, *history.recent, history.dispatchers["waiting"]]
    kept_ids += [await record_of(engine, run) for run in [*history.unfinished, *history.recent]]
    removed_ids = [*history.ended, history.dispatchers["ended"], *records]
    before = await snapshot(engine)
    removed_events = await events_of(engine, removed_ids)
    kept_events = await events_of(engine, kept_ids)
    assert len({row[1] for row in removed_events}) == 5

    archive = Archive(tmp_path / "archive")
    retention = Retention(RetentionStore(engine), batch_runs=1)  # a batch per run: the cursor moves on
    totals = await retention.sweep(history.cutoff, archive.keep)

    assert (totals.runs, totals.dispatchers, totals.event_records) == (2, 1, 2)
    assert totals.events == len(removed_events)
    assert await events_of(engine, removed_ids) == []
    assert await events_of(engine, kept_ids) == kept_events
    after = await snapshot(engine)
    gone = {*history.ended, history.dispatchers["ended"]}
    expected = {name: [row for row in rows if row[0] not in gone] for name, rows in before.items()}
    assert after == expected
    assert {row[0] for row in after["run_status"]} == {*history.unfinished, *history.recent}
    assert all(after[name] == before[name] and before[name] for name in ("environments", "endpoints", "jobs"))

    again = await retention.sweep(history.cutoff, archive.keep)
    assert (again.runs, again.events) == (0, 0)
    assert await snapshot(engine) == after

    # The archive holds exactly what went, a file per day the runs ended.
    files = sorted((tmp_path / "archive").glob("*/*.jsonl.gz"))
    assert files and archive.files_written == len(files) == 2  # two batches, one day
    assert {path.parent.name for path in files} == {history.cutoff.astimezone(UTC).date().isoformat()}
    lines = [msgspec.json.decode(line) for path in files for line in gzip.open(path).read().splitlines()]
    assert sorted((line["kind"], line["id"]) for line in lines) == sorted(
        [("run", str(run)) for run in history.ended]
        + [("dispatcher", str(history.dispatchers["ended"]))]
        + [("event_record", str(record)) for record in records]
    )
    archived = sorted(
        (event["position"], UUID(line["id"]), event["version"], event["topic"], msgspec.json.encode(event["state"]))
        for line in lines
        for event in line["events"]
    )
    assert [(p, i, v, t) for p, i, v, t, _ in archived] == [row[:4] for row in removed_events]
    assert [msgspec.json.decode(row[4]) for row in archived] == [msgspec.json.decode(row[4]) for row in removed_events]
    assert lines[0]["events"][0]["state"]["timestamp"]  # readable as it is: the event's own fields

    # A rebuild after retention gives the same read models, minus the removed runs.
    await rebuild(engine, container.store.read_all_fields)
    assert await snapshot(engine) == after

    # Restored from the archive, everything is as it was before retention; a second restore adds nothing.
    store = RetentionStore(engine)
    assert sum([await store.restore(read_streams(path)) for path in files]) == 5
    assert await events_of(engine, removed_ids) == removed_events
    assert await snapshot(engine) == before
    assert sum([await store.restore(read_streams(path)) for path in files]) == 0
    run = await container.store.get(history.ended[0], JobRun)
    assert run is not None and run.status.value == "SUCCESS"


async def test_a_dry_run_changes_nothing_and_counts_what_a_run_removes(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    history = await History.build(container, environment, compat_endpoint)
    before = await snapshot(container.engine)
    events_before = await events_of(container.engine, [*history.ended, *history.unfinished, *history.recent])
    retention = Retention(RetentionStore(container.engine))

    dry = await retention.sweep(history.cutoff, dry_run=True)

    assert await snapshot(container.engine) == before
    assert await events_of(container.engine, [*history.ended, *history.unfinished, *history.recent]) == events_before
    real = await retention.sweep(history.cutoff)
    assert dry == real and real.runs == 2


async def test_a_run_with_a_message_still_to_deliver_is_kept(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    history = await History.build(container, environment, compat_endpoint)
    ended = history.ended[0]
    async with container.engine.begin() as conn:  # a notification of its end, not handled yet
        await conn.execute(
            text("INSERT INTO outbox (topic, key, value) VALUES ('job-execution', :key, '\\x7b7d')"),
            {"key": f"{ended}/some-task"},
        )
    totals = await Retention(RetentionStore(container.engine)).sweep(history.cutoff)
    assert (totals.runs, totals.kept) == (1, 1)
    assert ended in await status_of(container.engine)


async def test_the_worker_applies_the_retention_setting_and_a_removed_run_is_a_clean_404(
    api: httpx.AsyncClient, container: Container, settings: Settings
) -> None:
    # The `api` fixture's stack has no retention; a second worker with one does the sweeping.
    waiting = await start_test_run(api, "waits", {"seconds": 300})
    done = await start_test_run(api, "return-value")
    await finished(api, done)
    await in_status(api, waiting, {"WAITING_TO_CONTINUE"})
    roles = await start_roles(replace_retention(settings, seconds=2), "worker")
    try:

        async def gone() -> bool:
            return (await api.get(f"/api/v2/runs/{done}")).status_code == 404

        await wait_for(gone, timeout=30)
    finally:
        await stop_roles(roles)
    response = await api.get(f"/api/v2/runs/{done}")
    never_id = str(uuid4())
    never = await api.get(f"/api/v2/runs/{never_id}")
    assert response.status_code == never.status_code == 404  # as if it never existed
    assert response.text == never.text.replace(never_id, done) and response.json()["message"] == f"run {done} not found"
    assert (await api.get(f"/api/v1/runs/{done}/events")).status_code == 404
    assert (await api.get(f"/api/v2/runs/{waiting}")).json()["status"] == "WAITING_TO_CONTINUE"


def replace_retention(settings: Settings, seconds: float) -> Settings:
    from dataclasses import replace

    return replace(settings, retention_days=seconds / 86_400)


async def test_the_keeper_sweeps_again_and_again(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    keeper = RetentionKeeper(Retention(RetentionStore(container.engine)), container.outbox, timedelta(seconds=1))
    task = asyncio.create_task(keeper.run())
    try:
        for _ in range(2):
            run = await start(container, environment, "return-value")
            await execute_all(container)

            async def removed(run: UUID = run) -> bool:
                return run not in await status_of(container.engine)

            await wait_for(removed, timeout=20)
    finally:
        task.cancel()
    assert keeper.removed == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["retention", "run"], "--older-than"),
        (["retention", "run", "--older-than", "30"], "whole number followed by s, m, h or d"),
        (["retention", "run", "--older-than", "0d"], "more than 0"),
        (["retention", "run", "--older-than", "1d", "--batch", "0"], "from 1 to 10000"),
    ],
)
def test_bad_arguments_are_a_clear_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exit:
        cli_main(argv)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_an_archive_that_is_a_file_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit:
        cli_main(["retention", "run", "--older-than", "1d", "--archive", str(tmp_path / "file")])
    assert exit.value.code == 2
    assert "is not a directory" in capsys.readouterr().err


async def test_the_command_as_an_operator_runs_it(
    container: Container,
    environment: EnvironmentInfo,
    compat_endpoint: NodeEndpoint,
    database_url: str,
    secret_key: str,
    tmp_path: Path,
) -> None:
    history = await History.build(container, environment, compat_endpoint)
    await asyncio.sleep(10)  # every run of the history ended more than 10 s ago
    before = await snapshot(container.engine)

    young = jobs_service(database_url, secret_key, "retention", "run", "--older-than", "1h", "--dry-run")
    assert young.returncode == 0, young.stderr
    assert young.stdout.startswith("would remove 0 runs, 0 dispatchers and 0 event records (0 events)")
    dry = jobs_service(database_url, secret_key, "retention", "run", "--older-than", "10s", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would remove 3 runs, 1 dispatchers and 3 event records (")
    assert "100%" in dry.stderr  # progress
    assert await snapshot(container.engine) == before

    archive = tmp_path / "archive"
    ran = jobs_service(database_url, secret_key, "retention", "run", "--older-than", "10s", "--archive", str(archive))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("removed 3 runs, 1 dispatchers and 3 event records (")
    assert f"under {archive}" in ran.stdout
    assert set(await status_of(container.engine)) == set(history.unfinished)

    files = [str(path) for path in sorted(archive.glob("*/*.jsonl.gz"))]
    restored = jobs_service(database_url, secret_key, "retention", "restore", *files)
    assert restored.returncode == 0, restored.stderr
    assert (
        restored.stdout.strip() == f"restored 7 streams from {len(files)} files"
    )  # 3 runs, their 3 records, 1 dispatcher
    assert await snapshot(container.engine) == before

    (tmp_path / "broken.jsonl.gz").write_bytes(b"not gzip")
    broken = jobs_service(database_url, secret_key, "retention", "restore", str(tmp_path / "broken.jsonl.gz"))
    assert broken.returncode == 1
    assert broken.stderr.startswith(f"jobs-service: cannot read {tmp_path / 'broken.jsonl.gz'}: ")


async def test_sweepers_at_the_same_time_take_turns_and_remove_each_run_once(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    history = await History.build(container, environment, compat_endpoint)
    sweepers = [Retention(RetentionStore(container.engine), batch_runs=1) for _ in range(3)]

    totals = await asyncio.gather(*(sweeper.sweep(history.cutoff) for sweeper in sweepers))

    assert sum(t.runs for t in totals) == 2 and sum(t.event_records for t in totals) == 2
    assert sum(t.dispatchers for t in totals) == 1
    assert set(await status_of(container.engine)) == {*history.unfinished, *history.recent}


async def test_an_archive_that_cannot_be_written_removes_nothing(
    container: Container,
    environment: EnvironmentInfo,
    compat_endpoint: NodeEndpoint,
    database_url: str,
    secret_key: str,
    tmp_path: Path,
) -> None:
    history = await History.build(container, environment, compat_endpoint)
    before = await snapshot(container.engine)
    blocked = tmp_path / "archive"
    blocked.mkdir()
    (blocked / history.cutoff.astimezone(UTC).date().isoformat()).write_text("a file where a day's folder goes")
    await asyncio.sleep(1.1)  # the runs of the history ended more than a second ago

    ran = jobs_service(database_url, secret_key, "retention", "run", "--older-than", "1s", "--archive", str(blocked))

    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1].startswith("jobs-service: cannot write the archive: ")
    assert await snapshot(container.engine) == before
    assert history.ended[0] in await status_of(container.engine)
