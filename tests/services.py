"""Where the tests' PostgreSQL and Kafka come from: the environment, else Docker, else embedded."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from app.settings import normalize_database_url
from app.tools.embedded import EmbeddedKafka, EmbeddedPostgres


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def postgres_server(data_dir: Path) -> Iterator[str]:
    """Yields a PostgreSQL URL (postgresql+asyncpg://) of a server the tests may create databases on."""
    if url := os.environ.get("DATABASE_URL"):
        yield normalize_database_url(url)
    elif docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
            yield container.get_connection_url()
    else:
        with EmbeddedPostgres(data_dir) as postgres:
            yield postgres.url


@contextlib.contextmanager
def kafka_server() -> Iterator[str]:
    """Yields Kafka bootstrap servers."""
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
    elif docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        with EmbeddedKafka() as kafka:
            yield kafka.bootstrap_servers
