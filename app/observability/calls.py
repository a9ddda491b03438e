"""The time of each call to a user's endpoint (or callback URL), by outcome: ok (2xx), error (another status),
timeout, refused (the URL policy), unreachable."""

import time
from typing import Any

from aiohttp import ServerTimeoutError

from app.observability import tracing
from app.observability.metrics import ENDPOINT_REQUEST_DURATION

OUTCOMES = ("ok", "error", "timeout", "refused", "unreachable")
_by_outcome = {outcome: ENDPOINT_REQUEST_DURATION.labels(outcome) for outcome in OUTCOMES}


class timed_call:
    """Times the block; an EndpointError leaving it counts as timeout, refused or unreachable."""

    __slots__ = ("_outcome", "_started")

    def __enter__(self) -> "timed_call":
        self._started = time.perf_counter()
        self._outcome = "unreachable"
        return self

    def answered(self, status: int) -> None:
        if 200 <= status < 300:
            self._outcome = "ok"
        else:
            self._outcome = "error"
            tracing.set_error(f"HTTP {status}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: Any) -> None:
        if error is not None:
            if not isinstance(error, Exception):
                return  # cancelled: no outcome
            self._outcome = _failure(error)
        _by_outcome[self._outcome].observe(time.perf_counter() - self._started)


def _failure(error: BaseException) -> str:
    if getattr(error, "timed_out", False) or isinstance(error.__cause__, TimeoutError | ServerTimeoutError):
        return "timeout"
    if getattr(error, "refused", False) or str(error).startswith("refused"):
        return "refused"
    return "unreachable"
