"""Executes one run attempt: start it, call the endpoint with EXECUTE_JOB, record how the execution ended."""

import asyncio
import contextlib
import functools
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text

from app import json_limits
from app.endpoint_client import EndpointClient, EndpointError, EndpointResponse
from app.errors import NotFound
from app.messages import ExecuteJobRun
from app.run_writes import CONFLICT_RETRIES, change_run, commit_run, execution_outbox, save_run
from app.sealing import Sealer
from app.store import ConcurrencyConflict, EventStore
from app.ttl_cache import TtlCache
from domain import execution
from domain.environments import EnvironmentType
from domain.event_records import EventRecord
from domain.runs import JobRun, NextExecution
from domain.status import RunStatus
from domain.tasks import iso

log = logging.getLogger(__name__)

# No secret row: the environment's key was revoked (an endpoint that is gone finds no row at all).
_TARGET = text(
    "SELECT ep.url, e.slug, e.type, s.sealed_api_key, v.metadata FROM endpoints ep "
    "JOIN environments e ON e.id = ep.environment_id "
    "LEFT JOIN environment_secrets s ON s.environment_id = e.id "
    "LEFT JOIN job_versions v ON v.environment_id = e.id AND v.job_slug = :job AND v.version = :version "
    "WHERE ep.id = :endpoint_id"
)

# Starts of runs that share a concurrency key take turns, so the count below cannot be raced.
_LOCK_CONCURRENCY_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))")
_EXECUTING = text(
    "SELECT count(*) FROM run_status WHERE environment_id = :env AND concurrency_key = :key AND status = 'EXECUTING'"
)
CONCURRENCY_RECHECK = timedelta(milliseconds=200)
TARGET_CACHE_SECONDS = 2.0

ORGANIZATION = {"id": "default", "title": "Default", "slug": "default"}


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    environment_slug: str
    environment_type: EnvironmentType
    api_key: str | None  # None: revoked
    version_enabled: bool


