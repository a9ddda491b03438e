"""A version of a job, as the endpoint's index described it (trigger.dev's JobMetadata), and what it decides
about its runs: the event that triggers it, whether it runs at all, its priority and concurrency limit."""

from dataclasses import dataclass
from typing import Any

from domain.event_filter import rule_matches

DEFAULT_SOURCE = "trigger.dev"


@dataclass(frozen=True, slots=True)
class Concurrency:
    """Runs sharing `key` execute at most `limit` at a time."""

    key: str
    limit: int


@dataclass(frozen=True, slots=True)
class JobVersion:
    job_slug: str
    version: str
    endpoint_id: str
    event_name: str
    event_source: str
    enabled: bool
    priority: int
    concurrency: Concurrency | None
    trigger_rule: dict[str, Any] | None  # the event filter of a static trigger; None for other triggers
    schedule: dict[str, Any] | None = None  # the ScheduleMetadata of a scheduled trigger (cron / interval)
    dynamic_id: str | None = None  # the id of a dynamic trigger (a DynamicSchedule the job is attached to)

    @classmethod
    def from_metadata(cls, job_slug: str, version: str, endpoint_id: str, metadata: dict[str, Any]) -> "JobVersion":
        event = metadata.get("event")
        event = event if isinstance(event, dict) else {}
        trigger = metadata.get("trigger")
        trigger = trigger if isinstance(trigger, dict) else {}
        rule = trigger.get("rule") if trigger.get("type") == "static" else None
        return cls(
            job_slug=job_slug,
            version=version,
            endpoint_id=endpoint_id,
            event_name=str(event.get("name") or job_slug),
            event_source=str(event.get("source") or DEFAULT_SOURCE),
            enabled=is_enabled(metadata),
            priority=_int(metadata.get("priority"), 0),
            concurrency=_concurrency(job_slug, version, metadata.get("concurrencyLimit")),
            trigger_rule=rule if isinstance(rule, dict) else ({} if trigger.get("type") == "static" else None),
            schedule=_dict_or_none(trigger.get("schedule")) if trigger.get("type") == "scheduled" else None,
            dynamic_id=_str_or_none(trigger.get("id")) if trigger.get("type") == "dynamic" else None,
        )

    def triggered_by(self, name: str, source: str, payload: Any, context: Any) -> bool:
        """Whether an event starts a run of this version (only an enabled one with a static trigger)."""
        if self.trigger_rule is None or not self.enabled:
            return False
        return rule_matches(self.trigger_rule, name, source, payload, context)


def is_enabled(metadata: dict[str, Any]) -> bool:
    """A job runs unless its metadata says `enabled: false`."""
    return metadata.get("enabled", True) is not False


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, default: int) -> int:
    return value if _is_int(value) else default


def _concurrency(job_slug: str, version: str, limit: Any) -> Concurrency | None:
    """A version's own limit (a number), or a named group's that several jobs share (`{id, limit}`)."""
    if _int(limit, 0) > 0:
        return Concurrency(f"job:{job_slug}@{version}", limit)
    if isinstance(limit, dict) and isinstance(limit.get("id"), str) and _is_int(limit.get("limit")):
        return Concurrency(f"group:{limit['id']}", max(1, limit["limit"]))
    return None
