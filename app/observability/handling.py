"""The context a worker handles a message in: the trace its `traceparent` header carries on (a consumer span
when exporting), and the run, event and attempt its log lines name."""

from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import SpanKind

from app.observability import logs, tracing

NEW_TRACE_EACH = frozenset({"FireSchedule"})  # messages that start a trace of their own


class Handling:
    __slots__ = ("_run", "_token", "_trace")

    def __init__(self, headers: Sequence[tuple[str, bytes]] | None, message: Any) -> None:
        kind = type(message).__name__
        parent = None
        # Each schedule tick writes the next: continued, one trace would grow for as long as the schedule lives.
        for name, value in headers or () if kind not in NEW_TRACE_EACH else ():
            if name == tracing.TRACEPARENT:
                parent = value
                break
        run_id: str | None = getattr(message, "run_id", None)
        # only an execution's attempt is the run's (a notification's or a task's counts their own tries)
        attempt: int | None = message.attempt if kind == "ExecuteJobRun" else None
        attributes: dict[str, str | int] | None = None
        if tracing.exporting():
            attributes = {"messaging.system": "kafka", "jobs.message_type": kind}
            if run_id is not None:
                attributes["jobs.run_id"] = run_id
            if attempt is not None:
                attributes["jobs.attempt"] = attempt
            if (slug := getattr(message, "job_slug", None)) is not None:
                attributes["jobs.job_slug"] = slug
        self._trace = tracing.begin(parent, f"handle {kind}", SpanKind.CONSUMER, attributes)
        self._run = (run_id, getattr(message, "event_record_id", None), attempt)

    def __enter__(self) -> "Handling":
        self._trace.__enter__()
        self._token = logs.bind_run(*self._run)
        return self

    def __exit__(self, *exc: Any) -> None:
        logs.unbind_run(self._token)
        self._trace.__exit__(*exc)