class RunExecutor:
    def __init__(
        self, store: EventStore, client: EndpointClient, topic: str, lease_seconds: float, sealer: Sealer
    ) -> None:
        self.store = store
        self.client = client
        self.sealer = sealer
        self.topic = topic
        self.lease = timedelta(seconds=lease_seconds)
        self.counts: Counter[str] = Counter()
        self._targets: TtlCache[tuple[str, str, str], Target | None] = TtlCache(self._find_target, TARGET_CACHE_SECONDS)

    async def handle(self, message: ExecuteJobRun) -> str:
        outcome = await self._handle(message)
        self.counts[outcome] += 1
        return outcome

    async def _handle(self, message: ExecuteJobRun) -> str:
        # Both in one query (concurrent loads are coalesced): the event record is needed once the run starts.
        run, record = await asyncio.gather(
            self.store.get(UUID(message.run_id), JobRun), self.store.get(UUID(message.event_record_id), EventRecord)
        )
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
        target = await self._target(run)
        if stop := self._refusal(run, target):
            status, reason = stop
            run.complete(status, error={"message": reason, "name": "Error"})
            return await self._save(run, "ended before executing")
        assert target is not None
        started = await self._start(run, message.attempt)
        if isinstance(started, str):
            return started  # deferred (concurrency limit) or duplicate
        assert record is not None, f"event record {run.event_record_id} of run {run.id} is missing"
        async with self._holding_lease(run.id, message.attempt):
            outcome, subscriptions = await self._call(target, run_job_body(run, record, target, started))
        return await self._finish(run, message.attempt, outcome, subscriptions, started, target)

    async def fail_unprocessable(self, message: ExecuteJobRun, reason: str) -> None:
        """The worker gave up on this execution (it failed every time): the run it was due for fails with the
        reason, rather than wait for an execution that will never come."""
        try:
            run_id = UUID(message.run_id)
        except ValueError:
            return
        error = {"message": f"the worker could not execute this run: {reason}", "name": "Unprocessable"}

        def fail(run: JobRun) -> None:
            if run.accepts_attempt(message.attempt):
                run.complete(RunStatus.FAILURE, error=error)

        try:
            await change_run(self.store, self.topic, run_id, None, fail)
        except NotFound:
            pass

    @contextlib.asynccontextmanager
    async def _holding_lease(self, run_id: UUID, attempt: int) -> AsyncIterator[None]:
        """Extends the attempt's lease while its endpoint call is in flight, so no rescuer takes it over."""

        async def extend() -> None:
            while True:
                await asyncio.sleep(self.lease.total_seconds() / 3)
                until = datetime.now(UTC) + self.lease
                try:
                    await change_run(self.store, self.topic, run_id, None, functools.partial(_extend, attempt, until))
                except Exception:
                    log.warning("run %s: could not extend the lease of attempt %d", run_id, attempt, exc_info=True)

        extender = asyncio.create_task(extend())
        try:
            yield
        finally:
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

    async def _finish(
        self,
        run: JobRun,
        attempt: int,
        outcome: execution.Outcome,
        subscriptions: dict[str, bool] | None,
        started: datetime,
        target: Target,
    ) -> str:
        """Record the outcome on the run. The SDK may have written tasks to it meanwhile (and the lease was
        extended): on a conflict the run is read again and the outcome applied to it as it is now."""
        for _ in range(CONFLICT_RETRIES):
            next_execution = None
            if not run.executing(attempt):
                log.warning(
                    "run %s: the answer of attempt %d came after the run moved on (%s, attempt %d); "
                    "it is recorded as stale and changes nothing",
                    run.id,
                    attempt,
                    run.status,
                    run.attempt,
                )
                run.discard_stale_answer(attempt, outcome.status.value if outcome.status else outcome.next.value)
                label = "stale"
            else:
                if subscriptions is not None:
                    run.subscribe_endpoint(subscriptions["SUCCESS"], subscriptions["FAILURE"])
                now = datetime.now(UTC)
                duration_ms = int((now - started).total_seconds() * 1000)
                next_execution = run.finish(outcome, now, duration_ms, target.environment_type)
                label = "completed" if run.is_terminal else "continued"
            if await self._try_save(run, next_execution):
                return label
            reloaded = await self.store.get(run.id, JobRun)
            assert reloaded is not None
            run = reloaded
        raise ConcurrencyConflict(f"run {run.id} kept changing while its execution was recorded")

    async def _try_save(self, run: JobRun, next_execution: NextExecution | None = None) -> bool:
        try:
            await commit_run(self.store, self.topic, run, next_execution)
        except ConcurrencyConflict:
            return False
        return True

    async def _start(self, run: JobRun, attempt: int) -> datetime | str:
        """Start the attempt, unless the run's concurrency limit is reached: then it waits, as a later message.
        Returns when it started, or why it did not."""
        try:
            if not (run.concurrency_key and run.concurrency_limit):
                started = datetime.now(UTC)
                run.start(attempt, started, self.lease)
                await commit_run(self.store, self.topic, run)
                return started
            async with self.store.transaction() as uow:
                params = {
                    "env": UUID(run.environment_id),
                    "key": run.concurrency_key,
                    "lock": f"{run.environment_id}:{run.concurrency_key}",
                }
                await uow.conn.execute(_LOCK_CONCURRENCY_KEY, params)
                executing = (await uow.conn.execute(_EXECUTING, params)).scalar_one()
                if executing >= run.concurrency_limit:
                    due = datetime.now(UTC) + CONCURRENCY_RECHECK * (1 + random.random())
                    await uow.enqueue(execution_outbox(self.topic, run, attempt, due))
                    return "deferred"
                # Started only now, after the slot was taken: no start is dated before a slot was free.
                started = datetime.now(UTC)
                run.start(attempt, started, self.lease)
                await save_run(uow, self.topic, run)
        except ConcurrencyConflict:
            log.info("run %s changed meanwhile (another worker); skipped", run.id)
            return "duplicate"
        return started

    async def _save(self, run: JobRun, outcome: str) -> str:
        try:
            await commit_run(self.store, self.topic, run)
        except ConcurrencyConflict:
            log.info("run %s changed meanwhile (another worker); skipped", run.id)
            return "duplicate"
        return outcome

    async def _target(self, run: JobRun) -> Target | None:
        """Where and how to call the run's endpoint; kept for a moment, since runs of a job come in crowds."""
        key = (run.endpoint_id, run.job_slug, run.job_version)
        target = await self._targets.get(key)
        if target is not None and target.api_key is None:
            # Revoked a moment ago may be rotated in by now, and the run continued: ask again, it is rare.
            target = await self._find_target(key)
        return target

    async def _find_target(self, key: tuple[str, str, str]) -> Target | None:
        endpoint_id, job_slug, job_version = key
        params = {"endpoint_id": UUID(endpoint_id), "job": job_slug, "version": job_version}
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(_TARGET, params)).first()
        if row is None:
            return None
        enabled = row.metadata is None or row.metadata.get("enabled", True) is not False
        api_key = None if row.sealed_api_key is None else self.sealer.open(row.sealed_api_key)
        return Target(row.url, row.slug, EnvironmentType(row.type), api_key, enabled)


def _extend(attempt: int, until: datetime, run: JobRun) -> bool:
    return run.extend_lease(attempt, until)


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


def run_job_body(run: JobRun, record: EventRecord, target: Target, started: datetime) -> dict[str, Any]:
    """The RunJobBody of an EXECUTE_JOB call."""
    return {
        "event": {
            "id": record.event_id,
            "name": record.name,
            "payload": record.payload,
            "context": record.context,
            "timestamp": record.sent_at,
            "deliverAt": record.deliver_at,
        },
        "job": {"id": run.job_slug, "version": run.job_version},
        "run": {
            "id": str(run.id),
            "isTest": run.is_test,
            "isRetry": run.failures > 0,
            "startedAt": iso(run.started_at or started),
        },
        "environment": {"id": run.environment_id, "slug": target.environment_slug, "type": target.environment_type},
        "organization": ORGANIZATION,
        "tasks": run.completed_tasks(),
        "yieldedExecutions": run.yielded_keys,
    }
