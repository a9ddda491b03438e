"""`jobs-service status`: one screen for an operator, from what app/adapters/status_readings.py reads off the
database and the broker directly (no role needs to run)."""

from datetime import UTC, datetime

from aiokafka import TopicPartition

from app.adapters.kafka import PartitionOffsets
from app.adapters.status_readings import Status, Workers, read_status
from app.settings import Settings


def render(status: Status, settings: Settings, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    outbox = status.outbox
    lines = [
        f"jobs-service status at {now:%Y-%m-%d %H:%M:%S} UTC (topic {settings.execution_topic}, "
        f"group {settings.consumer_group})",
        f"outbox        {outbox.pending} pending, {outbox.unpublished} not published, "
        f"oldest due unpublished {_age(outbox.oldest_due_seconds)}",
    ]
    lines += _lag_lines(status.lanes)
    runs = ", ".join(f"{name} {count}" for name, count in status.runs.items()) or "none"
    lines.append(f"runs ({status.minutes}m)    {runs}")
    oldest = status.oldest_due
    waiting = "none" if oldest is None else f"{oldest.run_id} {oldest.status}, due {_age(oldest.waited_seconds)} ago"
    lines.append(f"oldest due    {waiting}")
    dead = ", ".join(f"{count} in {topic}" for topic, count in status.dead_letters.items()) or "0"
    lines.append(f"dead letters  {dead}")
    lines += _worker_lines(status.workers)
    return "\n".join(lines)


def _lag_lines(lanes: dict[TopicPartition, PartitionOffsets]) -> list[str]:
    if not lanes:
        return ["lag           no execution topic yet"]
    by_topic: dict[str, list[str]] = {}
    total = 0
    for partition, where in sorted(lanes.items()):
        lag = max(0, where.end - max(where.start, where.committed))
        total += lag
        by_topic.setdefault(partition.topic, []).append(f"p{partition.partition}={lag}")
    lines = [f"lag           {total} messages not consumed"]
    lines += [f"  {topic}: {' '.join(parts)}" for topic, parts in by_topic.items()]
    return lines


def _worker_lines(workers: Workers | None) -> list[str]:
    if workers is None:
        return ["workers       unknown (the broker did not describe the group)"]
    if not workers.members:
        return [f"workers       none in the group ({workers.state})"]
    lines = [f"workers       {len(workers.members)} in the group ({workers.state})"]
    for member in workers.members:
        held = (
            "partitions unknown (the broker does not tell)"
            if member.partitions is None
            else " ".join(f"{tp.topic}/{tp.partition}" for tp in member.partitions) or "no partitions"
        )
        lines.append(f"  {member.member_id}{' at ' + member.host if member.host else ''}: {held}")
    return lines


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


async def show_status(settings: Settings, minutes: int) -> str:
    return render(await read_status(settings, minutes), settings)
