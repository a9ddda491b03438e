"""Server-performed tasks (io.backgroundFetch, backgroundFetchResponse, backgroundPoll): what a task's
`operation` and `params` ask for, and what each answer of the target makes of the task (trigger.dev v2's
PerformTaskOperationService rules, on the shapes of @trigger.dev/core 2.3.18).

- `fetch`: the output is the response's JSON body (null when it is not JSON).
- `fetch-response`: the output is `{data, headers, status}`.
- `fetch-poll`: requested every `interval` seconds until the response matches `responseFilter` (output: its
  JSON body) or `timeout` seconds passed since the task started (the task fails).

A response that is not 2xx is retried when a strategy of `retry` matches its status (`"429"`, `"500-599"`,
`"4xx"`, `"401,403"`, `"all"`; with `bodyFilter`, only if the JSON body matches it): `backoff` after
`calculate_retry_at`, `headers` at the time its `resetHeader` names. Otherwise the task fails with the JSON
body as its error, or `{message: "Fetch failed with status N"}`."""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from domain.event_filter import matches

OPERATIONS = frozenset({"fetch", "fetch-response", "fetch-poll"})
DEFAULT_RETRY = {"limit": 5, "factor": 1.8, "minTimeoutInMs": 1000, "maxTimeoutInMs": 60000, "randomize": True}
FETCH_TIMEOUT_MS = (120_000, 1_000, 300_000)  # default, least, most
POLL_REQUEST_TIMEOUT_MS = (5_000, 1_000, 5_000)
POLL_INTERVAL_SECONDS = (10, 10, 600)
POLL_TIMEOUT_SECONDS = (600, 30, 3600)
MAX_ATTEMPTS = 250  # trigger.dev's MAX_TASK_RUN_ATTEMPTS: a `headers` strategy has no limit of its own
MAX_RETRY_DELAY_MS = 24 * 3600 * 1000  # whatever the options say
UNREACHABLE_ATTEMPTS = 5  # a fetch whose target cannot be reached at all fails after this many attempts
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
_RESET_FORMATS = frozenset({"unix_timestamp", "unix_timestamp_in_ms", "iso_8601", "iso_8601_duration_openai_variant"})


class InvalidOperation(ValueError):
    """The task's params are not what its operation takes: the task fails with this message."""


@dataclass(frozen=True, slots=True)
class FetchRequest:
    url: str
    method: str
    headers: dict[str, str]
    body: str | None
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class Operation:
    kind: str
    request: FetchRequest
    retry: dict[str, dict[str, Any]] = field(default_factory=dict)  # status range → strategy
    timeout_retry: dict[str, Any] | None = None
    interval_seconds: int = 0  # fetch-poll only
    timeout_seconds: int = 0
    response_filter: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: Any  # the decoded JSON body; None when it is not JSON
    is_json: bool


@dataclass(frozen=True, slots=True)
class PollAttempt:
    """One request of a poll, kept on the run as a noop sub-task of the poll's task."""

    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: Any


class Decision(Enum):
    COMPLETE = "complete"
    FAIL = "fail"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Result:
    decision: Decision
    output: Any = None  # COMPLETE: the task's output; FAIL: its error
    retry_at: datetime | None = None
    reason: str = ""  # RETRY: why (recorded on the attempt)


def complete(output: Any) -> Result:
    return Result(Decision.COMPLETE, output)


def fail(error: Any) -> Result:
    return Result(Decision.FAIL, error)


def retry(at: datetime, reason: str) -> Result:
    return Result(Decision.RETRY, retry_at=at, reason=reason)


# -- params ------------------------------------------------------------------------------------------------


