"""Which completed tasks go back to the SDK so that its job replays past them (trigger.dev's cheap replays).

EXECUTE_JOB carries the run's completed tasks in `tasks` up to a byte budget (3.5 MB in trigger.dev), in the
order they were created; when they do not all fit, `cachedTaskCursor` names the first one left out, and the
SDK loads the rest lazily, a page at a time (250 tasks, 2 MB), in the answers to its task requests. Completed
noop tasks (logs, waits that ended) are never listed: `noopTasksSet` is a bloom filter of their keys."""

from collections.abc import Sequence
from typing import Any

import msgspec

from domain.bloom import BloomFilter
from domain.tasks import Task, TaskStatus

EXECUTION_BUDGET_BYTES = 3_500_000  # TOTAL_CACHED_TASK_BYTE_LIMIT of an EXECUTE_JOB
PAGE_BUDGET_BYTES = 2_000_000  # ... of one lazily loaded page
PAGE_TASKS = 250

_encoder = msgspec.json.Encoder()


def cached(task: Task) -> dict[str, Any]:
    """A task as the SDK caches it (CachedTaskSchema)."""
    return {
        "id": task.id,
        "idempotencyKey": task.idempotency_key,
        "status": task.status.value,
        "noop": task.noop,
        "output": task.output,
        "parentId": task.parent_id,
    }


def replayable(tasks: Sequence[Task]) -> list[Task]:
    """The tasks the SDK may take from its cache: completed, not noop, in the order they were created."""
    return [t for t in tasks if t.status is TaskStatus.COMPLETED and not t.noop]


def page(tasks: Sequence[Task], budget: int, limit: int | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """The leading tasks that fit in `budget` bytes (at most `limit` of them), and the id of the first one left
    out (None when none is). A task too big for any page is skipped: the SDK asks for it on its own."""
    chosen: list[dict[str, Any]] = []
    remaining = budget
    for task in tasks:
        entry = cached(task)
        size = len(_encoder.encode(entry))
        if (limit is not None and len(chosen) >= limit) or size > remaining:
            if size > budget and not chosen:
                continue
            return chosen, task.id
        chosen.append(entry)
        remaining -= size
    return chosen, None


def page_from(
    tasks: Sequence[Task], cursor: str, budget: int = PAGE_BUDGET_BYTES
) -> tuple[list[dict[str, Any]], str | None]:
    """The page that starts at the task `cursor` names (as trigger.dev: that task included); nothing when the
    cursor names no completed task."""
    ordered = replayable(tasks)
    start = next((i for i, task in enumerate(ordered) if task.id == cursor), None)
    if start is None:
        return [], None
    return page(ordered[start:], min(budget, PAGE_BUDGET_BYTES), PAGE_TASKS)


def noop_set(tasks: Sequence[Task]) -> str | None:
    """The serialized bloom filter of the completed noop tasks' idempotency keys; None when there are none
    (the SDK then has nothing to skip, and the 5 KB stay off the wire)."""
    keys = [t.idempotency_key for t in tasks if t.status is TaskStatus.COMPLETED and t.noop]
    if not keys:
        return None
    bloom = BloomFilter()
    for key in keys:
        bloom.add(key)
    return bloom.serialize()
