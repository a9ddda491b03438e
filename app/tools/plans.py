"""`python -m app.tools.plans [--events N] [--output docs/plans.md]`: the plans of the read queries that must
stay fast with a long history, over a history loaded as `bench --history` loads it.

On `DATABASE_URL` (a fresh database beside it) or an embedded PostgreSQL, it migrates, loads N events of
finished runs (app/tools/bench/history.py) and a few hundred open runs, then runs EXPLAIN (ANALYZE, BUFFERS) on
each query exactly as the code sends it, and writes a Markdown page: per query the scans and indexes used,
rows, buffers and time, then the plan itself.
"""

import argparse
import asyncio
import json
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Select, TextClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.adapters import backlog, outbox, reads
from app.adapters.db import migrate
from app.dashboard import overview, queries
from app.progress import ProgressBar
from app.tools.bench.history import HISTORY_JOBS, HistoryShape, load_history

OPEN_RUNS = 300
# Open runs beside the history, as a busy environment has them (not event-sourced: only the plans read them).
_OPEN = text(
    "INSERT INTO run_status (id, environment_id, job_slug, job_version, event_record_id, status, attempt, is_test, "
    "priority, tags, created_at, started_at, updated_at, lease_until, next_due_at, concurrency_key) "
    "SELECT gen_random_uuid(), :env, 'noop', '1.0.0', gen_random_uuid(), s.status, 1, false, 0, '[]', now(), "
    "CASE WHEN s.status = 'EXECUTING' THEN now() END, now(), "
    "CASE WHEN s.status = 'EXECUTING' THEN now() + interval '60 seconds' END, "
    "CASE WHEN s.status <> 'EXECUTING' THEN now() END, NULL "
    "FROM generate_series(1, :n) g, LATERAL (SELECT (ARRAY['QUEUED', 'EXECUTING', 'WAITING_TO_CONTINUE'])[g % 3 + 1] "
    "AS status) s"
)
# A queue a busy relay and worker keep: published rows waiting for their worker, and rows not published yet.
_OUTBOX = text(
    "INSERT INTO outbox (topic, key, value, published_at, kafka_topic, kafka_partition, kafka_offset) "
    "SELECT 'job-execution', gen_random_uuid()::text, 'x', CASE WHEN g % 2 = 0 THEN now() END, "
    "CASE WHEN g % 2 = 0 THEN 'job-execution' END, CASE WHEN g % 2 = 0 THEN 0 END, CASE WHEN g % 2 = 0 THEN g END "
    "FROM generate_series(1, :n) g"
)
# The environments and jobs the history's runs belong to, as registering them would have made them.
_CATALOG = (
    text(
        "INSERT INTO environments (id, slug, type, created_at, updated_at) SELECT environment_id, "
        "'history-' || left(environment_id::text, 8), 'PRODUCTION', now(), now() FROM run_status "
        "GROUP BY environment_id"
    ),
    text(
        "INSERT INTO jobs (environment_id, slug, title, endpoint_id, latest_version, event_name, created_at, "
        "updated_at) SELECT environment_id, job_slug, job_slug, gen_random_uuid(), '1.0.0', 'history', now(), now() "
        "FROM run_status GROUP BY environment_id, job_slug"
    ),
)
_SAMPLE = text(
    "SELECT id, event_record_id, created_at FROM run_status WHERE environment_id = :env AND status = 'SUCCESS' "
    "ORDER BY created_at DESC OFFSET 1000 LIMIT 1"
)


@dataclass(frozen=True)
class Query:
    name: str
    where: str  # which code sends it
    statement: TextClause | Select[Any]
    params: dict[str, Any]


