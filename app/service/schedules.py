"""Scheduled jobs: the schedules an index declares (cronTrigger / intervalTrigger), DynamicSchedule
registrations, and firing a tick.

A tick is an outbox row (`FireSchedule`) due at its time, written in the transaction that registered the
schedule or fired the tick before it: nothing in memory decides when a schedule fires, so ticks survive
restarts, and one missed while the service was down is published, late, once it is back. Firing records the
`trigger.scheduled` event (its id `schedule:<key>:<tick ms>`), the runs it starts, the schedule's
`ScheduleTicked` and the next tick's row in one transaction: a second worker firing the same tick conflicts
on the schedule's version (and on the event's id) and gives up, so each tick is recorded once.
"""

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from app.adapters.codec import DomainEvent
from app.adapters.messages import FireSchedule
from app.adapters.reads import ReadModels
from app.adapters.store import ConcurrencyConflict, EventStore, OutboxMessage
from app.errors import ClientError, NotFound, Unprocessable
from app.observability import record as observed
from app.service.environments import EnvironmentInfo
from app.service.runs import new_run, new_run_id
from app.service.writes import CONFLICT_RETRIES, Topics
from domain import ids
from domain.endpoints import Endpoint
from domain.event_records import EventRecord
from domain.jobs import JobVersion
from domain.schedules import (
    SCHEDULED_EVENT,
    Schedule,
    ScheduleError,
    Spec,
    dynamic_key,
    new_schedule,
    scheduled_payload,
    static_key,
    tick_event_id,
)

log = logging.getLogger(__name__)

Changes = tuple[list[DomainEvent], list[OutboxMessage]]


