"""Environments: where jobs, runs and events live, each reached with its own API key."""

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event


class EnvironmentType(StrEnum):
    DEVELOPMENT = "DEVELOPMENT"
    PRODUCTION = "PRODUCTION"
    STAGING = "STAGING"
    PREVIEW = "PREVIEW"


@dataclass(frozen=True, slots=True)
class Organization:
    """The organization (and its one project) every environment belongs to: this service has one of each."""

    id: str = "default"
    slug: str = "default"
    title: str = "Default"


ORGANIZATION = Organization()


KEY_PREFIX: dict[EnvironmentType, str] = {
    EnvironmentType.DEVELOPMENT: "tr_dev_",
    EnvironmentType.PRODUCTION: "tr_prod_",
    EnvironmentType.STAGING: "tr_stg_",
    EnvironmentType.PREVIEW: "tr_prev_",
}


class Environment(Aggregate):
    TOPIC = "jobs.Environment"

    class Created(Aggregate.Created):
        TOPIC = "jobs.Environment.Created"

    class EnvironmentCreated(Aggregate.Created):
        TOPIC = "jobs.Environment.EnvironmentCreated"
        slug: str
        type: str
        api_key_hash: str

    class ApiKeyRotated(Aggregate.Event):
        TOPIC = "jobs.Environment.ApiKeyRotated"
        api_key_hash: str

    class ApiKeyRevoked(Aggregate.Event):
        TOPIC = "jobs.Environment.ApiKeyRevoked"

    @event(EnvironmentCreated)
    def __init__(self, id: UUID, slug: str, type: str, api_key_hash: str) -> None:
        self.slug = slug
        self.type = EnvironmentType(type)
        self.api_key_hash: str | None = api_key_hash

    @event(ApiKeyRotated)
    def rotate_key(self, api_key_hash: str) -> None:
        self.api_key_hash = api_key_hash

    @event(ApiKeyRevoked)
    def revoke_key(self) -> None:
        """The environment's key stops working; it has none until one is rotated in."""
        self.api_key_hash = None