def parse(kind: str, params: Any, min_poll_interval: float = POLL_INTERVAL_SECONDS[1]) -> Operation:
    if kind not in OPERATIONS:
        raise InvalidOperation(f"Unknown operation: {kind}")
    if not isinstance(params, dict):
        raise InvalidOperation(f"Invalid {kind} params: expected an object")
    url = params.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidOperation(f"Invalid {kind} params: `url` must be a string")
    init = _object(params.get("requestInit"), "requestInit")
    method = init.get("method", "GET")
    if not isinstance(method, str) or not re.fullmatch(r"[A-Za-z]{1,16}", method):
        raise InvalidOperation("Invalid requestInit: `method` must be an HTTP method")
    body = init.get("body")
    if body is not None and not isinstance(body, str):
        raise InvalidOperation("Invalid requestInit: `body` must be a string")
    headers = _headers(init.get("headers"))
    if kind == "fetch-poll":
        request_timeout = _object(params.get("requestTimeout"), "requestTimeout")
        timeout_ms = _timeout_ms(request_timeout, POLL_REQUEST_TIMEOUT_MS)
        interval = _int_in(params.get("interval"), "interval", POLL_INTERVAL_SECONDS, min_poll_interval)
        timeout = _int_in(params.get("timeout"), "timeout", POLL_TIMEOUT_SECONDS)
        response_filter = _object(params.get("responseFilter"), "responseFilter")
        return Operation(
            kind,
            FetchRequest(url, method.upper(), headers, body, timeout_ms),
            timeout_retry=_optional_object(request_timeout.get("retry"), "requestTimeout.retry"),
            interval_seconds=interval,
            timeout_seconds=timeout,
            response_filter=response_filter,
        )
    fetch_timeout = _object(params.get("timeout"), "timeout")
    strategies = _object(params.get("retry"), "retry")
    for status_range, strategy in strategies.items():
        if not isinstance(strategy, dict) or strategy.get("strategy") not in ("backoff", "headers"):
            raise InvalidOperation(f"Invalid retry: the strategy for {status_range!r} must be backoff or headers")
    return Operation(
        kind,
        FetchRequest(url, method.upper(), headers, body, _timeout_ms(fetch_timeout, FETCH_TIMEOUT_MS)),
        retry=strategies,
        timeout_retry=_optional_object(fetch_timeout.get("retry"), "timeout.retry"),
    )


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidOperation(f"Invalid {name}: expected an object")
    return value


def _optional_object(value: Any, name: str) -> dict[str, Any] | None:
    return None if value is None else _object(value, name)


def _headers(value: Any) -> dict[str, str]:
    """Header values are strings, or redacted strings (`redactString`) put back together here."""
    headers: dict[str, str] = {}
    for name, raw in _object(value, "requestInit.headers").items():
        if not _TOKEN.fullmatch(name):
            raise InvalidOperation(f"Invalid requestInit: {name!r} is not a header name")
        if isinstance(raw, str):
            headers[name] = raw
        elif isinstance(raw, dict) and raw.get("__redactedString") is True:
            strings, values = raw.get("strings"), raw.get("interpolations")
            if not (isinstance(strings, list) and isinstance(values, list)):
                raise InvalidOperation(f"Invalid requestInit: header {name!r} is not a redacted string")
            parts = [str(s) + (str(values[i]) if i < len(values) else "") for i, s in enumerate(strings)]
            headers[name] = "".join(parts)
        else:
            raise InvalidOperation(f"Invalid requestInit: header {name!r} must be a string")
        if any(c in headers[name] for c in "\r\n\0"):
            raise InvalidOperation(f"Invalid requestInit: header {name!r} holds a line break or NUL")
    return headers


def _number(value: Any) -> bool:
    """A finite JSON number (JSON has no NaN, but a huge exponent decodes to infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _timeout_ms(options: dict[str, Any], bounds: tuple[int, int, int]) -> int:
    default, least, most = bounds
    duration = options.get("durationInMs", default)
    if not _number(duration):
        raise InvalidOperation("Invalid timeout: `durationInMs` must be a number")
    return int(min(max(duration, least), most))


def _int_in(value: Any, name: str, bounds: tuple[int, int, int], least: float | None = None) -> int:
    default, low, high = bounds
    low_bound = low if least is None else least
    if value is None:
        return int(max(default, low_bound))
    if not _number(value) or value != int(value) or not low_bound <= value <= high:
        raise InvalidOperation(
            f"Invalid fetch poll params: `{name}` must be an integer from {low_bound:g} to {high}, got {value!r}"
        )
    return int(value)


# -- answers -----------------------------------------------------------------------------------------------


def after_response(op: Operation, response: Response, attempts: int, now: datetime, random: float) -> Result:
    """What the target's answer to attempt `attempts` (1 = the first) makes of the task."""
    if op.kind == "fetch-poll":
        if poll_matches(response, op.response_filter):
            return complete(response.body if response.is_json else None)
        return retry(now + timedelta(seconds=op.interval_seconds), f"poll answered {response.status}, no match")
    if 200 <= response.status < 300:
        if op.kind == "fetch-response":
            return complete({"data": response.body, "headers": response.headers, "status": response.status})
        return complete(response.body)
    at = _retry_for(op, response, attempts, now, random) if attempts < MAX_ATTEMPTS else None
    if at is not None:
        return retry(at, f"Fetch failed with status {response.status}")
    if response.is_json and _truthy(response.body):
        return fail(response.body)
    return fail({"message": f"Fetch failed with status {response.status}"})


def after_timeout(op: Operation, attempts: int, now: datetime, random: float) -> Result:
    message = f"Fetch timed out after {op.request.timeout_ms}ms"
    if op.timeout_retry is not None and (at := calculate_retry_at(op.timeout_retry, attempts - 1, now, random)):
        return retry(at, message)
    return fail({"message": message})


