"""Leases and due times on the run-status read model, for the rescuer.

Revision ID: 0003
Revises: 0002
"""

from migrations.sql import execute_all

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = (
    "ALTER TABLE run_status ADD COLUMN lease_until timestamptz",
    "ALTER TABLE run_status ADD COLUMN next_due_at timestamptz",
    "CREATE INDEX run_status_lease_idx ON run_status (lease_until) WHERE status = 'EXECUTING'",
    "CREATE INDEX run_status_due_idx ON run_status (next_due_at) "
    "WHERE status IN ('QUEUED', 'WAITING_TO_EXECUTE', 'WAITING_TO_CONTINUE')",
)

DOWNGRADE = (
    "DROP INDEX run_status_due_idx",
    "DROP INDEX run_status_lease_idx",
    "ALTER TABLE run_status DROP COLUMN next_due_at",
    "ALTER TABLE run_status DROP COLUMN lease_until",
)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
