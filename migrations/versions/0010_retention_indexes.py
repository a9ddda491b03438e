"""What retention looks runs up by: the runs that ended, in order of their end; a run's event record (is
another run still started by it?) and a run's dispatchers. Partial where it can be, so an unfinished run
costs the write path nothing more.

Revision ID: 0010
Revises: 0008
"""

from migrations.sql import execute_all

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = (
    "CREATE INDEX run_status_ended_idx ON run_status (completed_at, id) WHERE completed_at IS NOT NULL",
    "CREATE INDEX run_status_event_record_idx ON run_status (event_record_id)",
    "CREATE INDEX event_dispatchers_run_idx ON event_dispatchers (run_id)",
)

DOWNGRADE = (
    "DROP INDEX event_dispatchers_run_idx",
    "DROP INDEX run_status_event_record_idx",
    "DROP INDEX run_status_ended_idx",
)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
