"""The read-model tables, as SQLAlchemy Core tables (the schema itself lives in the migrations)."""

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()


def _ts(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


environments = Table(
    "environments",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("slug", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("api_key_hash", Text, nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("environment_id", Uuid, nullable=False),
    Column("slug", Text, nullable=False),
    Column("url", Text, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("indexed_at", nullable=True),
)

jobs = Table(
    "jobs",
    metadata,
    Column("environment_id", Uuid, primary_key=True),
    Column("slug", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("endpoint_id", Uuid, nullable=False),
    Column("latest_version", Text, nullable=False),
    Column("event_name", Text, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("deleted_at", nullable=True),
)

job_versions = Table(
    "job_versions",
    metadata,
    Column("environment_id", Uuid, primary_key=True),
    Column("job_slug", Text, primary_key=True),
    Column("version", Text, primary_key=True),
    Column("endpoint_id", Uuid, nullable=False),
    Column("metadata", JSONB, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
)

run_status = Table(
    "run_status",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("environment_id", Uuid, nullable=False),
    Column("job_slug", Text, nullable=False),
    Column("job_version", Text, nullable=False),
    Column("event_record_id", Uuid, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("is_test", Boolean, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("tags", JSONB, nullable=False),
    _ts("created_at"),
    _ts("started_at", nullable=True),
    _ts("updated_at"),
    _ts("completed_at", nullable=True),
    Column("output", JSONB(none_as_null=True), nullable=True),
    Column("error", JSONB(none_as_null=True), nullable=True),
    Column("concurrency_key", Text, nullable=True),
    _ts("lease_until", nullable=True),
    _ts("next_due_at", nullable=True),
)

event_dispatchers = Table(
    "event_dispatchers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("environment_id", Uuid, nullable=False),
    Column("names", JSONB, nullable=False),
    Column("source", Text, nullable=False),
    Column("payload_filter", JSONB(none_as_null=True), nullable=True),
    Column("context_filter", JSONB(none_as_null=True), nullable=True),
    Column("run_id", Uuid, nullable=False),
    Column("task_id", Text, nullable=False),
    _ts("expires_at"),
    _ts("matched_at", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("environment_id", Uuid, nullable=False),
    Column("endpoint_id", Uuid, nullable=False),
    Column("key", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("dynamic", Boolean, nullable=False),
    Column("schedule", JSONB, nullable=False),
    Column("metadata", JSONB(none_as_null=True), nullable=True),
    Column("active", Boolean, nullable=False),
    _ts("next_tick_at", nullable=True),
    _ts("last_tick_at", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
)

queues = Table(
    "queues",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("environment_id", Uuid, nullable=False),
    Column("name", Text, nullable=False),
    Column("concurrency_limit", Integer, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
)

READ_MODELS: tuple[Table, ...] = (
    environments,
    endpoints,
    jobs,
    job_versions,
    run_status,
    event_dispatchers,
    schedules,
    queues,
)
