"""What the API does around every request, in one ASGI middleware: the request id (`X-Request-ID`, taken when
sane, made when absent, echoed on every answer), the trace context (a server span when exporting), the access
log (json mode), and the HTTP metrics, labelled by route template, never by raw path."""

import logging
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind

from app.observability import logs, tracing
from app.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 128
UNMATCHED = "unmatched"  # the route label of a path no route serves
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

access_log = logging.getLogger(logs.ACCESS_LOGGER)


def sane_request_id(value: bytes) -> str | None:
    """A caller's request id, when it is 1 to 128 printable ASCII characters (no space)."""
    if not 0 < len(value) <= MAX_REQUEST_ID or not value.isascii():
        return None
    text = value.decode("ascii")
    return text if text.isprintable() and " " not in text else None


new_request_id = tracing.new_id


class _Metrics:
    """The series' children, made once per label set (labels() costs more than the observation)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        if (count := self._counts.get(key)) is None:
            count = self._counts[key] = HTTP_REQUESTS.labels(method, route, str(status))
        count.inc()
        if (duration := self._durations.get(key[:2])) is None:
            duration = self._durations[key[:2]] = HTTP_REQUEST_DURATION.labels(method, route)
        duration.observe(seconds)


class Observe:
    """Wraps the application's ASGI handler (inside Litestar's own call, outside its router and exception
    handlers): it sees every answer, the route template the router found, and runs around the error handlers,
    which read the request id from the context."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.metrics = _Metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming_id = parent = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                incoming_id = value
            elif name == b"traceparent":
                parent = value
        request = (sane_request_id(incoming_id) if incoming_id is not None else None) or new_request_id()
        echoed = (REQUEST_ID_HEADER, request.encode())
        method = scope["method"] if scope["method"] in METHODS else "other"
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = logs.request_id.set(request)
        try:
            with tracing.begin(parent, f"{method} request", SpanKind.SERVER, {"http.request.method": method}) as span:
                try:
                    await self.app(scope, receive, answer)
                finally:
                    route = scope.get("path_template") or UNMATCHED
                    seconds = time.perf_counter() - started
                    self.metrics.observe(method, route, status, seconds)
                    if access_log.isEnabledFor(logging.INFO):
                        fields = {"method": method, "route": route, "status": status}
                        fields["duration_ms"] = round(seconds * 1000, 2)
                        access_log.info("%s %s %d", method, route, status, extra={"fields": fields})
                    if not isinstance(span, tracing.TraceParent):
                        _describe(span, method, route, status)
        finally:
            logs.request_id.reset(token)


def _describe(span: Any, method: str, route: str, status: int) -> None:
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        from opentelemetry.trace import StatusCode

        span.set_status(StatusCode.ERROR)
