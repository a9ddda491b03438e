"""Endpoints: the user's HTTP servers that hold jobs, and what indexing them found."""

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event


class Endpoint(Aggregate):
    TOPIC = "jobs.Endpoint"

    class Created(Aggregate.Created):
        TOPIC = "jobs.Endpoint.Created"

    class EndpointRegistered(Aggregate.Created):
        TOPIC = "jobs.Endpoint.EndpointRegistered"
        environment_id: str
        slug: str
        url: str

    class EndpointUrlChanged(Aggregate.Event):
        TOPIC = "jobs.Endpoint.EndpointUrlChanged"
        url: str

    class EndpointIndexed(Aggregate.Event):
        TOPIC = "jobs.Endpoint.EndpointIndexed"
        environment_id: str
        jobs: list[dict[str, Any]]

    @event(EndpointRegistered)
    def __init__(self, id: UUID, environment_id: str, slug: str, url: str) -> None:
        self.environment_id = environment_id
        self.slug = slug
        self.url = url
        self.jobs: list[dict[str, Any]] = []

    @event(EndpointUrlChanged)
    def change_url(self, url: str) -> None:
        self.url = url

    def index(self, jobs: list[dict[str, Any]]) -> None:
        """Record the job metadata (trigger.dev JobMetadata) the endpoint answered INDEX_ENDPOINT with."""
        self._indexed(environment_id=self.environment_id, jobs=jobs)

    @event(EndpointIndexed)
    def _indexed(self, environment_id: str, jobs: list[dict[str, Any]]) -> None:
        self.jobs = jobs
