"""The dashboard's own reads: what its pages show beside the API's answers (run counts and last runs per job)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text

from app.adapters.reads import ReadModels

# An index-only scan of run_status_job_status_idx (migration 0011), in its order: no heap, no sort.
_COUNTS = text(
    "SELECT job_slug, status, count(*) AS n FROM run_status WHERE environment_id = :env GROUP BY job_slug, status"
)
# Job by job (every run's job has a row in jobs, kept when deleted), each its newest run from
# run_status_job_idx, rather than one pass over the environment's whole history.
_LAST_RUNS = text(
    "SELECT j.slug AS job_slug, r.id, r.status, r.created_at FROM jobs j CROSS JOIN LATERAL ("
    "SELECT id, status, created_at FROM run_status WHERE environment_id = j.environment_id AND job_slug = j.slug "
    "ORDER BY created_at DESC, id DESC LIMIT 1) r WHERE j.environment_id = :env"
)


@dataclass
class JobRuns:
    """A job's runs in figures: how many by status, and its latest run."""

    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    last_id: UUID | None = None
    last_status: str | None = None
    last_at: datetime | None = None


async def runs_by_job(reads: ReadModels, environment_id: UUID) -> dict[str, JobRuns]:
    figures: dict[str, JobRuns] = {}
    async with reads.engine.connect() as conn:
        for row in (await conn.execute(_COUNTS, {"env": environment_id})).all():
            job = figures.setdefault(row.job_slug, JobRuns())
            job.total += row.n
            job.by_status[row.status] = row.n
        for row in (await conn.execute(_LAST_RUNS, {"env": environment_id})).all():
            job = figures.setdefault(row.job_slug, JobRuns())
            job.last_id, job.last_status, job.last_at = row.id, row.status, row.created_at
    return figures


def trigger_of(metadata: dict[str, Any] | None) -> tuple[str, str]:
    """How a job version starts, from its index metadata: a kind (event, schedule, invoke) and a description."""
    trigger = (metadata or {}).get("trigger")
    trigger = trigger if isinstance(trigger, dict) else {}
    kind = trigger.get("type")
    if kind == "scheduled":
        schedule = trigger.get("schedule")
        schedule = schedule if isinstance(schedule, dict) else {}
        options = schedule.get("options")
        options = options if isinstance(options, dict) else {}
        if schedule.get("type") == "cron":
            return "schedule", f"cron {options.get('cron', '?')}"
        if schedule.get("type") == "interval":
            return "schedule", f"every {options.get('seconds', '?')} s"
        return "schedule", "schedule"
    if kind == "invoke":
        return "invoke", "invoke"
    if kind == "dynamic":
        return "event", f"dynamic trigger {trigger.get('id', '')}".strip()
    rule = trigger.get("rule")
    rule = rule if isinstance(rule, dict) else {}
    event = (metadata or {}).get("event")
    name = rule.get("event") or (event.get("name") if isinstance(event, dict) else None) or "?"
    return "event", ", ".join(map(str, name)) if isinstance(name, list) else str(name)


def examples_of(metadata: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The example payloads the index gave for the job's event: each with a name and its payload."""
    event = (metadata or {}).get("event")
    examples = event.get("examples") if isinstance(event, dict) else None
    found = []
    for number, example in enumerate(examples if isinstance(examples, list) else [], 1):
        if isinstance(example, dict) and "payload" in example:
            name = example.get("name") or example.get("id") or f"Example {number}"
            found.append({"name": str(name), "payload": example["payload"]})
    return found