def plan_queries(env: UUID, run: Any) -> Iterator[Query]:
    """Every read that a long history could slow: the runs list and its filters, the dashboard's, the status
    readings', the rescuer's and the relay's periodic queries."""
    runs = reads.RunFilter
    page = reads.MAX_TAKE + 1
    yield Query("runs list", "API /api/v1/runs, dashboard Runs", reads.runs_page(env, runs(), page, None), {})
    after = (run.created_at, run.id)
    yield Query("runs list, next page", "the same with a cursor", reads.runs_page(env, runs(), page, after), {})
    for label, where in (
        ("by job", runs(job=HISTORY_JOBS[2])),
        ("by status (rare)", runs(status="FAILURE")),
        ("by status (open)", runs(status="EXECUTING")),
        ("by tag", runs(tag="customer-7")),
        ("by job and status", runs(job=HISTORY_JOBS[2], status="FAILURE")),
    ):
        yield Query(
            f"runs list {label}", "API /api/v1/runs?…, dashboard filters", reads.runs_page(env, where, page, None), {}
        )
    yield Query("a run", "GET /api/v2/runs/{id}", reads._RUN, {"id": run.id, "env": env})
    yield Query(
        "runs of an event", "GET /api/v2/events/{id}", reads._RUNS_OF_EVENT, {"env": env, "record": run.event_record_id}
    )
    yield Query(
        "open runs of a job",
        "cancel-runs of a job",
        reads._OPEN_RUNS_OF_JOB,
        {"env": env, "job": "noop", "open": reads._OPEN_STATUSES},
    )
    yield Query("expired leases", "worker rescuer", reads._EXPIRED_LEASES, {"n": 100})
    yield Query("orphaned runs", "worker rescuer", reads._ORPHANED, {"grace": 30.0, "n": 100})
    yield Query("outbox claim", "relay", outbox._CLAIM, {"limit": 500})
    yield Query("outbox next due", "relay", outbox._NEXT_DUE, {})
    yield Query(
        "outbox rows past a log's end",
        "worker rescuer",
        outbox._PAST_END,
        {"topic": "job-execution", "partition": 0, "end": 900, "before": datetime.now(UTC), "n": 100},
    )
    yield Query("runs by status, last 15 min", "jobs-service status", backlog._RUNS_BY_STATUS, {"seconds": 900})
    yield Query("oldest due run", "jobs-service status", backlog._OLDEST_DUE, {})
    since = datetime.now(UTC) - timedelta(hours=1)
    yield Query("runs per minute, last hour", "dashboard Overview", overview._PER_MINUTE, {"env": env, "since": since})
    yield Query("queue figures", "dashboard Overview", overview._QUEUE, {"env": env})
    yield Query("run counts per job", "dashboard Jobs", queries._COUNTS, {"env": env})
    yield Query("last run per job", "dashboard Jobs", queries._LAST_RUNS, {"env": env})


