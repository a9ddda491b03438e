"""The composition root: builds, once, the database engine, the store and read side, the outbound HTTP client
and the application service the roles share."""

from dataclasses import dataclass
from datetime import timedelta

from aiohttp.abc import AbstractResolver
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.db import create_engine, dispose
from app.adapters.endpoint_client import EndpointClient
from app.adapters.health import Readiness
from app.adapters.outbox import Outbox
from app.adapters.reads import ReadModels
from app.adapters.sealing import Sealer
from app.adapters.store import EventStore
from app.adapters.url_policy import UrlPolicy, parse_networks
from app.service import JobsService
from app.settings import Settings


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    store: EventStore
    reads: ReadModels
    outbox: Outbox
    endpoint_client: EndpointClient
    url_policy: UrlPolicy
    sealer: Sealer
    service: JobsService
    readiness: Readiness

    @classmethod
    def create(cls, settings: Settings, resolver: AbstractResolver | None = None) -> "Container":
        """`resolver` answers host names for the URL policy and every outgoing call (the system's by default)."""
        engine = create_engine(settings.required_database_url, settings.db_pool_size)
        url_policy = UrlPolicy(parse_networks(settings.allowed_private_networks or ""), resolver)
        store, reads = EventStore(engine), ReadModels(engine)
        client = EndpointClient(url_policy, settings.endpoint_timeout_seconds)
        sealer = Sealer(settings.secret_key)
        service = JobsService(
            store,
            reads,
            sealer,
            client,
            url_policy,
            settings.execution_topic,
            settings.api_url,
            timedelta(seconds=settings.lease_seconds),
            settings.cached_tasks_bytes,
        )
        readiness = Readiness(reads, settings.kafka_bootstrap_servers or "")
        return cls(settings, engine, store, reads, Outbox(engine), client, url_policy, sealer, service, readiness)

    async def close(self) -> None:
        await self.endpoint_client.close()
        await dispose(self.engine)
