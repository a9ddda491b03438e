"""Tells a finished run's subscribers how it ended: a signed POST to the invoker's callback URL, or
RUN_NOTIFICATION to the endpoint. Each try is an event on the run; failures are retried with backoff."""

import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text

from app.endpoint_client import EndpointClient, EndpointError
from app.messages import NotifyRun, outbox_message
from app.sealing import Sealer
from app.store import ConcurrencyConflict, EventStore
from domain import policies
from domain.event_records import EventRecord
from domain.runs import JobRun
from domain.status import RunStatus
from domain.tasks import TaskStatus, iso

log = logging.getLogger(__name__)

MAX_NOTIFICATION_ATTEMPTS = 13
SIGNATURE_HEADER = "X-Trigger-Signature-256"

_CONTEXT = text(
    "SELECT e.slug, e.type, s.sealed_api_key, ep.url, r.completed_at FROM environments e "
    "JOIN environment_secrets s ON s.environment_id = e.id "
    "JOIN endpoints ep ON ep.id = :endpoint_id "
    "JOIN run_status r ON r.id = :run_id WHERE e.id = :env"
)


def sign(body: bytes, api_key: str) -> str:
    return hmac.new(api_key.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(self, store: EventStore, client: EndpointClient, topic: str, sealer: Sealer) -> None:
        self.store = store
        self.client = client
        self.sealer = sealer
        self.topic = topic

    async def handle(self, message: NotifyRun) -> str:
        run = await self.store.get(UUID(message.run_id), JobRun)
        if run is None or not run.accepts_notification(message.target, message.attempt):
            return "duplicate"
        record = await self.store.get(UUID(run.event_record_id), EventRecord)
        async with self.store.engine.connect() as conn:
            params = {"env": UUID(run.environment_id), "endpoint_id": UUID(run.endpoint_id), "run_id": run.id}
            env = (await conn.execute(_CONTEXT, params)).first()
        if record is None or env is None:
            return "missing"
        body = notification(run, record, env.slug, env.type, env.completed_at or run.modified_on)
        api_key = self.sealer.open(env.sealed_api_key)
        delivered, detail = await self._deliver(message.target, run, body, api_key, env.url)
        run.notification_attempted(message.target, message.attempt, delivered, detail)
        retry = not delivered and message.attempt < MAX_NOTIFICATION_ATTEMPTS
        try:
            async with self.store.transaction() as uow:
                await uow.save(run)
                if retry:
                    due = policies.retry_at(datetime.now(UTC), message.attempt)
                    follow_up = NotifyRun(message.run_id, message.target, message.attempt + 1)
                    await uow.enqueue(outbox_message(self.topic, message.run_id, follow_up, due))
        except ConcurrencyConflict:
            return "duplicate"
        if not delivered:
            log.info("run %s: notification to %s failed (try %d): %s", run.id, message.target, message.attempt, detail)
        return "delivered" if delivered else "failed"

    async def _deliver(
        self, target: str, run: JobRun, body: dict[str, Any], api_key: str, endpoint_url: str
    ) -> tuple[bool, str]:
        try:
            if target == "endpoint":
                response = await self.client.call(endpoint_url, api_key, "RUN_NOTIFICATION", body)
            else:
                assert run.callback_url is not None
                content = msgspec.json.encode(body)
                headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(content, api_key)}
                response = await self.client.post(run.callback_url, content, headers)
        except EndpointError as error:
            return False, str(error)
        return 200 <= response.status_code < 300, f"HTTP {response.status_code}"


def notification(
    run: JobRun, record: EventRecord, environment_slug: str, environment_type: str, completed_at: datetime
) -> dict[str, Any]:
    """The run notification trigger.dev sends when a run finishes."""
    ok = run.status is RunStatus.SUCCESS
    body: dict[str, Any] = {
        "id": str(run.id),
        "ok": ok,
        "status": run.status.value,
        "startedAt": iso(run.started_at) if run.started_at else None,
        "updatedAt": iso(completed_at),
        "completedAt": iso(completed_at),
        "isTest": run.is_test,
        "executionDurationInMs": run.execution_ms,
        "executionCount": run.attempt,
        "job": {"id": run.job_slug, "version": run.job_version},
        "statuses": list(run.statuses.values()),
        "environment": {"id": run.environment_id, "slug": environment_slug, "type": environment_type},
        "organization": {"id": "default", "slug": "default", "title": "Default"},
        "project": {"id": "default", "slug": "default", "name": "Default"},
        "invocation": {
            "id": record.event_id,
            "context": record.context,
            "timestamp": record.sent_at,
            "payload": record.payload,
        },
    }
    if ok:
        body["output"] = run.output
    else:
        body["error"] = run.error
        failed = [t for t in run.tasks.values() if t["status"] == TaskStatus.ERRORED]
        if failed:
            task = failed[-1]
            body["task"] = {
                "id": task["idempotencyKey"],
                "cacheKey": task.get("displayKey"),
                "status": task["status"],
                "name": task["name"],
                "icon": task.get("icon"),
                "startedAt": task.get("startedAt"),
                "error": task.get("output"),
                "params": task.get("params"),
            }
    return body
