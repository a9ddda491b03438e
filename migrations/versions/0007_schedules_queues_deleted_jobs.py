"""Schedules (scheduled jobs and DynamicSchedule registrations), queues (named concurrency groups), and deleted
jobs.

Revision ID: 0007
Revises: 0006
"""

from migrations.sql import execute_all

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = (
    """
CREATE TABLE schedules (
    id uuid PRIMARY KEY,
    environment_id uuid NOT NULL,
    endpoint_id uuid NOT NULL,
    key text NOT NULL,
    owner text NOT NULL,
    dynamic boolean NOT NULL,
    schedule jsonb NOT NULL,
    metadata jsonb,
    active boolean NOT NULL,
    next_tick_at timestamptz,
    last_tick_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)
    """,
    "CREATE INDEX schedules_environment_idx ON schedules (environment_id, key)",
    "CREATE INDEX schedules_endpoint_idx ON schedules (endpoint_id) WHERE active AND NOT dynamic",
    "CREATE INDEX schedules_due_idx ON schedules (next_tick_at) WHERE active",
    """
CREATE TABLE queues (
    id uuid PRIMARY KEY,
    environment_id uuid NOT NULL,
    name text NOT NULL,
    concurrency_limit integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (environment_id, name)
)
    """,
    "ALTER TABLE jobs ADD COLUMN deleted_at timestamptz",
    "CREATE INDEX run_status_queue_idx ON run_status (environment_id, concurrency_key, status) "
    "WHERE concurrency_key IS NOT NULL",
)

DOWNGRADE = (
    "DROP INDEX run_status_queue_idx",
    "DELETE FROM jobs WHERE deleted_at IS NOT NULL",
    "ALTER TABLE jobs DROP COLUMN deleted_at",
    "DROP TABLE queues",
    "DROP TABLE schedules",
)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