class Schedules:
    def __init__(self, store: EventStore, reads: ReadModels, topics: Topics) -> None:
        self.store = store
        self.reads = reads
        self.topics = topics

    # -- declared by an index -----------------------------------------------------------------------------

    async def for_index(self, endpoint: Endpoint) -> Changes:
        """What indexing the endpoint changes: a schedule for each enabled scheduled job (kept as it is when
        nothing changed, so re-indexing never adds a tick), and the schedules of jobs no longer scheduled here
        (removed, disabled, deleted, or given another trigger) stopped."""
        now = datetime.now(UTC)
        wanted: dict[str, tuple[str, Spec]] = {}
        for job in endpoint.jobs:
            version = JobVersion.from_metadata(str(job.get("id")), str(job.get("version")), str(endpoint.id), job)
            if version.schedule is None or not version.enabled:
                continue
            try:
                wanted[static_key(version.job_slug)] = (version.job_slug, Spec.parse(version.schedule))
            except ScheduleError as error:
                problem = f"job {version.job_slug!r} has a schedule this service cannot run: {error}"
                raise Unprocessable(problem) from None
        events: list[DomainEvent] = []
        messages: list[OutboxMessage] = []
        running = set(await self.reads.static_schedules(endpoint.id))
        for key, (slug, spec) in wanted.items():
            schedule_id = ids.schedule_id(endpoint.environment_id, key)
            running.discard(schedule_id)
            schedule = await self.store.get(schedule_id, Schedule)
            if schedule is None:
                schedule = new_schedule(
                    schedule_id, endpoint.environment_id, str(endpoint.id), key, slug, False, spec, None, None, now
                )
            elif not schedule.change(str(endpoint.id), spec, None, None, now):
                continue
            events += schedule.collect_events()
            messages.append(self._tick_row(schedule))
        for schedule_id in running:
            schedule = await self.store.get(schedule_id, Schedule)
            if schedule is not None and schedule.stop("the job is no longer scheduled by its endpoint's index"):
                events += schedule.collect_events()
        return events, messages

    async def for_deleted_job(self, environment_id: str, job_slug: str) -> list[DomainEvent]:
        """A deleted job's schedule stops."""
        schedule = await self.store.get(ids.schedule_id(environment_id, static_key(job_slug)), Schedule)
        if schedule is None or not schedule.stop("the job was deleted"):
            return []
        return list(schedule.collect_events())

    # -- DynamicSchedule registrations ----------------------------------------------------------------------

    async def register(
        self,
        env: EnvironmentInfo,
        endpoint_slug: str,
        dynamic_id: str,
        registration_id: str,
        schedule: dict[str, Any],
        metadata: Any,
        account_id: str | None,
    ) -> Schedule:
        """Register (or register again, changed) a schedule on a DynamicSchedule of the endpoint: it runs every
        job attached to that DynamicSchedule. Registering the same again keeps the tick already due."""
        try:
            spec = Spec.parse(schedule)
        except ScheduleError as error:
            raise ClientError(str(error)) from None
        endpoint = await self._endpoint(env, endpoint_slug)
        defined = dynamic_id in endpoint.dynamic_schedules  # in the index, even with no job attached yet
        if not defined and not any(_version(endpoint, job).dynamic_id == dynamic_id for job in endpoint.jobs):
            raise NotFound(f"endpoint {endpoint_slug!r} defines no DynamicSchedule {dynamic_id!r}")
        key = dynamic_key(dynamic_id, registration_id)
        schedule_id = ids.schedule_id(str(env.id), key)
        for _ in range(CONFLICT_RETRIES):
            now = datetime.now(UTC)
            found = await self.store.get(schedule_id, Schedule)
            if found is None:
                found = new_schedule(
                    schedule_id, str(env.id), str(endpoint.id), key, dynamic_id, True, spec, metadata, account_id, now
                )
            elif not found.change(str(endpoint.id), spec, metadata, account_id, now):
                return found
            try:
                await self.store.commit(found.collect_events(), [self._tick_row(found)])
            except ConcurrencyConflict:
                continue
            return found
        raise ConcurrencyConflict(f"schedule {key} kept changing under this registration")

    async def unregister(self, env: EnvironmentInfo, endpoint_slug: str, dynamic_id: str, registration_id: str) -> None:
        """Stop the registration (unregistering one already stopped is fine; an unknown one is not found)."""
        await self._endpoint(env, endpoint_slug)
        key = dynamic_key(dynamic_id, registration_id)
        for _ in range(CONFLICT_RETRIES):
            schedule = await self.store.get(ids.schedule_id(str(env.id), key), Schedule)
            if schedule is None:
                raise NotFound(f"schedule {registration_id!r} of DynamicSchedule {dynamic_id!r} not found")
            if not schedule.stop("unregistered"):
                return
            try:
                await self.store.commit(schedule.collect_events())
            except ConcurrencyConflict:
                continue
            return
        raise ConcurrencyConflict(f"schedule {key} kept changing under this request")

    async def of_environment(self, env: EnvironmentInfo) -> list[Any]:
        return list(await self.reads.schedules(env.id))

    # -- firing -------------------------------------------------------------------------------------------

    async def fire(self, schedule_id: UUID, tick: datetime) -> str:
        """Fire the schedule's tick due at `tick`: its event, the runs of the jobs it triggers, and the next
        tick's row, in one transaction. A copy of a tick already fired (or of a schedule since changed or
        stopped) is a duplicate."""
        for _ in range(CONFLICT_RETRIES):
            schedule = await self.store.get(schedule_id, Schedule)
            if schedule is None or not schedule.due(tick):
                return "duplicate"
            versions = await self._triggered(schedule)
            if versions is None:
                schedule.stop(f"job {schedule.owner!r} is deleted, disabled or no longer scheduled")
                events, messages = list(schedule.collect_events()), []
                label = "stopped"
            else:
                now = datetime.now(UTC)
                last = schedule.last_tick_at
                schedule.tick(tick, now)
                record = _tick_record(schedule, tick, last, now)
                runs = [new_run(new_run_id(), version, record) for version in versions]
                events = [e for aggregate in (record, *runs, schedule) for e in aggregate.collect_events()]
                messages = [self.topics.execution(run, 1) for run in runs] + [self._tick_row(schedule)]
                label = "fired"
            try:
                await self.store.commit(events, messages)
            except ConcurrencyConflict:
                continue  # another worker fired it (it is no longer due), or it changed meanwhile: look again
            if label == "fired":
                observed.runs_created(len(runs))
            return label
        raise ConcurrencyConflict(f"schedule {schedule_id} kept changing while its tick fired")

    async def requeue(self, schedule_id: UUID) -> bool:
        """Write the row of the schedule's due tick again: no row carries it (a duplicate is harmless)."""
        schedule = await self.store.get(schedule_id, Schedule)
        if schedule is None or not schedule.active or schedule.next_tick_at is None:
            return False
        await self.store.commit([], [self._tick_row(schedule)])
        return True

    async def _triggered(self, schedule: Schedule) -> list[JobVersion] | None:
        """The job versions a tick runs now; None when the schedule of a job has no job to run any more."""
        environment_id = UUID(schedule.environment_id)
        if schedule.dynamic:
            rows = await self.reads.latest_versions(environment_id)
            versions = [_version_of(row) for row in rows]
            return [
                v
                for v in versions
                if v.dynamic_id == schedule.owner and v.endpoint_id == schedule.endpoint_id and v.enabled
            ]
        row = await self.reads.job_version(environment_id, schedule.owner, None)
        if row is None:
            return None
        version = _version_of(row)
        if not version.enabled or version.schedule is None:
            return None
        return [version]

    def _tick_row(self, schedule: Schedule) -> OutboxMessage:
        assert schedule.next_tick_at is not None
        message = FireSchedule(str(schedule.id), schedule.next_tick_at.isoformat())
        return self.topics.message(str(schedule.id), message, schedule.next_tick_at)

    async def _endpoint(self, env: EnvironmentInfo, slug: str) -> Endpoint:
        endpoint = await self.store.get(ids.endpoint_id(str(env.id), slug), Endpoint)
        if endpoint is None:
            raise NotFound(f"endpoint {slug!r} not found")
        return endpoint


def _tick_record(schedule: Schedule, tick: datetime, last: datetime | None, now: datetime) -> EventRecord:
    event_id = tick_event_id(schedule.key, tick)
    return EventRecord(
        id=ids.event_record_id(schedule.environment_id, event_id),
        environment_id=schedule.environment_id,
        event_id=event_id,
        name=SCHEDULED_EVENT,
        payload=scheduled_payload(tick, last),
        context={},
        source="trigger.dev",
        sent_at=now,
        is_test=False,
        source_context={"id": schedule.registration_id, "metadata": schedule.metadata},
    )


def _version(endpoint: Endpoint, job: dict[str, Any]) -> JobVersion:
    return JobVersion.from_metadata(str(job.get("id")), str(job.get("version")), str(endpoint.id), job)


def _version_of(row: Any) -> JobVersion:
    return JobVersion.from_metadata(row.job_slug, row.version, str(row.endpoint_id), row.metadata)
