"""Endpoints: the user's HTTP servers that hold jobs, and what indexing them found."""

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.jobs import is_enabled


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
        class_version = 2
        environment_id: str
        jobs: list[dict[str, Any]]
        dynamic_schedules: list[str]  # the ids of the DynamicSchedules the endpoint defines, with jobs or not

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 kept no DynamicSchedule ids."""
            state["dynamic_schedules"] = []

    class JobDeleted(Aggregate.Event):
        """The job is gone from the environment's catalog (its runs stay): as trigger.dev's deletedAt, it comes
        back only when an index names it again enabled."""

        TOPIC = "jobs.Endpoint.JobDeleted"
        environment_id: str
        job_slug: str

    @event(EndpointRegistered)
    def __init__(self, id: UUID, environment_id: str, slug: str, url: str) -> None:
        self.environment_id = environment_id
        self.slug = slug
        self.url = url
        self.jobs: list[dict[str, Any]] = []
        self.dynamic_schedules: list[str] = []
        self.deleted_jobs: set[str] = set()

    @event(EndpointUrlChanged)
    def change_url(self, url: str) -> None:
        self.url = url

    def index(self, jobs: list[dict[str, Any]], dynamic_schedules: list[str] | None = None) -> None:
        """Record the job metadata (trigger.dev JobMetadata) and the DynamicSchedule ids the endpoint answered
        INDEX_ENDPOINT with; a deleted job stays deleted while the index says it is disabled."""
        kept = [job for job in jobs if job.get("id") not in self.deleted_jobs or is_enabled(job)]
        self._indexed(environment_id=self.environment_id, jobs=kept, dynamic_schedules=dynamic_schedules or [])

    @event(EndpointIndexed)
    def _indexed(self, environment_id: str, jobs: list[dict[str, Any]], dynamic_schedules: list[str]) -> None:
        self.jobs = jobs
        self.dynamic_schedules = dynamic_schedules
        self.deleted_jobs.difference_update(job.get("id") for job in jobs)

    def delete_job(self, job_slug: str) -> None:
        self._job_deleted(environment_id=self.environment_id, job_slug=job_slug)

    @event(JobDeleted)
    def _job_deleted(self, environment_id: str, job_slug: str) -> None:
        self.deleted_jobs.add(job_slug)
        self.jobs = [job for job in self.jobs if job.get("id") != job_slug]
