"""An outbox row stays until a worker has handled its message: the relay records where it published it
(topic, partition, offset), and the worker deletes it once handled, before committing its offset. A row
whose offset the broker no longer holds, or that the consumer group passed, is evidence of a lost message.

Revision ID: 0006
Revises: 0005
"""

from migrations.sql import execute_all

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = (
    """
ALTER TABLE outbox
    ADD COLUMN published_at timestamptz,
    ADD COLUMN kafka_topic text,
    ADD COLUMN kafka_partition integer,
    ADD COLUMN kafka_offset bigint
    """,
    "DROP INDEX outbox_due_idx",
    "CREATE INDEX outbox_due_idx ON outbox (available_at, id) WHERE published_at IS NULL",
    """
CREATE INDEX outbox_published_idx ON outbox (kafka_topic, kafka_partition, kafka_offset)
    WHERE published_at IS NOT NULL
    """,
)

DOWNGRADE = (
    "DELETE FROM outbox WHERE published_at IS NOT NULL",
    "DROP INDEX outbox_published_idx",
    "DROP INDEX outbox_due_idx",
    "CREATE INDEX outbox_due_idx ON outbox (available_at, id)",
    "ALTER TABLE outbox DROP COLUMN published_at, DROP COLUMN kafka_topic, DROP COLUMN kafka_partition, "
    "DROP COLUMN kafka_offset",
)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
