"""W3C trace context, always on, and spans when exporting is configured.

A request (or a consumed message) continues the trace of its `traceparent`, or starts one; every outbox row
written while it is handled carries the context on (`traceparent` in the row's headers, then in the Kafka
message's), and every call to a user's endpoint sends it. With no exporter configured no span is built: a
context variable holds the ids, and each hop takes a new span id from a fast random source. When the standard
OTEL_* variables configure the OTLP exporter (see `configure`), the OpenTelemetry SDK makes and exports spans
and the ids come from them.
"""

import logging
import os
import random
import re
import socket
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from typing import Any, NamedTuple

from opentelemetry.trace import SpanKind, StatusCode

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
DEFAULT_SERVICE_NAME = "jobs-service"
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_random = random.Random()  # ids need to be unique, not secret: seeded from os.urandom, ten times faster
_NOTHING = nullcontext()

Attributes = Mapping[str, str | int | float | bool]


class TraceParent(NamedTuple):
    """A `traceparent`: the trace, the span that is the parent of what comes next, and whether it is sampled."""

    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero
    sampled: bool = True

    @property
    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def child(self) -> "TraceParent":
        """The same trace, with a new span id: the next hop's context."""
        return TraceParent(self.trace_id, new_span_id(), self.sampled)


def new_span_id() -> str:
    return f"{_random.getrandbits(64) or 1:016x}"


def new_trace() -> TraceParent:
    return TraceParent(f"{_random.getrandbits(128) or 1:032x}", new_span_id())


def new_id() -> str:
    """32 random hex digits (a request id)."""
    return f"{_random.getrandbits(128):032x}"


# version 00 is exactly this; a later version may append "-..." fields (W3C Trace Context, level 1)
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The context of a `traceparent` header, or None when it is absent or malformed (W3C Trace Context:
    version ff, all-zero ids and uppercase hex are invalid; version 00 has no further fields)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, more = match.groups()
    if version == "ff" or (version == "00" and more) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, bool(int(flags, 16) & 1))


# -- the current context ----------------------------------------------------------------------------------

_current: ContextVar[TraceParent | None] = ContextVar("trace_context", default=None)


class _Continue:
    """Continue a context (no span): the hop's own ids become current for the block."""

    __slots__ = ("_token", "context")

    def __init__(self, context: TraceParent) -> None:
        self.context = context
        self._token: Token[TraceParent | None] | None = None

    def __enter__(self) -> TraceParent:
        self._token = _current.set(self.context)
        return self.context

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)


def begin(
    incoming: str | bytes | None,
    name: str,
    kind: SpanKind = SpanKind.SERVER,
    attributes: Attributes | None = None,
) -> AbstractContextManager[Any]:
    """The block handles a request or a message whose `traceparent` is `incoming`: its trace goes on there
    (a new one when `incoming` is absent or malformed), in a span of its own when exporting."""
    parent = parse_traceparent(incoming)
    if _exporter is None:
        return _Continue(parent.child() if parent is not None else new_trace())
    return _exporter.begin(parent, name, kind, attributes)


def span(
    name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes | None = None
) -> AbstractContextManager[Any]:
    """A span of the current trace around the block when exporting; nothing otherwise."""
    if _exporter is None:
        return _NOTHING
    return _exporter.tracer.start_as_current_span(name, kind=kind, attributes=attributes)


def current() -> TraceParent | None:
    """The current context (what rows written now carry on), if any."""
    if _exporter is None:
        return _current.get()
    return _exporter.current()


def traceparent() -> str | None:
    """The `traceparent` header of the current context, if any."""
    context = current()
    return None if context is None else context.header


def outgoing_traceparent() -> str:
    """The `traceparent` to send on an outgoing request: a child of the current context (inside a client span
    when exporting, whose context it is), or a new trace."""
    context = current()
    if context is None:
        return new_trace().header
    return context.header if _exporter is not None else context.child().header


def trace_id() -> str | None:
    context = current()
    return None if context is None else context.trace_id


def exporting() -> bool:
    return _exporter is not None


