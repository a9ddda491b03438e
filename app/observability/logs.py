"""Log lines: as text (the default), or one JSON object per line (JOBS_LOG_FORMAT=json) with the time, level,
role, logger and message and, where known, the run, event, attempt, trace and request it concerns.

The ids come from context variables: the API's middleware sets the request id, the worker the run of the
message it handles, and the trace id is the current trace context's. Nothing else of a request is logged.
"""

import logging
import sys
import time
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

import msgspec

from app.observability import tracing

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("aiokafka", "alembic", "aiohttp")
ACCESS_LOGGER = "jobs.access"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# (run id, event id, attempt) of the message being handled
_run: ContextVar[tuple[str | None, str | None, int | None] | None] = ContextVar("log_run", default=None)
_encoder = msgspec.json.Encoder()


def bind_run(
    run_id: str | None, event_id: str | None = None, attempt: int | None = None
) -> Token[tuple[str | None, str | None, int | None] | None]:
    """Lines logged from now on in this context name the run (reset with the token returned)."""
    return _run.set((run_id, event_id, attempt))


def unbind_run(token: Token[tuple[str | None, str | None, int | None] | None]) -> None:
    _run.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "role": self.role,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (run := _run.get()) is not None:
            run_id, event_id, attempt = run
            if run_id is not None:
                line["run_id"] = run_id
            if event_id is not None:
                line["event_id"] = event_id
            if attempt is not None:
                line["attempt"] = attempt
        if (trace := tracing.trace_id()) is not None:
            line["trace_id"] = trace
        if (request := request_id.get()) is not None:
            line["request_id"] = request
        if extra := getattr(record, "fields", None):  # structured fields of a line (the access log's)
            line.update(extra)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _encoder.encode(line).decode()


_announcer: JsonFormatter | None = None  # json mode: start-up announcements are lines of the log's format


def announce(message: str) -> None:
    """A line on stdout for whoever started the process ("api running; ..."), whatever the log level: plain
    text, or in json mode one JSON object like every other line."""
    if _announcer is None:
        print(message, flush=True)
        return
    record = logging.LogRecord("app.cli", logging.INFO, __file__, 0, message, None, None)
    print(_announcer.format(record), flush=True)


def setup(level: str, format_: str, role: str) -> None:
    """Every logger (uvicorn's too: it is run with log_config=None) writes through one handler on stderr."""
    global _announcer
    handler = logging.StreamHandler(sys.stderr)
    _announcer = JsonFormatter(role) if format_ == "json" else None
    handler.setFormatter(_announcer or logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python's warnings too, as lines of the same format
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # An access log in json only (at INFO: JOBS_LOG_LEVEL=WARNING leaves it out too).
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.NOTSET if format_ == "json" else logging.CRITICAL + 1)


def access_log_enabled() -> bool:
    return logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)


def brief(error: BaseException) -> str:
    """An error in one line: a database error's driver error, without the statement SQLAlchemy quotes."""
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}".rstrip(": ")


class Failures:
    """A failure that repeats while a dependency is away is logged twice: when it starts (with its traceback
    when asked: not for an outage, which it does not explain) and when it is over, with how often it happened;
    not at every retry."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.error: str | None = None
        self.count = 0

    def failed(self, error: BaseException, retry_seconds: float, traceback: bool = False) -> None:
        self.count += 1
        if self.error is None:
            self.error = brief(error)
            self.logger.warning(
                "%s failed (%s); retrying every %.1fs", self.what, self.error, retry_seconds,
                exc_info=error if traceback else None,
            )  # fmt: skip

    def succeeded(self) -> None:
        if self.error is not None:
            self.logger.warning("%s recovered after %d failures (%s)", self.what, self.count, self.error)
            self.error, self.count = None, 0


class Throttled:
    """A failure many requests meet at once (the database away) is logged at most once per `every` seconds,
    with how many met it since the previous line."""

    def __init__(self, logger: logging.Logger, what: str, every: float = 10.0) -> None:
        self.logger = logger
        self.what = what
        self.every = every
        self.logged_at = -every
        self.since = 0

    def failed(self, error: BaseException) -> None:
        self.since += 1
        now = time.monotonic()
        if now - self.logged_at >= self.every:
            self.logger.warning("%s (%d times since the last line): %s", self.what, self.since, brief(error))
            self.logged_at, self.since = now, 0