async def explain(engine: AsyncEngine, query: Query) -> tuple[dict[str, Any], str]:
    sql, params = statement_sql(query)
    async with engine.connect() as conn:
        document = (await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"), params)).scalar_one()
        lines = (await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"), params)).scalars().all()
    plan = document[0] if isinstance(document, list) else json.loads(document)[0]
    return plan, "\n".join(lines)


def statement_sql(query: Query) -> tuple[str, dict[str, Any]]:
    if isinstance(query.statement, TextClause):
        return query.statement.text, query.params
    dialect = postgresql.psycopg2.dialect()  # type: ignore[no-untyped-call]
    compiled = query.statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = {name: json.dumps(v) if isinstance(v, list) else v for name, v in compiled.params.items()}
    # Named `:x` parameters for text(), without the `::type` some types add (text() reads `:x::t` as no
    # parameter); PostgreSQL infers each type from the column it is compared with.
    sql = re.sub(r"%\((\w+)\)s(::[A-Z]+(?: WITH(?:OUT)? TIME ZONE)?)?", r":\1", str(compiled))
    return sql, params


def summary(plan: dict[str, Any]) -> dict[str, Any]:
    scans: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Scan" in node["Node Type"]:
            index = node.get("Index Name")
            table = node.get("Relation Name")  # none on a bitmap index scan: its heap scan names it
            scans.append(node["Node Type"] + (f" on {table}" if table else "") + (f" using {index}" if index else ""))
        for child in node.get("Plans", []):
            walk(child)

    top = plan["Plan"]
    walk(top)
    return {
        "scans": scans,
        "rows": f"{top.get('Actual Rows', 0):g}",  # PostgreSQL 18 gives an average per loop, 51.0
        "buffers": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
        "ms": round(plan["Execution Time"], 3),
    }


async def write_plans(engine: AsyncEngine, events: int, output: Path) -> None:
    env = uuid.uuid4()
    print(f"loading {events:,} events of history")
    await load_history(engine, HistoryShape(events, env), ProgressBar("history", width=20))
    async with engine.begin() as conn:
        await conn.execute(_OPEN, {"env": env, "n": OPEN_RUNS})
        await conn.execute(_OUTBOX, {"n": 2000})
        for statement in _CATALOG:
            await conn.execute(statement)
        run = (await conn.execute(_SAMPLE, {"env": env})).one()
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE run_status, outbox, environments, jobs"))
        version = (await conn.execute(text("SHOW server_version"))).scalar_one()
        total = (await conn.execute(text("SELECT count(*) FROM run_status"))).scalar_one()
    sections, table = [], []
    for query in plan_queries(env, run):
        plan, shown = await explain(engine, query)
        figures = summary(plan)
        scans = "; ".join(figures["scans"]) or "no scan"
        seq = any(
            s.startswith("Seq Scan on run_status") or s.startswith("Seq Scan on events") for s in figures["scans"]
        )
        table.append(
            f"| {query.name} | {query.where} | {scans} | {figures['rows']} | {figures['buffers']} | {figures['ms']} |"
            + (" ⚠ |" if seq else " |")
        )
        sections.append(f"### {query.name}\n\n```\n{statement_sql(query)[0]}\n```\n\n```\n{shown}\n```\n")
    page = [
        "# Query plans with a long history",
        "",
        f"Written by `python -m app.tools.plans --events {events}` (PostgreSQL {version}): {events:,} events "
        f"of finished runs loaded as `bench --history` loads them ({total:,} runs in 4 environments over 30 "
        f"days, {OPEN_RUNS} of them open, and 2,000 outbox rows, half of them published), then "
        "EXPLAIN (ANALYZE, BUFFERS) of each query as the code sends it. "
        "Rows: what the top node returned; buffers: shared pages hit or read; ⚠: a sequential scan of a big table.",
        "",
        "| query | sent by | scans | rows | buffers | ms | |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *table,
        "",
        "## Plans",
        "",
        *sections,
    ]
    await asyncio.to_thread(output.write_text, "\n".join(page))
    print(f"wrote {output}")


async def _main(events: int, output: Path, database_url: str | None) -> None:
    from app.tools.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="jobs-plans-") as work:
        if database_url is None:
            with EmbeddedPostgres(Path(work) / "postgres") as postgres:
                await _on_fresh_database(postgres.url, events, output)
        else:
            await _on_fresh_database(database_url, events, output)


async def _on_fresh_database(server_url: str, events: int, output: Path) -> None:
    name = f"jobs_plans_{uuid.uuid4().hex[:8]}"
    url = make_url(server_url)
    admin = create_async_engine(url.set(drivername="postgresql+asyncpg"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    database = url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    try:
        await migrate(database)
        engine = create_async_engine(database)
        try:
            await write_plans(engine, events, output)
        finally:
            await engine.dispose()
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


def main() -> None:
    from app.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m app.tools.plans", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events of history (1,000,000)")
    parser.add_argument("--output", type=Path, default=Path("docs/plans.md"))
    args = parser.parse_args()
    if args.events < 1:
        parser.error(f"--events must be above 0, got {args.events}")
    asyncio.run(_main(args.events, args.output, Settings.from_env().database_url))


if __name__ == "__main__":
    main()