def set_error(message: str) -> None:
    """Mark the current span failed (when exporting)."""
    if _exporter is not None:
        from opentelemetry import trace

        trace.get_current_span().set_status(StatusCode.ERROR, message)


# -- exporting ----------------------------------------------------------------------------------------------


class _Exporter:
    """Spans through the OpenTelemetry SDK, exported by a BatchSpanProcessor over OTLP/HTTP."""

    def __init__(self, role: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes: dict[str, str] = {
            "jobs.role": role,
            SERVICE_INSTANCE_ID: f"{socket.gethostname()}/{os.getpid()}/{role}",
        }
        detected = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
        if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            attributes[SERVICE_NAME] = DEFAULT_SERVICE_NAME
        resource = detected.merge(Resource(attributes))
        self.provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER(_ARG)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("jobs-service")

    def begin(
        self, parent: TraceParent | None, name: str, kind: SpanKind, attributes: Attributes | None
    ) -> AbstractContextManager[Any]:
        return self.tracer.start_as_current_span(name, _context_of(parent), kind, attributes)

    def start(self, parent: TraceParent | None, name: str, kind: SpanKind, attributes: Attributes | None) -> Any:
        return self.tracer.start_span(name, _context_of(parent), kind, attributes)

    def current(self) -> TraceParent | None:
        from opentelemetry import trace

        return _of_span(trace.get_current_span())

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what the batch processor holds


def _context_of(parent: TraceParent | None) -> Any:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    if parent is None:
        return Context()  # a root: a new trace
    remote = SpanContext(
        int(parent.trace_id, 16),
        int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(NonRecordingSpan(remote), Context())


def _of_span(span: Any) -> TraceParent | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return TraceParent(f"{context.trace_id:032x}", f"{context.span_id:016x}", context.trace_flags.sampled)


_exporter: _Exporter | None = None


def exporter_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard variables ask for span export: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint
    with no other exporter named; never with OTEL_SDK_DISABLED=true."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {part.strip().lower() for part in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if part.strip()}
    if exporters:
        if exporters - {"otlp", "none"}:
            log.warning("OTEL_TRACES_EXPORTER=%s: only otlp (OTLP/HTTP) is supported", ",".join(sorted(exporters)))
        return "otlp" in exporters
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(role: str) -> bool:
    """Export spans from now on when the OTEL_* variables ask for it; returns whether they do."""
    global _exporter
    if _exporter is None and exporter_configured():
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol and protocol != "http/protobuf":
            log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s: spans are exported over http/protobuf", protocol)
        _exporter = _Exporter(role)
    return _exporter is not None


def shutdown() -> None:
    """Export what is left, then stop exporting."""
    global _exporter
    if _exporter is not None:
        exporter, _exporter = _exporter, None
        exporter.shutdown()


# -- the relay's producer spans -----------------------------------------------------------------------------


class Publishing:
    """The producer spans of one relay batch (one per message, each in its row's trace), and the headers that
    carry each span's context to the consumer."""

    def __init__(self, exporter: _Exporter, headers: Sequence[Mapping[str, str]], topic_of: Sequence[str]) -> None:
        self.spans = [
            exporter.start(
                parse_traceparent(row.get(TRACEPARENT)),
                f"publish {row.get('type', 'message')}",
                SpanKind.PRODUCER,
                {
                    "messaging.system": "kafka",
                    "messaging.destination.name": topic,
                    "jobs.message_type": row.get("type", ""),
                },
            )
            for row, topic in zip(headers, topic_of, strict=True)
        ]

    def headers(self, index: int, headers: Mapping[str, str]) -> dict[str, str]:
        context = _of_span(self.spans[index])
        return {**headers, TRACEPARENT: context.header} if context is not None else dict(headers)

    def end(self, error: BaseException | None = None) -> None:
        for one in self.spans:
            if error is not None:
                one.set_status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
            one.end()


def publishing(headers: Sequence[Mapping[str, str]], topics: Sequence[str]) -> Publishing | None:
    """Producer spans for a batch about to be published, when exporting."""
    if _exporter is None:
        return None
    return Publishing(_exporter, headers, topics)
