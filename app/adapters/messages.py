"""Messages on the job-execution topic (msgspec JSON, tagged by `type`), and the outbox rows that carry them."""

from collections.abc import Sequence
from datetime import datetime

import msgspec

from app.adapters.store import OutboxMessage
from app.observability import tracing


class ExecuteJobRun(msgspec.Struct, frozen=True, tag_field="type", tag="ExecuteJobRun"):
    run_id: str
    event_record_id: str
    job_slug: str
    job_version: str
    attempt: int
    priority: int = 0
    tags: list[str] = []


class DeliverEvent(msgspec.Struct, frozen=True, tag_field="type", tag="DeliverEvent"):
    """A scheduled event (deliverAt / deliverAfter) that creates its runs when it is due."""

    event_record_id: str


class NotifyRun(msgspec.Struct, frozen=True, tag_field="type", tag="NotifyRun"):
    """Tell a finished run's subscriber (the invoker's callback URL, or the endpoint) how it ended."""

    run_id: str
    target: str
    attempt: int


class DispatchEvent(msgspec.Struct, frozen=True, tag_field="type", tag="DispatchEvent"):
    """An event matched a dispatcher of io.waitForEvent: hand it to the task that waits for it."""

    dispatcher_id: str
    event_record_id: str


class TimeOutCallback(msgspec.Struct, frozen=True, tag_field="type", tag="TimeOutCallback"):
    """A task waiting for its callback (io.waitForEvent, io.waitForRequest) was given until now."""

    run_id: str
    task_id: str


class FireSchedule(msgspec.Struct, frozen=True, tag_field="type", tag="FireSchedule"):
    """A schedule's tick, due at `tick_at` (ISO 8601, full precision: it names the tick exactly)."""

    schedule_id: str
    tick_at: str


class PerformTask(msgspec.Struct, frozen=True, tag_field="type", tag="PerformTask"):
    """Perform attempt `attempt` of a server-performed task (io.backgroundFetch, backgroundPoll...)."""

    run_id: str
    task_id: str
    attempt: int


Message = ExecuteJobRun | DeliverEvent | NotifyRun | DispatchEvent | TimeOutCallback | FireSchedule | PerformTask

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)


def encode_message(message: Message) -> bytes:
    return _encoder.encode(message)


def decode_message(value: bytes) -> Message:
    message: Message = _decoder.decode(value)
    return message


HIGH_LANE_SUFFIX = ".high"


def lane_topics(base: str) -> tuple[str, str]:
    """The execution lanes, drained in this order: the high-priority lane first."""
    return base + HIGH_LANE_SUFFIX, base


def dead_letter_topic(base: str) -> str:
    return base + ".dlq"


def lane_topic(base: str, priority: int) -> str:
    return lane_topics(base)[0] if priority > 0 else base


def outbox_message(
    topic: str, key: str, message: Message, due_at: datetime | None = None, headers: dict[str, str] | None = None
) -> OutboxMessage:
    """The row of a message, carrying on the current trace context (`traceparent`)."""
    row_headers = {"type": type(message).__name__, **(headers or {})}
    if (context := tracing.traceparent()) is not None:
        row_headers[tracing.TRACEPARENT] = context
    return OutboxMessage(topic, key, encode_message(message), row_headers, due_at)


def outbox_id(headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    """The id of the outbox row a record was published from (its `id` header)."""
    for name, value in headers or ():
        if name == "id":
            try:
                return int(value)
            except ValueError:
                return None
    return None
