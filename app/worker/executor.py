"""Executes one run attempt: start it, call the endpoint with EXECUTE_JOB, record how the execution ended."""

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from app.adapters import json_limits
from app.adapters.endpoint_client import EndpointClient, EndpointError, EndpointResponse
from app.adapters.messages import ExecuteJobRun
from app.service import JobsService
from app.service.catalog import Target
from app.settings import Settings
from domain import execution, task_cache
from domain.environments import ORGANIZATION
from domain.event_records import EventRecord
from domain.runs import JobRun
from domain.status import RunStatus
from domain.times import iso, iso_or_none

log = logging.getLogger(__name__)


RUN_CHUNK_EXECUTION_BUFFER_MS = 350  # trigger.dev's margin between the chunk limit and what the SDK is told
# trigger.dev's defaults for an endpoint (the 2.3.18 SDK uses fixed thresholds of its own, but takes these)
AUTO_YIELD_CONFIG = {
    "startTaskThreshold": 750,
    "beforeExecuteTaskThreshold": 1500,
    "beforeCompleteTaskThreshold": 750,
    "afterCompleteTaskThreshold": 750,
}


@dataclass(frozen=True, slots=True)
class Chunking:
    """How long one EXECUTE_JOB may run before the SDK yields, and how many bytes of completed tasks it carries."""

    chunk_limit_ms: int = 60_000
    cached_tasks_bytes: int = task_cache.EXECUTION_BUDGET_BYTES
    endpoint_timeout_seconds: float = 300.0

    @classmethod
    def of(cls, settings: Settings) -> "Chunking":
        return cls(
            settings.run_chunk_execution_limit_ms, settings.cached_tasks_bytes, settings.endpoint_timeout_seconds
        )

    @property
    def sdk_limit_ms(self) -> int:
        """`runChunkExecutionLimit`: the chunk limit, never past the call's own time-out, less trigger.dev's margin."""
        return min(self.chunk_limit_ms, int(self.endpoint_timeout_seconds * 1000)) - RUN_CHUNK_EXECUTION_BUFFER_MS


