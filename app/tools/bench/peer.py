"""The peer for comparison: procrastinate (a PostgreSQL job queue) deferring and working no-op jobs on the
same machine and database server."""

import logging
import time

from sqlalchemy.engine import make_url

from app.tools.bench.figures import Report


async def procrastinate_figures(database_url: str, jobs: int, concurrency: int, report: Report) -> None:
    from procrastinate import App, PsycopgConnector

    logging.getLogger("procrastinate").setLevel(logging.WARNING)

    url = make_url(database_url).set(drivername="postgresql")
    app = App(connector=PsycopgConnector(conninfo=url.render_as_string(hide_password=False)))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        began = time.perf_counter()
        for _ in range(jobs):
            await noop.defer_async()
        deferred = time.perf_counter()
        await app.run_worker_async(concurrency=concurrency, wait=False, install_signal_handlers=False)
        worked = time.perf_counter()
    report.add("peer_procrastinate_defers_per_s", jobs / (deferred - began), "jobs/s")
    report.add("peer_procrastinate_worked_per_s", jobs / (worked - deferred), "jobs/s")
    report.add("peer_procrastinate_end_to_end_per_s", jobs / (worked - began), "jobs/s")
