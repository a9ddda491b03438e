"""History that slows nothing: indexes for the runs list and its filters over a long history, and autovacuum
and fillfactor for the tables the pipeline churns.

Indexes (plans in docs/plans.md, `python -m app.tools.plans` writes them again):
- `run_status_status_idx` (environment, status, newest first): the runs list filtered by status, a job's open
  runs, the Overview's queue; without it a rare status is looked for through the whole history.
- `run_status_event_record_idx`: the runs an event started (`GET /api/v2/events/{id}`), a full scan before.
- `run_status_job_idx` is made again with `id DESC`, the runs list's order, so that a job's newest runs (the
  list filtered by job, the dashboard's last run per job) are read from it in order, without a sort.
- `run_status_lease_idx` goes: the rescuer's expired leases are the few EXECUTING rows, which
  `run_status_executing_idx` holds already. No index names `lease_until` any more, so a lease extension (the
  only update of a running run) is a HOT update: no index entry, no dead index tuple.

Autovacuum: by default a table is vacuumed once 20% of it is dead, which for run_status with a long history
is never during a soak: its dead versions (two per run, as QUEUED → EXECUTING → SUCCESS each change an
indexed column) pile up in the hot, recent pages every run touches. The hot tables are vacuumed after a fixed
number of dead rows instead, unthrottled or nearly so; fillfactor leaves room on each page for the new
version of an updated row (HOT when no indexed column changes, and on the same page either way).

Revision ID: 0009
Revises: 0008
"""

from migrations.sql import execute_all

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Storage parameters per table: what the test checks against pg_class.reloptions.
RELOPTIONS: dict[str, dict[str, str]] = {
    "run_status": {
        "fillfactor": "90",
        "autovacuum_vacuum_scale_factor": "0",
        "autovacuum_vacuum_threshold": "5000",
        "autovacuum_vacuum_insert_scale_factor": "0.05",
        "autovacuum_analyze_scale_factor": "0.02",
        "autovacuum_vacuum_cost_delay": "1",
        "autovacuum_vacuum_cost_limit": "2000",
    },
    # A queue: each row inserted, updated once (published) and deleted. Small when vacuumed often.
    "outbox": {
        "fillfactor": "80",
        "autovacuum_vacuum_scale_factor": "0",
        "autovacuum_vacuum_threshold": "2000",
        "autovacuum_analyze_scale_factor": "0",
        "autovacuum_analyze_threshold": "2000",
        "autovacuum_vacuum_cost_delay": "0",
    },
    # Append-only: vacuumed for its visibility map (index-only scans of positions), analyzed as it grows.
    "events": {
        "autovacuum_vacuum_insert_scale_factor": "0.05",
        "autovacuum_analyze_scale_factor": "0.02",
        "autovacuum_vacuum_cost_limit": "2000",
    },
    "event_dispatchers": {
        "fillfactor": "90",
        "autovacuum_vacuum_scale_factor": "0.02",
        "autovacuum_vacuum_threshold": "500",
        "autovacuum_vacuum_cost_delay": "0",
    },
    "schedules": {
        "fillfactor": "80",
        "autovacuum_vacuum_scale_factor": "0.05",
        "autovacuum_vacuum_threshold": "200",
        "autovacuum_vacuum_cost_delay": "0",
    },
    # A store's value is replaced in place: no index names it, so with room on the page each write is HOT.
    "kv_items": {
        "fillfactor": "80",
        "autovacuum_vacuum_scale_factor": "0.05",
        "autovacuum_vacuum_threshold": "200",
        "autovacuum_vacuum_cost_delay": "0",
    },
}

INDEXES = {
    "run_status_status_idx": "run_status (environment_id, status, created_at DESC, id DESC)",
    "run_status_event_record_idx": "run_status (event_record_id)",  # also retention's: is a record still used?
}


def _set(table: str, options: dict[str, str]) -> str:
    return f"ALTER TABLE {table} SET (" + ", ".join(f"{name} = {value}" for name, value in options.items()) + ")"


def _reset(table: str, options: dict[str, str]) -> str:
    return f"ALTER TABLE {table} RESET (" + ", ".join(options) + ")"


UPGRADE = (
    *(_set(table, options) for table, options in RELOPTIONS.items()),
    *(f"CREATE INDEX {name} ON {definition}" for name, definition in INDEXES.items()),
    "DROP INDEX run_status_lease_idx",
    "DROP INDEX run_status_job_idx",
    "CREATE INDEX run_status_job_idx ON run_status (environment_id, job_slug, created_at DESC, id DESC)",
)

DOWNGRADE = (
    "DROP INDEX run_status_job_idx",
    "CREATE INDEX run_status_job_idx ON run_status (environment_id, job_slug, created_at DESC, id)",
    "CREATE INDEX run_status_lease_idx ON run_status (lease_until) WHERE status = 'EXECUTING'",
    *(f"DROP INDEX {name}" for name in INDEXES),
    *(_reset(table, options) for table, options in RELOPTIONS.items()),
)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
