"""The Jobs page's run counts per job: right by status, for its environment only, and still right after
retention removes old runs and after a rebuild; read from an index, not from the whole history."""

import uuid
from uuid import UUID

from app.adapters.retention import RetentionStore
from app.container import Container
from app.dashboard import queries
from app.service.environments import EnvironmentInfo
from app.service.retention import Retention
from app.tools.bench.history import HistoryShape, load_history
from app.tools.plans import Query
from projections.rebuild import rebuild
from tests.integration.test_history import _scans
from tests.integration.test_retention import History
from tests.node_endpoint import NodeEndpoint


def _no_progress(done: int, total: int) -> None:
    pass


async def _figures(container: Container, environment: UUID) -> dict[str, tuple[int, dict[str, int]]]:
    found = await queries.runs_by_job(container.service.reads, environment)
    return {job: (runs.total, runs.by_status) for job, runs in found.items()}


async def test_the_jobs_page_counts_each_jobs_runs_by_status_through_retention_and_a_rebuild(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    # Other environments' runs (and jobs) beside this one's: none of them may be counted here.
    others = await load_history(container.engine, HistoryShape(300, uuid.uuid4(), days=1), _no_progress)
    history = await History.build(container, environment, compat_endpoint)

    assert await _figures(container, environment.id) == {
        "return-value": (4, {"SUCCESS": 2, "EXECUTING": 1, "QUEUED": 1}),
        "throws": (1, {"FAILURE": 1}),
    }

    # Retention removes the runs that ended before the cutoff: here one SUCCESS and the FAILURE.
    totals = await Retention(RetentionStore(container.engine)).sweep(history.cutoff)
    assert totals.runs == others + 2
    after_retention = {"return-value": (3, {"SUCCESS": 1, "EXECUTING": 1, "QUEUED": 1})}
    assert await _figures(container, environment.id) == after_retention

    await rebuild(container.engine, container.store.read_all_fields)
    assert await _figures(container, environment.id) == after_retention


async def test_the_counts_are_an_index_only_scan_over_a_long_history(container: Container) -> None:
    environment = uuid.uuid4()
    await load_history(container.engine, HistoryShape(60_000, environment), _no_progress)
    query = Query("run counts per job", "", queries._COUNTS, {"env": environment})
    assert await _scans(container, query) == [("Index Only Scan", "run_status", "run_status_job_status_idx")]
