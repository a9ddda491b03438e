"""Performs server-performed tasks (io.backgroundFetch, backgroundFetchResponse, backgroundPoll): one attempt per
PerformTask message, the request sent under the same URL policy as every outgoing call, the result recorded on
the run (which resumes it when the task ended). A crash mid-request leaves the message unhandled: it is
delivered again and the attempt performed again; recording is fenced by the attempt number."""

import logging
import random
from collections import Counter
from datetime import UTC, datetime
from uuid import UUID

import msgspec

from app.adapters import json_limits
from app.adapters.endpoint_client import EndpointClient, EndpointError, EndpointResponse
from app.adapters.messages import PerformTask
from app.adapters.url_policy import UrlPolicy
from app.errors import ClientError
from app.service import JobsService
from domain import fetch_operation
from domain.fetch_operation import FetchRequest, InvalidOperation, Operation, PollAttempt, Result

log = logging.getLogger(__name__)


class TaskPerformer:
    def __init__(
        self,
        service: JobsService,
        client: EndpointClient,
        policy: UrlPolicy,
        min_poll_interval: float = fetch_operation.POLL_INTERVAL_SECONDS[1],
    ) -> None:
        self.operations = service.operations
        self.client = client
        self.policy = policy
        self.min_poll_interval = min_poll_interval
        self.counts: Counter[str] = Counter()

    async def handle(self, message: PerformTask) -> str:
        outcome = await self._handle(message)
        self.counts[outcome] += 1
        return outcome

    async def _handle(self, message: PerformTask) -> str:
        try:
            run_id = UUID(message.run_id)
        except ValueError:
            return "missing"
        due = await self.operations.due(run_id, message.task_id, message.attempt)
        if due is None:
            log.info("task %s attempt %d of run %s is done or stale; skipped", message.task_id, message.attempt, run_id)
            return "duplicate"
        task = due.task
        assert task.operation is not None
        poll: PollAttempt | None = None
        try:
            operation = fetch_operation.parse(task.operation, task.params, self.min_poll_interval)
        except InvalidOperation as error:
            result = fetch_operation.fail({"message": str(error)})
        else:
            expired = fetch_operation.poll_expired(operation, task.started_at, datetime.now(UTC))
            if expired is not None:
                result = expired
            else:
                result, poll = await self._perform(operation, message.attempt)
        if not await self.operations.record(run_id, message.task_id, message.attempt, result, poll):
            return "duplicate"
        return result.decision.value

    async def _perform(self, operation: Operation, attempt: int) -> tuple[Result, PollAttempt | None]:
        """The attempt's result, and for a poll that got an answer, the request as its sub-task keeps it."""
        request = operation.request
        try:
            await self.policy.check(request.url, "url")
        except ClientError as error:
            return fetch_operation.fail({"message": f"refused to fetch {request.url}: {error}"}), None
        try:
            response = await self._send(request)
        except EndpointError as error:
            now = datetime.now(UTC)
            if error.refused:
                return fetch_operation.fail({"message": str(error)}), None
            if error.timed_out:
                return fetch_operation.after_timeout(operation, attempt, now, random.random()), None
            return fetch_operation.after_unreachable(operation, str(error), attempt, now), None
        try:
            answer = _response(response)
        except json_limits.JsonRefused as error:
            return fetch_operation.fail({"message": f"the answer of {request.url} cannot be kept: {error}"}), None
        result = fetch_operation.after_response(operation, answer, attempt, datetime.now(UTC), random.random())
        if operation.kind != "fetch-poll":
            return result, None
        return result, PollAttempt(request.method, request.url, answer.status, answer.headers, answer.body)

    async def _send(self, request: FetchRequest) -> EndpointResponse:
        return await self.client.fetch(
            request.method, request.url, request.headers, request.body, request.timeout_ms / 1000
        )


def _response(response: EndpointResponse) -> fetch_operation.Response:
    """The answer as the rules take it: its JSON body when it is JSON (within the limits of stored JSON)."""
    headers = {name.lower(): value for name, value in response.headers.items()}
    try:
        body = msgspec.json.decode(response.content) if response.content else None
        is_json = bool(response.content)
    except msgspec.DecodeError:
        return fetch_operation.Response(response.status_code, headers, None, False)
    if is_json:
        json_limits.check(response.content, "the answer")
    return fetch_operation.Response(response.status_code, headers, body, is_json)
