"""The composition root: wires settings, database, event store, broker clients and the roles' parts."""

from dataclasses import dataclass

from aiohttp.abc import AbstractResolver
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine
from app.endpoint_client import EndpointClient
from app.environments import Authenticator, Environments
from app.sealing import Sealer
from app.settings import Settings
from app.store import EventStore
from app.url_policy import UrlPolicy, parse_networks


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    store: EventStore
    sealer: Sealer
    environments: Environments
    authenticator: Authenticator
    endpoint_client: EndpointClient
    url_policy: UrlPolicy

    @classmethod
    def create(cls, settings: Settings, resolver: AbstractResolver | None = None) -> "Container":
        """`resolver` answers host names for the URL policy and every outgoing call (the system's by default)."""
        engine = create_engine(settings.required_database_url, settings.db_pool_size)
        url_policy = UrlPolicy(parse_networks(settings.allowed_private_networks or ""), resolver)
        store = EventStore(engine)
        sealer = Sealer(settings.secret_key)
        return cls(
            settings=settings,
            engine=engine,
            store=store,
            sealer=sealer,
            environments=Environments(store, sealer),
            authenticator=Authenticator(engine, sealer),
            endpoint_client=EndpointClient(url_policy, settings.endpoint_timeout_seconds),
            url_policy=url_policy,
        )

    async def close(self) -> None:
        await self.endpoint_client.close()
        await self.engine.dispose()
