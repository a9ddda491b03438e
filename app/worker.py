"""The worker: consumes job-execution, executes each run attempt on its endpoint, records the outcome.

Kafka delivers at least once; a delivery that is not the run's next attempt is acknowledged and ignored.
Offsets are committed only after the database commit of every message before them.
"""

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import text

from app.endpoint_client import EndpointClient, EndpointError
from app.messages import ExecuteJobRun, decode_message
from app.store import ConcurrencyConflict, EventStore
from domain import execution
from domain.event_records import EventRecord
from domain.runs import JobRun

log = logging.getLogger(__name__)

_TARGET = text(
    "SELECT ep.url, e.slug, e.type, s.api_key FROM endpoints ep "
    "JOIN environments e ON e.id = ep.environment_id "
    "JOIN environment_secrets s ON s.environment_id = e.id WHERE ep.id = :endpoint_id"
)

ORGANIZATION = {"id": "default", "title": "Default", "slug": "default"}


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    environment_slug: str
    environment_type: str
    api_key: str


class RunExecutor:
    """Executes one delivery of a run attempt: start, call the endpoint, complete."""

    def __init__(self, store: EventStore, client: EndpointClient, lease_seconds: float) -> None:
        self.store = store
        self.client = client
        self.lease = timedelta(seconds=lease_seconds)
        self.counts: Counter[str] = Counter()

    async def handle(self, message: ExecuteJobRun) -> str:
        outcome = await self._handle(message)
        self.counts[outcome] += 1
        return outcome

    async def _handle(self, message: ExecuteJobRun) -> str:
        run = await self.store.get(UUID(message.run_id), JobRun)
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
        started = datetime.now(UTC)
        run.start(message.attempt, started, self.lease)
        try:
            await self.store.save(run)
        except ConcurrencyConflict:
            log.info("run %s attempt %d was started by another worker; skipped", run.id, message.attempt)
            return "duplicate"
        result = await self._execute(run, started)
        run.complete(result.status, result.output, result.error, _ms_since(started))
        try:
            await self.store.save(run)
        except ConcurrencyConflict:
            log.warning("run %s changed while attempt %d executed; its result is dropped", run.id, run.attempt)
            return "superseded"
        return "completed"

    async def _execute(self, run: JobRun, started: datetime) -> execution.Outcome:
        target = await self._target(run.endpoint_id)
        if target is None:
            return execution.from_transport_failure(f"endpoint {run.endpoint_id} is not registered")
        record = await self.store.get(UUID(run.event_record_id), EventRecord)
        if record is None:
            return execution.from_transport_failure(f"event record {run.event_record_id} is missing")
        body = run_job_body(run, record, target, started)
        try:
            response = await self.client.call(target.url, target.api_key, "EXECUTE_JOB", body)
        except EndpointError as error:
            return execution.from_transport_failure(str(error))
        try:
            answer = msgspec.json.decode(response.content) if response.status_code == 200 else None
        except msgspec.DecodeError:
            answer = None
        return execution.from_response(response.status_code, answer)

    async def _target(self, endpoint_id: str) -> Target | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(_TARGET, {"endpoint_id": UUID(endpoint_id)})).first()
        return None if row is None else Target(row.url, row.slug, row.type, row.api_key)


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
            "isRetry": run.attempt > 1,
            "startedAt": _iso(run.started_at or started),
        },
        "environment": {"id": run.environment_id, "slug": target.environment_slug, "type": target.environment_type},
        "organization": ORGANIZATION,
        "tasks": [],
    }


class Worker:
    """A member of the job-execution consumer group."""

    def __init__(self, consumer: AIOKafkaConsumer, executor: RunExecutor, concurrency: int = 64) -> None:
        self.consumer = consumer
        self.executor = executor
        self.concurrency = concurrency
        self.malformed = 0

    async def run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=1000, max_records=self.concurrency)
            if batches:
                await self._process(batches)

    async def _process(self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(record: ConsumerRecord[bytes, bytes]) -> bool:
            async with limit:
                return await self._handle_record(record)

        results = await asyncio.gather(*(asyncio.gather(*(one(r) for r in records)) for records in batches.values()))
        commits: dict[TopicPartition, int] = {}
        for (partition, records), done in zip(batches.items(), results, strict=True):
            failed = next((r.offset for r, ok in zip(records, done, strict=True) if not ok), None)
            if failed is None:
                commits[partition] = records[-1].offset + 1
                continue
            if failed > records[0].offset:
                commits[partition] = failed
            self.consumer.seek(partition, failed)
        if commits:
            await self.consumer.commit(commits)

    async def _handle_record(self, record: ConsumerRecord[bytes, bytes]) -> bool:
        """True when the record is done with (handled or skipped for good); False to redeliver it."""
        try:
            message = decode_message(record.value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self.malformed += 1
            log.error(
                "malformed message at %s/%d offset %d skipped: %s", record.topic, record.partition, record.offset, error
            )
            return True
        try:
            await self.executor.handle(message)
        except Exception:
            log.exception(
                "run %s attempt %d failed to process; it will be redelivered", message.run_id, message.attempt
            )
            await asyncio.sleep(1.0)
            return False
        return True


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _ms_since(start: datetime) -> int:
    return int((datetime.now(UTC) - start).total_seconds() * 1000)
