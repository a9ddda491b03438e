"""Run control: concurrency keys, listing and tag indexes, withdrawing a run's outbox rows.

Revision ID: 0002
Revises: 0001
"""

from migrations.sql import execute_all

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = (
    "ALTER TABLE run_status ADD COLUMN concurrency_key text",
    "CREATE INDEX run_status_env_created_idx ON run_status (environment_id, created_at DESC, id DESC)",
    "CREATE INDEX run_status_tags_idx ON run_status USING gin (tags jsonb_path_ops)",
    "CREATE INDEX run_status_executing_idx ON run_status (environment_id, concurrency_key) WHERE status = 'EXECUTING'",
    "CREATE INDEX outbox_key_idx ON outbox (key)",
)

DOWNGRADE = (
    "DROP INDEX outbox_key_idx",
    "DROP INDEX run_status_executing_idx",
    "DROP INDEX run_status_tags_idx",
    "DROP INDEX run_status_env_created_idx",
    "ALTER TABLE run_status DROP COLUMN concurrency_key",
)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
