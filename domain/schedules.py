"""Schedules: what makes a scheduled job run (trigger.dev's cronTrigger / intervalTrigger, and the registrations
of a DynamicSchedule), and when each fires next.

A schedule fires a tick at a time; each tick becomes one `trigger.scheduled` event whose payload is
`{ts, lastTimestamp}` (the tick's time and the previous tick's), as trigger.dev sent it. A tick missed while
nothing ran (the service down) fires once, late, and the next one is the first due after now: missed ticks are
not caught up one by one.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import cron
from domain.times import iso

SCHEDULED_EVENT = "trigger.scheduled"
MIN_INTERVAL_SECONDS = 60  # trigger.dev raised any shorter interval to a minute
MIN_DECLARED_INTERVAL_SECONDS = 20  # what the v2 SDK's schema accepts at all
MAX_INTERVAL_SECONDS = 2_592_000  # 30 days, the SDK's own limit
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """The schedule is not one this service runs; the message says why."""


@dataclass(frozen=True, slots=True)
class Spec:
    """A schedule as the SDK describes it (ScheduleMetadata): `{type: "interval", options: {seconds}}` or
    `{type: "cron", options: {cron, timezone?}}` (the time zone is this service's addition; UTC otherwise)."""

    type: str
    seconds: int = 0
    cron: str = ""
    timezone: str = "UTC"

    @classmethod
    def parse(cls, schedule: Any) -> "Spec":
        if not isinstance(schedule, dict):
            raise ScheduleError("a schedule must be an object {type, options}")
        options = schedule.get("options")
        if not isinstance(options, dict):
            raise ScheduleError("a schedule needs `options`")
        kind = schedule.get("type")
        if kind == "interval":
            seconds = options.get("seconds")
            if not isinstance(seconds, int) or isinstance(seconds, bool):
                raise ScheduleError("`options.seconds` of an interval must be an integer")
            if not MIN_DECLARED_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
                raise ScheduleError(
                    f"`options.seconds` must be from {MIN_DECLARED_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS}"
                )
            return cls("interval", seconds=max(seconds, MIN_INTERVAL_SECONDS))
        if kind == "cron":
            expression, zone = options.get("cron"), options.get("timezone", "UTC")
            if not isinstance(expression, str):
                raise ScheduleError("`options.cron` must be a cron expression")
            if not isinstance(zone, str):
                raise ScheduleError("`options.timezone` must be an IANA time zone name")
            try:
                cron.parse(expression, zone)
            except cron.CronError as error:
                raise ScheduleError(f"`options.cron`: {error}") from None
            return cls("cron", cron=expression, timezone=zone)
        raise ScheduleError("a schedule's `type` must be 'interval' or 'cron'")

    def as_metadata(self) -> dict[str, Any]:
        """The ScheduleMetadata answered back (an interval as it will run: at least a minute)."""
        if self.type == "interval":
            return {"type": "interval", "options": {"seconds": self.seconds}}
        options: dict[str, Any] = {"cron": self.cron}
        if self.timezone != "UTC":
            options["timezone"] = self.timezone
        return {"type": "cron", "options": options}

    def next_after(self, moment: datetime) -> datetime:
        """The first time after `moment` this fires."""
        if self.type == "interval":
            return moment + timedelta(seconds=self.seconds)
        return cron.parse(self.cron, self.timezone).next_after(moment)

    def next_due(self, last: datetime, now: datetime) -> datetime:
        """The next tick after the tick at `last`, skipping every tick already past at `now` (an interval keeps
        its phase: last + k x seconds)."""
        if self.type == "interval":
            step = timedelta(seconds=self.seconds)
            passed = max(0, (now - last) // step)
            return last + step * (passed + 1)
        return self.next_after(max(last, now))


def scheduled_payload(ts: datetime, last: datetime | None) -> dict[str, Any]:
    """The ScheduledPayload of a tick; no `lastTimestamp` at all on the first (the SDK would read null as 1970)."""
    payload = {"ts": iso(ts)}
    if last is not None:
        payload["lastTimestamp"] = iso(last)
    return payload


def tick_event_id(key: str, tick: datetime) -> str:
    """The id of a tick's event: one per schedule and time, so a second recording of it is a conflict."""
    epoch_ms = (tick - EPOCH) // timedelta(milliseconds=1)  # exact: no float on the way
    return f"schedule:{key}:{epoch_ms}"


def static_key(job_slug: str) -> str:
    return f"job:{job_slug}"


def dynamic_key(schedule_id: str, registration_id: str) -> str:
    return f"dynamic:{schedule_id}:{registration_id}"


class Schedule(Aggregate):
    """One schedule of an environment: a scheduled job's own (`job:<slug>`), or a registration on a
    DynamicSchedule (`dynamic:<schedule id>:<registration id>`), which runs every job attached to it."""

    TOPIC = "jobs.Schedule"

    class Created(Aggregate.Created):
        TOPIC = "jobs.Schedule.Created"

    class ScheduleRegistered(Aggregate.Created):
        TOPIC = "jobs.Schedule.ScheduleRegistered"
        environment_id: str
        endpoint_id: str
        key: str
        owner: str  # the job's slug, or the DynamicSchedule's id
        dynamic: bool
        schedule: dict[str, Any]
        metadata: Any
        account_id: str | None
        next_tick_at: datetime

    class ScheduleChanged(Aggregate.Event):
        """Registered again (or indexed again) with another schedule, or after it was stopped: it runs."""

        TOPIC = "jobs.Schedule.ScheduleChanged"
        endpoint_id: str
        schedule: dict[str, Any]
        metadata: Any
        account_id: str | None
        next_tick_at: datetime

    class ScheduleTicked(Aggregate.Event):
        TOPIC = "jobs.Schedule.ScheduleTicked"
        tick_at: datetime
        next_tick_at: datetime

    class ScheduleStopped(Aggregate.Event):
        TOPIC = "jobs.Schedule.ScheduleStopped"
        reason: str

    @event(ScheduleRegistered)
    def __init__(
        self,
        id: UUID,
        environment_id: str,
        endpoint_id: str,
        key: str,
        owner: str,
        dynamic: bool,
        schedule: dict[str, Any],
        metadata: Any,
        account_id: str | None,
        next_tick_at: datetime,
    ) -> None:
        self.environment_id = environment_id
        self.endpoint_id = endpoint_id
        self.key = key
        self.owner = owner
        self.dynamic = dynamic
        self.schedule = schedule
        self.metadata = metadata
        self.account_id = account_id
        self.next_tick_at: datetime | None = next_tick_at
        self.last_tick_at: datetime | None = None
        self.active = True

    @property
    def registration_id(self) -> str:
        """The id the schedule was registered with: a DynamicSchedule registration's own, or the job's slug."""
        prefix = dynamic_key(self.owner, "") if self.dynamic else static_key("")
        return self.key.removeprefix(prefix)

    @property
    def spec(self) -> Spec:
        return Spec.parse(self.schedule)

    def same_as(self, spec: Spec, metadata: Any, endpoint_id: str) -> bool:
        return self.active and self.spec == spec and self.metadata == metadata and self.endpoint_id == endpoint_id

    def change(self, endpoint_id: str, spec: Spec, metadata: Any, account_id: str | None, now: datetime) -> bool:
        """Run on `spec` from now on; False (nothing recorded) when it already does, so indexing or registering
        again keeps the tick already due."""
        if self.same_as(spec, metadata, endpoint_id) and self.account_id == account_id:
            return False
        if self.last_tick_at is not None:
            next_tick = spec.next_due(self.last_tick_at, now)
        else:
            next_tick = spec.next_after(now)
        self._changed(
            endpoint_id=endpoint_id,
            schedule=spec.as_metadata(),
            metadata=metadata,
            account_id=account_id,
            next_tick_at=next_tick,
        )
        return True

    @event(ScheduleChanged)
    def _changed(
        self, endpoint_id: str, schedule: dict[str, Any], metadata: Any, account_id: str | None, next_tick_at: datetime
    ) -> None:
        self.endpoint_id = endpoint_id
        self.schedule = schedule
        self.metadata = metadata
        self.account_id = account_id
        self.next_tick_at = next_tick_at
        self.active = True

    def due(self, tick: datetime) -> bool:
        """Whether a tick at `tick` is the one this schedule waits for (a copy of a tick already fired, or of a
        schedule since changed or stopped, is not)."""
        return self.active and self.next_tick_at == tick

    def tick(self, tick: datetime, now: datetime) -> datetime:
        """Fire the tick due at `tick` (perhaps late); returns the next one, the first due after now."""
        if not self.due(tick):
            raise ScheduleError(f"schedule {self.key} is not due at {tick.isoformat()}")
        next_tick = self.spec.next_due(tick, now)
        self._ticked(tick_at=tick, next_tick_at=next_tick)
        return next_tick

    @event(ScheduleTicked)
    def _ticked(self, tick_at: datetime, next_tick_at: datetime) -> None:
        self.last_tick_at = tick_at
        self.next_tick_at = next_tick_at

    def stop(self, reason: str) -> bool:
        if not self.active:
            return False
        self._stopped(reason=reason)
        return True

    @event(ScheduleStopped)
    def _stopped(self, reason: str) -> None:
        self.active = False
        self.next_tick_at = None


def new_schedule(
    schedule_id: UUID,
    environment_id: str,
    endpoint_id: str,
    key: str,
    owner: str,
    dynamic: bool,
    spec: Spec,
    metadata: Any,
    account_id: str | None,
    now: datetime,
) -> Schedule:
    return Schedule(
        id=schedule_id,
        environment_id=environment_id,
        endpoint_id=endpoint_id,
        key=key,
        owner=owner,
        dynamic=dynamic,
        schedule=spec.as_metadata(),
        metadata=metadata,
        account_id=account_id,
        next_tick_at=spec.next_after(now),
    )
