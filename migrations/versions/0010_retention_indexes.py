"""What retention looks runs up by: the runs that ended, in order of their end, and a run's dispatchers
(0009's index on a run's event record tells whether another run was still started by it). Partial where it can
be, so an unfinished run costs the write path nothing more.

Revision ID: 0010
Revises: 0009
"""

from migrations.sql import execute_all

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = (
    "CREATE INDEX run_status_ended_idx ON run_status (completed_at, id) WHERE completed_at IS NOT NULL",
    "CREATE INDEX event_dispatchers_run_idx ON event_dispatchers (run_id)",
)

DOWNGRADE = (
    "DROP INDEX event_dispatchers_run_idx",
    "DROP INDEX run_status_ended_idx",
)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
