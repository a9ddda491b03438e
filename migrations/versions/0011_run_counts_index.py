"""The dashboard's run counts per job from an index: `run_status_job_status_idx` (environment, job, status), so
that the Jobs page's `count(*) ... WHERE environment_id = :env GROUP BY job_slug, status` is an index-only scan
in key order (a GroupAggregate, no sort) instead of a sequential scan of every environment's history.

Its keys repeat (a few jobs times a few statuses per environment), so deduplication keeps each key's runs as one
posting list: 2.4 MB for 333k runs, 78 pages read for an environment of 84k runs where the scan read the whole
70 MB table (docs/plans.md). It stays off the heap while the visibility map is fresh, which 0009's
autovacuum settings for run_status see to. A cancel-runs of a job finds a job's open runs in it exactly.

The cost: a status change is never HOT already (run_status_status_idx names status), so this is one more index
entry per run version (three for a run that succeeds), about 4% more WAL per run in `bench --throughput-only`.

Revision ID: 0011
Revises: 0010
"""

from migrations.sql import execute_all

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEX = "run_status_job_status_idx"
UPGRADE = (f"CREATE INDEX {INDEX} ON run_status (environment_id, job_slug, status)",)
DOWNGRADE = (f"DROP INDEX {INDEX}",)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
