"""Tells a finished run's subscribers how it ended: a signed POST to the invoker's callback URL, or
RUN_NOTIFICATION to the endpoint. Each try is an event on the run; failures are retried with backoff."""

import hashlib
import hmac
import logging
from datetime import datetime
from typing import Any

import msgspec

from app.adapters.endpoint_client import EndpointClient, EndpointError
from app.adapters.messages import NotifyRun
from app.service import JobsService
from app.service.notifications import Notification
from domain.environments import ORGANIZATION
from domain.event_records import EventRecord
from domain.runs import JobRun
from domain.status import RunStatus
from domain.tasks import Task, TaskStatus
from domain.times import iso

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Trigger-Signature-256"


def sign(body: bytes, api_key: str) -> str:
    return hmac.new(api_key.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(self, service: JobsService, client: EndpointClient) -> None:
        self.notifications = service.notifications
        self.client = client

    async def handle(self, message: NotifyRun) -> str:
        prepared = await self.notifications.prepare(message)
        if isinstance(prepared, str):
            return prepared
        run = prepared.run
        body = notification(
            run, prepared.record, prepared.environment_slug, prepared.environment_type, prepared.completed_at
        )
        delivered, detail = await self._deliver(message.target, prepared, body)
        if not await self.notifications.attempted(message, run, delivered, detail):
            return "duplicate"
        if not delivered:
            log.info("run %s: notification to %s failed (try %d): %s", run.id, message.target, message.attempt, detail)
        return "delivered" if delivered else "failed"

    async def _deliver(self, target: str, to: Notification, body: dict[str, Any]) -> tuple[bool, str]:
        try:
            if target == "endpoint":
                response = await self.client.call(to.endpoint_url, to.api_key, "RUN_NOTIFICATION", body)
            else:
                assert to.run.callback_url is not None
                content = msgspec.json.encode(body)
                headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(content, to.api_key)}
                response = await self.client.post(to.run.callback_url, content, headers)
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
        "organization": {"id": ORGANIZATION.id, "slug": ORGANIZATION.slug, "title": ORGANIZATION.title},
        "project": {"id": ORGANIZATION.id, "slug": ORGANIZATION.slug, "name": ORGANIZATION.title},
        "invocation": {
            "id": record.event_id,
            "context": record.context,
            "timestamp": iso(record.sent_at),
            "payload": record.payload,
        },
    }
    if ok:
        body["output"] = run.output
    else:
        body["error"] = run.error
        failed: list[Task] = [t for t in run.tasks.values() if t.status is TaskStatus.ERRORED]
        if failed:
            task = failed[-1]
            body["task"] = {
                "id": task.idempotency_key,
                "cacheKey": task.display_key,
                "status": task.status.value,
                "name": task.name,
                "icon": task.icon,
                "startedAt": iso(task.started_at),
                "error": task.output,
                "params": task.params,
            }
    return body
