"""Every setting of the service, read from environment variables, with the defaults documented here.

| variable | default | meaning |
| --- | --- | --- |
| DATABASE_URL | (none) | PostgreSQL URL; `dev` starts an embedded PostgreSQL when unset, roles use localhost |
| KAFKA_BOOTSTRAP_SERVERS | (none) | Kafka bootstrap servers; `dev` starts an embedded broker when unset |
| JOBS_HOST | 127.0.0.1 | address the API listens on |
| JOBS_PORT | 8000 | port the API listens on |
| JOBS_PUBLIC_URL | http://JOBS_HOST:JOBS_PORT | base URL others reach the API at (task callback URLs) |
| JOBS_DATA_DIR | .jobs-data | where `dev` keeps the embedded database, the dev API key and its JOBS_SECRET_KEY |
| JOBS_DEV_API_KEY | (generated) | API key of the development environment that `dev` creates |
| JOBS_SECRET_KEY | (none; `dev`: its own) | Fernet keys sealing API keys at rest, comma-separated (see below) |
| JOBS_EXECUTION_TOPIC | job-execution | Kafka topic of run executions |
| JOBS_TOPIC_PARTITIONS | 4 | partitions of that topic when the service creates it |
| JOBS_TOPIC_RING_SECONDS | 0 (embedded broker: 20) | write each topic as a ring of 3, a period each (topic_ring.py) |
| JOBS_CONSUMER_GROUP | jobs-worker | Kafka consumer group of the workers |
| JOBS_KAFKA_SESSION_TIMEOUT_MS | 6000 | consumer-group session timeout (joining takes about half) |
| JOBS_KAFKA_IDEMPOTENCE | false | idempotent producer (Apache Kafka supports it; embedded Tansu does not) |
| JOBS_RELAY_BATCH_SIZE | 500 | outbox rows the relay claims per transaction |
| JOBS_RELAY_POLL_SECONDS | 1.0 | relay polling fallback when no NOTIFY arrives |
| JOBS_WORKER_CONCURRENCY | 64 | runs one worker executes at once |
| JOBS_LEASE_SECONDS | 60 | lease an attempt holds while its endpoint call is in flight (extended every third) |
| JOBS_RESCUE_INTERVAL_SECONDS | 2 | how often the rescuer looks for expired leases and lost executions |
| JOBS_REDELIVER_AFTER_SECONDS | 30 | a due run with no message at all (no outbox row) for this long is queued again |
| JOBS_SHUTDOWN_SECONDS | 20 | on SIGTERM, how long a worker may finish what it holds before it lets go |
| JOBS_ENDPOINT_TIMEOUT_SECONDS | 300 | time allowed for one call to a user's endpoint |
| JOBS_DB_POOL_SIZE | 20 | database connections per process |
| JOBS_ALLOWED_PRIVATE_NETWORKS | (none; `dev`: loopback) | private networks endpoint and callback URLs may point to |
| JOBS_LOG_LEVEL | INFO | log level |
| JOBS_FAULT_RELAY_PAUSE_SECONDS | 0 | fault injection (crash tests): relay pause between publish and delete |

JOBS_SECRET_KEY: `jobs-service secrets generate-key` makes a key; api, relay, worker and all refuse to start
without one. To rotate, give every process `new,old`, run `jobs-service secrets rotate`, then drop `old`.
"""

import os
from dataclasses import dataclass, field, replace
from typing import Self


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def normalize_database_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url!r}")


MISSING_SECRET_KEY = (
    "JOBS_SECRET_KEY is not set: make one with `jobs-service secrets generate-key` and give it to every process"
)


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    data_dir: str = ".jobs-data"
    dev_api_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)  # never in logs
    execution_topic: str = "job-execution"
    topic_partitions: int = 4
    topic_ring_seconds: float = 0.0
    consumer_group: str = "jobs-worker"
    kafka_session_timeout_ms: int = 6000
    kafka_idempotence: bool = False
    relay_batch_size: int = 500
    relay_poll_seconds: float = 1.0
    worker_concurrency: int = 64
    lease_seconds: float = 60.0
    rescue_interval_seconds: float = 2.0
    redeliver_after_seconds: float = 30.0
    shutdown_seconds: float = 20.0
    endpoint_timeout_seconds: float = 300.0
    db_pool_size: int = 20
    log_level: str = "INFO"
    allowed_private_networks: str | None = None
    fault_relay_pause_seconds: float = 0.0

    @classmethod
    def from_env(cls) -> Self:
        database_url = os.environ.get("DATABASE_URL")
        return cls(
            database_url=normalize_database_url(database_url) if database_url else None,
            kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            host=_env("JOBS_HOST", "127.0.0.1"),
            port=int(_env("JOBS_PORT", "8000")),
            public_url=os.environ.get("JOBS_PUBLIC_URL") or None,
            data_dir=_env("JOBS_DATA_DIR", ".jobs-data"),
            dev_api_key=os.environ.get("JOBS_DEV_API_KEY") or None,
            secret_key=os.environ.get("JOBS_SECRET_KEY") or None,
            execution_topic=_env("JOBS_EXECUTION_TOPIC", "job-execution"),
            topic_partitions=int(_env("JOBS_TOPIC_PARTITIONS", "4")),
            topic_ring_seconds=float(_env("JOBS_TOPIC_RING_SECONDS", "0")),
            consumer_group=_env("JOBS_CONSUMER_GROUP", "jobs-worker"),
            kafka_session_timeout_ms=int(_env("JOBS_KAFKA_SESSION_TIMEOUT_MS", "6000")),
            kafka_idempotence=_env("JOBS_KAFKA_IDEMPOTENCE", "false").lower() in ("1", "true", "yes"),
            relay_batch_size=int(_env("JOBS_RELAY_BATCH_SIZE", "500")),
            relay_poll_seconds=float(_env("JOBS_RELAY_POLL_SECONDS", "1.0")),
            worker_concurrency=int(_env("JOBS_WORKER_CONCURRENCY", "64")),
            lease_seconds=float(_env("JOBS_LEASE_SECONDS", "60")),
            rescue_interval_seconds=float(_env("JOBS_RESCUE_INTERVAL_SECONDS", "2")),
            redeliver_after_seconds=float(_env("JOBS_REDELIVER_AFTER_SECONDS", "30")),
            shutdown_seconds=float(_env("JOBS_SHUTDOWN_SECONDS", "20")),
            endpoint_timeout_seconds=float(_env("JOBS_ENDPOINT_TIMEOUT_SECONDS", "300")),
            db_pool_size=int(_env("JOBS_DB_POOL_SIZE", "20")),
            log_level=_env("JOBS_LOG_LEVEL", "INFO"),
            allowed_private_networks=os.environ.get("JOBS_ALLOWED_PRIVATE_NETWORKS"),
            fault_relay_pause_seconds=float(_env("JOBS_FAULT_RELAY_PAUSE_SECONDS", "0")),
        )

    def with_services(self, database_url: str, kafka_bootstrap_servers: str) -> Self:
        return replace(self, database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap_servers)

    @property
    def api_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def required_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set (or run `jobs-service dev` for an embedded database)")
        return self.database_url

    @property
    def required_secret_key(self) -> str:
        if not self.secret_key:
            raise RuntimeError(MISSING_SECRET_KEY)
        return self.secret_key

    @property
    def required_kafka(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise RuntimeError("KAFKA_BOOTSTRAP_SERVERS is not set (or run `jobs-service dev` for an embedded broker)")
        return self.kafka_bootstrap_servers
