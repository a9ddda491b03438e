"""Event store, outbox, secrets and the first read models.

Revision ID: 0001
Revises:
"""

from migrations.sql import execute_all

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = (
    """
CREATE TABLE events (
    position bigint GENERATED ALWAYS AS IDENTITY,
    originator_id uuid NOT NULL,
    originator_version integer NOT NULL,
    topic text NOT NULL,
    state bytea NOT NULL,
    tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (originator_id, originator_version)
)
    """,
    """
CREATE UNIQUE INDEX events_position_idx ON events (position)
    """,
    """
CREATE TABLE outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    available_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
)
    """,
    """
CREATE INDEX outbox_due_idx ON outbox (available_at, id)
    """,
    """
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$
    """,
    """
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()
    """,
    """
CREATE TABLE environment_secrets (
    environment_id uuid PRIMARY KEY,
    api_key text NOT NULL
)
    """,
    """
CREATE TABLE environments (
    id uuid PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    type text NOT NULL,
    api_key_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)
    """,
    """
CREATE TABLE endpoints (
    id uuid PRIMARY KEY,
    environment_id uuid NOT NULL,
    slug text NOT NULL,
    url text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    indexed_at timestamptz,
    UNIQUE (environment_id, slug)
)
    """,
    """
CREATE TABLE jobs (
    environment_id uuid NOT NULL,
    slug text NOT NULL,
    title text NOT NULL,
    endpoint_id uuid NOT NULL,
    latest_version text NOT NULL,
    event_name text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (environment_id, slug)
)
    """,
    """
CREATE TABLE job_versions (
    environment_id uuid NOT NULL,
    job_slug text NOT NULL,
    version text NOT NULL,
    endpoint_id uuid NOT NULL,
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (environment_id, job_slug, version)
)
    """,
    """
CREATE TABLE run_status (
    id uuid PRIMARY KEY,
    environment_id uuid NOT NULL,
    job_slug text NOT NULL,
    job_version text NOT NULL,
    event_record_id uuid NOT NULL,
    status text NOT NULL,
    attempt integer NOT NULL,
    is_test boolean NOT NULL,
    priority integer NOT NULL,
    tags jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    updated_at timestamptz NOT NULL,
    completed_at timestamptz,
    output jsonb,
    error jsonb
)
    """,
    """
CREATE INDEX run_status_job_idx ON run_status (environment_id, job_slug, created_at DESC, id)
    """,
)

DOWNGRADE = (
    "DROP TABLE run_status, job_versions, jobs, endpoints, environments, environment_secrets, outbox, events",
    "DROP FUNCTION outbox_notify()",
)


def upgrade() -> None:
    execute_all(UPGRADE)


def downgrade() -> None:
    execute_all(DOWNGRADE)
