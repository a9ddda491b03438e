"""The key-value store (io.store / client.store) and the event dispatchers of io.waitForEvent.

`kv_items` is state of its own, written transactionally (a store's value is replaced, not accumulated: keeping
every write as an event would grow without bound and nothing derives from it). `event_dispatchers` is a read
model of the EventDispatcher aggregate: the dispatchers still waiting, found when an event is recorded.

Revision ID: 0008
Revises: 0007
"""

from migrations.sql import execute_all

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = (
    """
CREATE TABLE kv_items (
    environment_id uuid NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, key)
)
    """,
    """
CREATE TABLE event_dispatchers (
    id uuid PRIMARY KEY,
    environment_id uuid NOT NULL,
    names jsonb NOT NULL,
    source text NOT NULL,
    payload_filter jsonb,
    context_filter jsonb,
    run_id uuid NOT NULL,
    task_id text NOT NULL,
    expires_at timestamptz NOT NULL,
    matched_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)
    """,
    "CREATE INDEX event_dispatchers_waiting_idx ON event_dispatchers (environment_id) WHERE matched_at IS NULL",
)

DOWNGRADE = ("DROP TABLE event_dispatchers", "DROP TABLE kv_items")


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
