"""The composition root: wires settings, database, event store, broker clients and the roles' parts."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine
from app.endpoint_client import EndpointClient
from app.environments import Authenticator
from app.settings import Settings
from app.store import EventStore
from app.url_policy import UrlPolicy, parse_networks


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    store: EventStore
    authenticator: Authenticator
    endpoint_client: EndpointClient
    url_policy: UrlPolicy

    @classmethod
    def create(cls, settings: Settings) -> "Container":
        engine = create_engine(settings.required_database_url, settings.db_pool_size)
        return cls(
            settings=settings,
            engine=engine,
            store=EventStore(engine),
            authenticator=Authenticator(engine),
            endpoint_client=EndpointClient(settings.endpoint_timeout_seconds),
            url_policy=UrlPolicy(parse_networks(settings.allowed_private_networks or "")),
        )

    async def close(self) -> None:
        await self.endpoint_client.close()
        await self.engine.dispose()