def after_unreachable(op: Operation, reason: str, attempts: int, now: datetime) -> Result:
    """No answer at all (refused connection, unknown host): a poll tries again at its interval; a fetch backs
    off and fails after UNREACHABLE_ATTEMPTS."""
    if op.kind == "fetch-poll":
        return retry(now + timedelta(seconds=op.interval_seconds), reason)
    at = calculate_retry_at({**DEFAULT_RETRY, "limit": UNREACHABLE_ATTEMPTS, "randomize": False}, attempts - 1, now, 0)
    if at is not None:
        return retry(at, reason)
    return fail({"message": f"Fetch failed: {reason}"})


def _truthy(value: Any) -> bool:
    """JavaScript's truthiness of a JSON value (an empty object or array is true)."""
    return value not in (None, False, 0, "")


def poll_expired(op: Operation, task_started_at: datetime, now: datetime) -> Result | None:
    if op.kind == "fetch-poll" and now - task_started_at > timedelta(seconds=op.timeout_seconds):
        return fail({"message": f"Task timed out after {op.timeout_seconds} seconds"})
    return None


def poll_matches(response: Response, response_filter: Mapping[str, Any]) -> bool:
    statuses = response_filter.get("status")
    if isinstance(statuses, list) and statuses and response.status not in statuses:
        return False
    headers = response_filter.get("headers")
    if isinstance(headers, dict) and headers and not matches(response.headers, headers):
        return False
    body = response_filter.get("body")
    if isinstance(body, dict) and body:
        return response.is_json and matches(response.body, body)
    return True


def _retry_for(op: Operation, response: Response, attempts: int, now: datetime, random: float) -> datetime | None:
    for status_range, strategy in op.retry.items():
        if not status_in_range(response.status, status_range):
            continue
        body_filter = strategy.get("bodyFilter")
        if isinstance(body_filter, dict):
            if not response.is_json or not matches(response.body, body_filter):
                continue
        if strategy.get("strategy") == "backoff":
            return calculate_retry_at(strategy, attempts - 1, now, random)
        reset = response.headers.get(str(strategy.get("resetHeader", "")).lower())
        return reset_at(reset, str(strategy.get("resetFormat", "unix_timestamp")), now) if reset else None
    return None


def status_in_range(status: int, status_range: str) -> bool:
    """`"all"`, `"401,403"`, `"500-599"`, `"4xx"`, `"42x"` or an exact status."""
    text = status_range.strip()
    if text == "all":
        return True
    if "," in text:
        return str(status) in [part.strip() for part in text.split(",")]
    start, dash, end = text.partition("-")
    if dash:
        return start.strip().isdigit() and end.strip().isdigit() and int(start) <= status <= int(end)
    if text.endswith("xx"):
        return str(status // 100) == text[:-2]
    if text.endswith("x") and str(status).startswith(text[:-1]):
        return True
    return text.isdigit() and status == int(text)


def calculate_retry_at(options: Mapping[str, Any], attempts: int, now: datetime, random: float) -> datetime | None:
    """@trigger.dev/core's calculateRetryAt: None once `attempts + 1` reaches the limit, else
    min(max, (1 + random if randomize) * max(min, 1) * factor^max(attempts - 1, 0)) from now."""
    merged = {**DEFAULT_RETRY, **{k: v for k, v in options.items() if v is not None}}
    limit, factor = merged["limit"], merged["factor"]
    least, most = merged["minTimeoutInMs"], merged["maxTimeoutInMs"]
    if not all(_number(v) for v in (limit, factor, least, most)):
        return None
    if attempts + 1 >= limit:
        return None
    spread = (1 + random) if merged["randomize"] else 1
    try:
        delay = float(spread * max(least, 1) * factor ** max(attempts - 1, 0))
    except OverflowError:
        delay = math.inf
    delay = min(max(min(delay, most), 0), MAX_RETRY_DELAY_MS)
    return now + timedelta(milliseconds=round(delay))


def reset_at(value: str, reset_format: str, now: datetime) -> datetime | None:
    """When a rate limit resets, from a response header in one of the core's `resetFormat`s."""
    if reset_format not in _RESET_FORMATS:
        return None
    try:
        if reset_format == "unix_timestamp":
            return datetime.fromtimestamp(int(value.strip()), now.tzinfo)
        if reset_format == "unix_timestamp_in_ms":
            return datetime.fromtimestamp(int(value.strip()) / 1000, now.tzinfo)
        if reset_format == "iso_8601":
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)
    except (ValueError, OverflowError, OSError):
        return None
    found = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?", value.strip())
    if not found:
        return None
    days, hours, minutes, seconds, millis = found.groups()
    try:
        return now + timedelta(
            days=int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
            milliseconds=int(millis or 0),
        )
    except OverflowError:
        return None