class RunExecutor:
    def __init__(self, service: JobsService, client: EndpointClient, chunking: Chunking | None = None) -> None:
        self.catalog = service.catalog
        self.executions = service.executions
        self.client = client
        self.chunking = chunking or Chunking()
        self.counts: Counter[str] = Counter()

    async def handle(self, message: ExecuteJobRun) -> str:
        outcome = await self._handle(message)
        self.counts[outcome] += 1
        return outcome

    async def _handle(self, message: ExecuteJobRun) -> str:
        # The event record is needed once the run starts.
        run, record = await self.executions.load(UUID(message.run_id), UUID(message.event_record_id))
        if run is None:
            log.warning("run %s does not exist; message skipped", message.run_id)
            return "missing"
        if not run.accepts_attempt(message.attempt):
            log.info(
                "run %s attempt %d is a duplicate or stale delivery (at attempt %d, %s); skipped",
                run.id,
                message.attempt,
                run.attempt,
                run.status,
            )
            return "duplicate"
        target = await self.catalog.target(run.endpoint_id, run.job_slug, run.job_version)
        if stop := self._refusal(run, target):
            if await self.executions.end_before_executing(run, *stop):
                return "ended before executing"
            log.info("run %s changed meanwhile (another worker); skipped", run.id)
            return "duplicate"
        assert target is not None
        started = await self.executions.start(run, message.attempt)
        if isinstance(started, str):
            return started  # deferred (concurrency limit) or duplicate
        assert record is not None, f"event record {run.event_record_id} of run {run.id} is missing"
        async with self._holding_lease(run.id, message.attempt):
            body = run_job_body(run, record, target, started, self.chunking)
            outcome, subscriptions = await self._call(target, body)
        return await self.executions.finish(
            run, message.attempt, outcome, subscriptions, started, target.environment_type
        )

    @contextlib.asynccontextmanager
    async def _holding_lease(self, run_id: UUID, attempt: int) -> AsyncIterator[None]:
        """Extends the attempt's lease while its endpoint call is in flight, so no rescuer takes it over. A timer,
        not a task, until the first extension is due: most calls end long before, and cost no task then."""
        period = self.executions.lease.total_seconds() / 3
        extender: asyncio.Task[None] | None = None

        async def extend() -> None:
            while True:
                try:
                    await self.executions.extend_lease(run_id, attempt)
                except Exception:
                    log.warning("run %s: could not extend the lease of attempt %d", run_id, attempt, exc_info=True)
                await asyncio.sleep(period)

        def start() -> None:
            nonlocal extender
            extender = asyncio.create_task(extend())

        due = asyncio.get_running_loop().call_later(period, start)
        try:
            yield
        finally:
            due.cancel()
            if extender is not None:
                extender.cancel()
                await asyncio.gather(extender, return_exceptions=True)

    def _refusal(self, run: JobRun, target: Target | None) -> tuple[RunStatus, str] | None:
        if target is None:
            return RunStatus.FAILURE, f"endpoint {run.endpoint_id} is not registered"
        if target.api_key is None:
            slug = target.environment_slug
            return RunStatus.UNRESOLVED_AUTH, (
                f"the API key of environment {slug!r} was revoked; rotate a key in "
                f"(`jobs-service env rotate-key {slug}`) and continue the run"
            )
        if not target.version_enabled:
            return RunStatus.ABORTED, f"version {run.job_version} of job {run.job_slug} is disabled"
        if reason := run.limit_reached():
            return RunStatus.TIMED_OUT, reason
        return None

    async def _call(self, target: Target, body: dict[str, Any]) -> tuple[execution.Outcome, dict[str, bool] | None]:
        assert target.api_key is not None
        try:
            response = await self.client.call(target.url, target.api_key, "EXECUTE_JOB", body)
        except EndpointError as error:
            return execution.from_transport_failure(str(error), error.timed_out), None
        if not 200 <= response.status_code < 300:
            return execution.from_response(response.status_code, None), None
        try:
            json_limits.check(response.content, "the endpoint's answer")
        except json_limits.JsonRefused as error:
            return execution.invalid_answer(str(error)), None
        try:
            answer = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            return execution.from_response(response.status_code, None), None
        return execution.from_response(response.status_code, answer), _subscriptions(response)


def _subscriptions(response: EndpointResponse) -> dict[str, bool] | None:
    raw = response.headers.get("x-trigger-run-metadata")
    if not raw:
        return None
    try:
        metadata = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    if not isinstance(metadata, dict):
        return None
    return {"SUCCESS": bool(metadata.get("successSubscription")), "FAILURE": bool(metadata.get("failedSubscription"))}


def run_job_body(
    run: JobRun, record: EventRecord, target: Target, started: datetime, chunking: Chunking | None = None
) -> dict[str, Any]:
    """The RunJobBody of an EXECUTE_JOB call."""
    chunking = chunking or Chunking()
    tasks = list(run.tasks.values())
    cached, cursor = task_cache.page(task_cache.replayable(tasks), chunking.cached_tasks_bytes)
    body: dict[str, Any] = {
        "event": {
            "id": record.event_id,
            "name": record.name,
            "payload": record.payload,
            "context": record.context,
            "timestamp": iso(record.sent_at),
            "deliverAt": iso_or_none(record.deliver_at),
        },
        "job": {"id": run.job_slug, "version": run.job_version},
        "run": {
            "id": str(run.id),
            "isTest": run.is_test,
            "isRetry": run.failures > 0,
            "startedAt": iso(run.started_at or started),
        },
        "environment": {"id": run.environment_id, "slug": target.environment_slug, "type": target.environment_type},
        "organization": {"id": ORGANIZATION.id, "title": ORGANIZATION.title, "slug": ORGANIZATION.slug},
        "tasks": cached,
        "yieldedExecutions": run.yielded_keys,
        **({"source": record.source_context} if record.source_context is not None else {}),
        "runChunkExecutionLimit": chunking.sdk_limit_ms,
        "autoYieldConfig": AUTO_YIELD_CONFIG,
    }
    if cursor is not None:
        body["cachedTaskCursor"] = cursor
    if (noop_set := task_cache.noop_set(tasks)) is not None:
        body["noopTasksSet"] = noop_set
    return body
