"""A long history: the loader of `bench --history`, the indexes that keep the runs list off the history, and the
autovacuum settings of the tables the pipeline churns (migration 0009)."""

import importlib
import uuid
from typing import Any

from sqlalchemy import text

from app.adapters import reads
from app.container import Container
from app.tools.bench.history import EVENTS_PER_RUN, HistoryShape, load_history
from app.tools.plans import Query, statement_sql
from projections.rebuild import rebuild

MIGRATION = importlib.import_module("migrations.versions.0009_history_and_churn")
_ROWS = text("SELECT * FROM run_status ORDER BY id")


def _no_progress(done: int, total: int) -> None:
    pass


async def test_the_hot_tables_carry_their_autovacuum_settings(container: Container) -> None:
    async with container.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(:names) AND relkind = 'r'"),
            {"names": list(MIGRATION.RELOPTIONS)},
        )
        stored = {name: dict(option.split("=", 1) for option in options or []) for name, options in rows}
        indexes = set(
            (await conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'run_status'"))).scalars()
        )
        job_index = (
            await conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'run_status_job_idx'"))
        ).scalar_one()
    assert stored == MIGRATION.RELOPTIONS
    assert stored["run_status"]["autovacuum_vacuum_scale_factor"] == "0"  # by count of dead rows, not by share
    assert set(MIGRATION.INDEXES) <= indexes
    assert "run_status_lease_idx" not in indexes  # no index names lease_until: a lease extension is HOT
    assert job_index.endswith("(environment_id, job_slug, created_at DESC, id DESC)")


async def test_the_loader_writes_consistent_events_and_rows_that_a_rebuild_gives_again(container: Container) -> None:
    environment = uuid.uuid4()
    runs = await load_history(container.engine, HistoryShape(3000, environment, days=3), _no_progress)
    async with container.engine.connect() as conn:
        events = (await conn.execute(text("SELECT count(*) FROM events"))).scalar_one()
        by_topic = dict((await conn.execute(text("SELECT topic, count(*) FROM events GROUP BY topic"))).all())
        by_status = dict((await conn.execute(text("SELECT status, count(*) FROM run_status GROUP BY status"))).all())
        own = (
            await conn.execute(text("SELECT count(*) FROM run_status WHERE environment_id = :e"), {"e": environment})
        ).scalar_one()
        environments = (await conn.execute(text("SELECT count(DISTINCT environment_id) FROM run_status"))).scalar_one()
        spread = (await conn.execute(text("SELECT max(created_at) - min(created_at) FROM run_status"))).scalar_one()
        loaded = [row._asdict() for row in (await conn.execute(_ROWS)).all()]
    assert runs == 1000
    assert events == 3000 == runs * EVENTS_PER_RUN
    assert set(by_topic.values()) == {1000}
    assert sum(by_status.values()) == 1000
    assert set(by_status) == {"SUCCESS", "FAILURE"}
    assert 0 < own < 1000
    assert environments == 4
    assert spread.days >= 2
    replayed = await rebuild(container.engine, container.store.read_all_fields)
    async with container.engine.connect() as conn:
        rebuilt = [row._asdict() for row in (await conn.execute(_ROWS)).all()]
    assert replayed == 3000
    assert rebuilt == loaded


EXPECTED_INDEX = {
    "runs list": "run_status_env_created_idx",
    "runs list, next page": "run_status_env_created_idx",
    "runs list by job": "run_status_job_idx",
    "runs list by status (rare)": "run_status_status_idx",
    "runs of an event": "run_status_event_record_idx",
    "open runs of a job": "run_status_job_status_idx",  # (environment, job, status): exactly the open ones
}


async def test_the_runs_list_and_its_filters_answer_from_indexes_over_a_long_history(container: Container) -> None:
    environment = uuid.uuid4()
    await load_history(container.engine, HistoryShape(60_000, environment), _no_progress)
    async with container.engine.connect() as conn:
        sample = (
            await conn.execute(
                text("SELECT id, event_record_id, created_at FROM run_status WHERE environment_id = :e LIMIT 1"),
                {"e": environment},
            )
        ).one()
    page = reads.MAX_TAKE + 1
    where = reads.RunFilter
    queries = [
        Query("runs list", "", reads.runs_page(environment, where(), page, None), {}),
        Query(
            "runs list, next page", "", reads.runs_page(environment, where(), page, (sample.created_at, sample.id)), {}
        ),
        Query("runs list by job", "", reads.runs_page(environment, where(job="history-report"), page, None), {}),
        Query("runs list by status (rare)", "", reads.runs_page(environment, where(status="FAILURE"), page, None), {}),
        Query("runs list by tag", "", reads.runs_page(environment, where(tag="customer-7"), page, None), {}),
        Query("runs of an event", "", reads._RUNS_OF_EVENT, {"env": environment, "record": sample.event_record_id}),
        Query(
            "open runs of a job",
            "",
            reads._OPEN_RUNS_OF_JOB,
            {"env": environment, "job": "noop", "open": reads._OPEN_STATUSES},
        ),
        Query("expired leases", "", reads._EXPIRED_LEASES, {"n": 100}),
        Query("orphaned runs", "", reads._ORPHANED, {"grace": 30.0, "n": 100}),
    ]
    for query in queries:
        scans = await _scans(container, query)
        assert scans, query.name
        assert not any(node == "Seq Scan" for node, _, _ in scans), (query.name, scans)
        if query.name in EXPECTED_INDEX:
            assert EXPECTED_INDEX[query.name] in {index for _, _, index in scans}, (query.name, scans)


async def _scans(container: Container, query: Query) -> list[tuple[str, str, str | None]]:
    """Each scan of the query's plan: node type, table (or index for a bitmap), index."""
    sql, params = statement_sql(query)
    async with container.engine.connect() as conn:
        plan: Any = (await conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"), params)).scalar_one()
    found: list[tuple[str, str, str | None]] = []

    def walk(node: dict[str, Any]) -> None:
        if "Scan" in node["Node Type"]:
            found.append((node["Node Type"], node.get("Relation Name", ""), node.get("Index Name")))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


async def test_a_lease_extension_is_a_hot_update_and_a_status_change_is_not(container: Container) -> None:
    await load_history(container.engine, HistoryShape(30, uuid.uuid4(), days=1), _no_progress)
    hot = text("SELECT pg_stat_get_xact_tuples_hot_updated('run_status'::regclass)")
    async with container.engine.begin() as conn:
        run_id = (await conn.execute(text("SELECT id FROM run_status LIMIT 1"))).scalar_one()
        await conn.execute(text("UPDATE run_status SET status = 'EXECUTING' WHERE id = :id"), {"id": run_id})
        after_status = (await conn.execute(hot)).scalar_one()
        extend = text("UPDATE run_status SET lease_until = lease_until + interval '1 minute' WHERE id = :id")
        await conn.execute(extend, {"id": run_id})
        after_lease = (await conn.execute(hot)).scalar_one()
    assert after_status == 0  # status is what the partial indexes select on: a new index entry each time
    assert after_lease == 1  # no index names lease_until any more (0009 dropped run_status_lease_idx)
