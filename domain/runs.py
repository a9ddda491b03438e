"""JobRun: one run of a job version for one event, through its executions and tasks to a final status."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import policies
from domain.environments import EnvironmentType
from domain.execution import Next, Outcome
from domain.fetch_operation import Decision, PollAttempt, Result
from domain.status import RunStatus, check_transition, is_terminal
from domain.tasks import CALLBACK_TIMEOUT_OUTPUT, Task, TaskSpec, TaskStatus, new_task, task_from_v1, task_id

MAX_TAGS = 10


@dataclass(frozen=True, slots=True)
class NextExecution:
    attempt: int
    due_at: datetime


class JobRun(Aggregate):
    TOPIC = "jobs.JobRun"

    class Created(Aggregate.Created):
        TOPIC = "jobs.JobRun.Created"

    class RunCreated(Aggregate.Created):
        TOPIC = "jobs.JobRun.RunCreated"
        environment_id: str
        endpoint_id: str
        job_slug: str
        job_version: str
        event_record_id: str
        is_test: bool
        priority: int
        tags: list[str] | None
        queue: str
        callback_url: str | None
        concurrency_key: str | None
        concurrency_limit: int | None

    class RunStarted(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunStarted"
        attempt: int
        started_at: datetime
        lease_until: datetime

    class RunCompleted(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunCompleted"
        status: str
        output: Any
        error: dict[str, Any] | None
        duration_ms: int

    class RunRetryScheduled(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunRetryScheduled"
        attempt: int
        retry_at: datetime
        error: dict[str, Any] | None
        duration_ms: int

    class RunWaiting(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunWaiting"
        attempt: int
        resume_at: datetime | None
        task_id: str | None
        duration_ms: int

    class RunYielded(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunYielded"
        attempt: int
        reason: str
        duration_ms: int

    class RunAutoYielded(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunAutoYielded"
        attempt: int
        reason: str
        due_at: datetime
        duration_ms: int

    class RunResumed(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunResumed"
        attempt: int
        task_id: str

    class RunLeaseExtended(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunLeaseExtended"
        attempt: int
        lease_until: datetime

    class RunRescued(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunRescued"
        attempt: int
        reason: str

    class RunRequeued(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunRequeued"
        attempt: int

    class StaleAnswerDiscarded(Aggregate.Event):
        TOPIC = "jobs.JobRun.StaleAnswerDiscarded"
        attempt: int
        answer: str

    class RunCanceled(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunCanceled"
        reason: str

    class RunContinued(Aggregate.Event):
        TOPIC = "jobs.JobRun.RunContinued"
        attempt: int

    class TaskCanceled(Aggregate.Event):
        TOPIC = "jobs.JobRun.TaskCanceled"
        task_id: str

    class TaskStarted(Aggregate.Event):
        TOPIC = "jobs.JobRun.TaskStarted"
        class_version = 2
        task: Task

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 kept the task as the SDK's ServerTask (camelCase keys)."""
            state["task"] = task_from_v1(state["task"])

    class TaskCompleted(Aggregate.Event):
        TOPIC = "jobs.JobRun.TaskCompleted"
        task_id: str
        output: Any
        output_properties: Any
        completed_at: datetime

    class TaskFailed(Aggregate.Event):
        TOPIC = "jobs.JobRun.TaskFailed"
        task_id: str
        error: Any
        completed_at: datetime

    class TaskRetryScheduled(Aggregate.Event):
        TOPIC = "jobs.JobRun.TaskRetryScheduled"
        task_id: str
        error: Any
        retry_at: datetime

    class TaskOperationRetryScheduled(Aggregate.Event):
        TOPIC = "jobs.JobRun.TaskOperationRetryScheduled"
        task_id: str
        attempt: int  # the attempt due at `retry_at`
        reason: str
        retry_at: datetime

    class TaskResumed(Aggregate.Event):
        TOPIC = "jobs.JobRun.TaskResumed"
        task_id: str

    class StatusUpdated(Aggregate.Event):
        TOPIC = "jobs.JobRun.StatusUpdated"
        key: str
        label: str | None
        state: str | None
        data: dict[str, Any] | None

    class EndpointSubscribed(Aggregate.Event):
        TOPIC = "jobs.JobRun.EndpointSubscribed"
        on_success: bool
        on_failure: bool

    class NotificationAttempted(Aggregate.Event):
        TOPIC = "jobs.JobRun.NotificationAttempted"
        target: str
        attempt: int
        delivered: bool
        detail: str

    @event(RunCreated)
    def __init__(
        self,
        id: UUID,
        environment_id: str,
        endpoint_id: str,
        job_slug: str,
        job_version: str,
        event_record_id: str,
        is_test: bool,
        priority: int = 0,
        tags: list[str] | None = None,
        queue: str = "default",
        callback_url: str | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
    ) -> None:
        self.environment_id = environment_id
        self.endpoint_id = endpoint_id
        self.job_slug = job_slug
        self.job_version = job_version
        self.event_record_id = event_record_id
        self.is_test = is_test
        self.priority = priority
        self.tags = list(tags or [])
        self.queue = queue
        self.callback_url = callback_url
        self.concurrency_key = concurrency_key
        self.concurrency_limit = concurrency_limit
        self.status = RunStatus.QUEUED
        self.attempt = 0
        self.lease_until: datetime | None = None
        self.started_at: datetime | None = None
        self.output: Any = None
        self.error: dict[str, Any] | None = None
        self.failures = 0
        self.yields = 0
        self.execution_ms = 0
        self.waiting_task: str | None = None
        self.yielded_keys: list[str] = []
        self.tasks: dict[str, Task] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, bool] = {"SUCCESS": False, "FAILURE": False}
        self.notifications: dict[str, int] = {}
        self.delivered: set[str] = set()

    # -- executions -------------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.status)

    def accepts_attempt(self, attempt: int) -> bool:
        """Whether a delivery for `attempt` is the next one; anything else is a duplicate or stale."""
        return not self.is_terminal and attempt == self.attempt + 1 and self.status is not RunStatus.EXECUTING

    def limit_reached(self) -> str | None:
        return policies.over_limits(self.attempt, timedelta(milliseconds=self.execution_ms))

    def start(self, attempt: int, now: datetime, lease: timedelta) -> None:
        if not self.accepts_attempt(attempt):
            raise StaleAttempt(self.id, attempt, self.attempt)
        check_transition(self.status, RunStatus.EXECUTING)
        for task in list(self.tasks.values()):
            if task.due(now):
                if task.noop:
                    self._task_completed(task_id=task.id, output=None, output_properties=None, completed_at=now)
                else:
                    self._task_resumed(task_id=task.id)
        self._started(attempt=attempt, started_at=now, lease_until=now + lease)

    @event(RunStarted)
    def _started(self, attempt: int, started_at: datetime, lease_until: datetime) -> None:
        self.attempt = attempt
        self.lease_until = lease_until
        self.status = RunStatus.EXECUTING
        self.waiting_task = None
        if self.started_at is None:
            self.started_at = started_at

    def executing(self, attempt: int) -> bool:
        """Whether `attempt` is the run's current execution (fencing for a late answer)."""
        return self.status is RunStatus.EXECUTING and self.attempt == attempt

    def extend_lease(self, attempt: int, until: datetime) -> bool:
        if not self.executing(attempt):
            return False
        self._lease_extended(attempt=attempt, lease_until=until)
        return True

    @event(RunLeaseExtended)
    def _lease_extended(self, attempt: int, lease_until: datetime) -> None:
        self.lease_until = lease_until

    def lease_expired(self, now: datetime) -> bool:
        return self.status is RunStatus.EXECUTING and self.lease_until is not None and self.lease_until < now

    def rescue(self, now: datetime) -> NextExecution | None:
        """The worker of the current attempt is gone (its lease expired): schedule a new attempt at once.
        An answer that the old attempt still sends afterwards is stale."""
        if not self.lease_expired(now):
            return None
        self._rescued(attempt=self.attempt + 1, reason=f"the lease of attempt {self.attempt} expired")
        return NextExecution(self.attempt + 1, now)

    @event(RunRescued)
    def _rescued(self, attempt: int, reason: str) -> None:
        self.status = RunStatus.WAITING_TO_EXECUTE
        self.lease_until = None

    def requeue(self) -> bool:
        """Queue the next execution again, because the message that carried it was lost."""
        waiting = (RunStatus.QUEUED, RunStatus.WAITING_TO_EXECUTE, RunStatus.WAITING_TO_CONTINUE)
        if self.status not in waiting or (self.status is RunStatus.WAITING_TO_CONTINUE and self.waiting_task):
            return False
        self._requeued(attempt=self.attempt + 1)
        return True

    @event(RunRequeued)
    def _requeued(self, attempt: int) -> None:
        pass

    def discard_stale_answer(self, attempt: int, answer: str) -> None:
        self._stale_answer_discarded(attempt=attempt, answer=answer)

    @event(StaleAnswerDiscarded)
    def _stale_answer_discarded(self, attempt: int, answer: str) -> None:
        pass

    def finish(
        self, outcome: Outcome, now: datetime, duration_ms: int, environment_type: EnvironmentType
    ) -> NextExecution | None:
        """Record how the current execution ended; returns the execution to schedule next, if any."""
        if outcome.completed_task is not None:
            done = outcome.completed_task
            self.complete_task(done.id, done.output, done.properties, now, serialized_output=True)
        if outcome.next is Next.COMPLETE:
            assert outcome.status is not None
            if outcome.task is not None:
                self._fail_open_task(outcome.task.id, outcome.error, now)
            self.complete(outcome.status, outcome.output, outcome.error, duration_ms)
            return None
        if outcome.next is Next.CANCELED:
            return None
        if outcome.next is Next.RETRY_RUN:
            if not policies.may_retry(self.failures + 1, environment_type):
                self.complete(RunStatus.FAILURE, None, outcome.error, duration_ms)
                return None
            retry_at = policies.retry_at(now, self.failures + 1)
            self._retry_scheduled(
                attempt=self.attempt + 1, retry_at=retry_at, error=outcome.error, duration_ms=duration_ms
            )
            return NextExecution(self.attempt + 1, retry_at)
        if outcome.next is Next.YIELD:
            if self.yields + 1 > policies.MAX_YIELDS:
                error = {"message": f"the run yielded more than {policies.MAX_YIELDS} times", "name": "Error"}
                self.complete(RunStatus.FAILURE, None, error, duration_ms)
                return None
            self._yielded(attempt=self.attempt + 1, reason=outcome.reason, duration_ms=duration_ms)
            return NextExecution(self.attempt + 1, now)
        if outcome.next is Next.AUTO_YIELD:
            # Not an io.yield: neither counted against MAX_YIELDS nor a key of `yieldedExecutions` (only the
            # execution limits bound it, as in trigger.dev).
            due = max(now, outcome.retry_at) if outcome.retry_at is not None else now
            self._auto_yielded(attempt=self.attempt + 1, reason=outcome.reason, due_at=due, duration_ms=duration_ms)
            return NextExecution(self.attempt + 1, due)
        waits = [outcome] if outcome.next is not Next.PARALLEL else list(outcome.children)
        for child in waits:
            if child.completed_task is not None and child is not outcome:
                done = child.completed_task
                self.complete_task(done.id, done.output, done.properties, now, serialized_output=True)
        failed = next((child for child in waits if child.next is Next.COMPLETE), None)
        if failed is not None:
            return self.finish(failed, now, duration_ms, environment_type)
        resume_at, waiting_on = self._wait_for(waits, now)
        self._waiting(attempt=self.attempt + 1, resume_at=resume_at, task_id=waiting_on, duration_ms=duration_ms)
        return None if resume_at is None else NextExecution(self.attempt + 1, resume_at)

    def _wait_for(self, waits: list[Outcome], now: datetime) -> tuple[datetime | None, str | None]:
        due_times: list[datetime] = []
        waiting_on: str | None = None
        for wait in waits:
            if wait.next in (Next.YIELD, Next.AUTO_YIELD) or wait.task is None:
                due_times.append(max(now, wait.retry_at) if wait.retry_at else now)  # a child that yielded
                continue
            known = self.tasks.get(wait.task.id)
            if wait.next is Next.RETRY_TASK and wait.retry_at is not None and known is not None:
                self._task_retry_scheduled(task_id=wait.task.id, error=wait.error, retry_at=wait.retry_at)
                due_times.append(wait.retry_at)
            elif known is not None and known.has_ended:
                due_times.append(
                    now
                )  # finished meanwhile (completed, failed, its callback came or timed out): continue at once
            elif known is not None and (known.operation or known.callback_url):
                waiting_on = known.id  # resumed when the task is completed through the API
            else:
                delay = known.delay_until if known is not None else wait.task.delay_until
                due_times.append(max(now, delay) if delay else now)
        if due_times:
            return min(due_times), None
        return None, waiting_on

    @event(RunRetryScheduled)
    def _retry_scheduled(
        self, attempt: int, retry_at: datetime, error: dict[str, Any] | None, duration_ms: int
    ) -> None:
        self.status = RunStatus.WAITING_TO_EXECUTE
        self.failures += 1
        self.execution_ms += duration_ms
        self.lease_until = None

    @event(RunYielded)
    def _yielded(self, attempt: int, reason: str, duration_ms: int) -> None:
        self.status = RunStatus.WAITING_TO_EXECUTE
        self.yields += 1
        self.execution_ms += duration_ms
        self.lease_until = None
        if reason:
            self.yielded_keys.append(reason)

    @event(RunAutoYielded)
    def _auto_yielded(self, attempt: int, reason: str, due_at: datetime, duration_ms: int) -> None:
        self.status = RunStatus.WAITING_TO_EXECUTE
        self.execution_ms += duration_ms
        self.lease_until = None

    @event(RunWaiting)
    def _waiting(self, attempt: int, resume_at: datetime | None, task_id: str | None, duration_ms: int) -> None:
        self.status = RunStatus.WAITING_TO_CONTINUE
        self.execution_ms += duration_ms
        self.lease_until = None
        self.waiting_task = task_id

    def complete(
        self, status: RunStatus, output: Any = None, error: dict[str, Any] | None = None, duration_ms: int = 0
    ) -> None:
        if not is_terminal(status):
            raise ValueError(f"{status} is not a final status")
        check_transition(self.status, status)
        self._completed(status=status.value, output=output, error=error, duration_ms=duration_ms)

    @event(RunCompleted)
    def _completed(self, status: str, output: Any, error: dict[str, Any] | None, duration_ms: int) -> None:
        self.status = RunStatus(status)
        self.output = output
        self.error = error
        self.lease_until = None
        self.execution_ms += duration_ms

    def cancel(self, reason: str = "canceled") -> bool:
        """Cancel the run unless it already ended; its open tasks are canceled with it."""
        if self.is_terminal:
            return False
        for task in list(self.tasks.values()):
            if task.is_open:
                self._task_canceled(task_id=task.id)
        self._canceled(reason=reason)
        return True

    @event(RunCanceled)
    def _canceled(self, reason: str) -> None:
        self.status = RunStatus.CANCELED
        self.error = {"message": reason, "name": "Canceled"}
        self.lease_until = None
        self.waiting_task = None

    @event(TaskCanceled)
    def _task_canceled(self, task_id: str) -> None:
        self.tasks[task_id].status = TaskStatus.CANCELED

    def continue_run(self, now: datetime) -> NextExecution:
        """Continue a run that ended unsuccessfully: back to QUEUED, errored tasks running again."""
        check_transition(self.status, RunStatus.QUEUED)
        for task in list(self.tasks.values()):
            if task.status in (TaskStatus.ERRORED, TaskStatus.CANCELED):
                self._task_resumed(task_id=task.id)
        self._continued(attempt=self.attempt + 1)
        return NextExecution(self.attempt + 1, now)

    @event(RunContinued)
    def _continued(self, attempt: int) -> None:
        self.status = RunStatus.QUEUED
        self.output = None
        self.error = None
        self.failures = 0
        self.yields = 0

    # -- tasks ------------------------------------------------------------------------------------

    def create_task(self, spec: TaskSpec, now: datetime, callback_url: Callable[[str], str] | None = None) -> Task:
        """The task for this idempotency key: the existing one, or a new one. `callback_url` names the URL
        that completes a task with a callback, given the task's id."""
        id = task_id(self.id, spec.idempotency_key)
        existing = self.tasks.get(id)
        if existing is not None:
            return existing
        url = callback_url(id) if callback_url is not None else None
        task = new_task(self.id, spec, now, self.status is RunStatus.CANCELED, url)
        self._task_started(task=task)
        return self.tasks[task.id]

    @event(TaskStarted)
    def _task_started(self, task: Task) -> None:
        self.tasks[task.id] = task.copy()  # the event keeps the task as it started

    def complete_task(
        self, id: str, output: Any, properties: Any, now: datetime, serialized_output: bool = False
    ) -> Task:
        task = self._task(id)
        if task.has_ended:
            return task
        if serialized_output and isinstance(output, str):
            output = _json_loads(output)
        self._task_completed(task_id=id, output=output, output_properties=properties, completed_at=now)
        self._resume_if_waiting_on(id)
        return self.tasks[id]

    def _resume_if_waiting_on(self, task_id: str) -> None:
        """The task the run waits on ended: execute the run again, so the job sees how it ended."""
        if self.waiting_task == task_id and self.status is RunStatus.WAITING_TO_CONTINUE:
            self._resumed(attempt=self.attempt + 1, task_id=task_id)

    @event(TaskCompleted)
    def _task_completed(self, task_id: str, output: Any, output_properties: Any, completed_at: datetime) -> None:
        task = self.tasks[task_id]
        task.status, task.output, task.completed_at = TaskStatus.COMPLETED, output, completed_at
        if output_properties is not None:
            task.output_properties = output_properties

    @event(RunResumed)
    def _resumed(self, attempt: int, task_id: str) -> None:
        self.waiting_task = None

    def due_execution(self) -> NextExecution | None:
        """The execution that pending events made due at once (a resumed or continued run), if any."""
        for pending in reversed(self.pending_events):
            if isinstance(pending, JobRun.RunResumed | JobRun.RunContinued | JobRun.RunRescued | JobRun.RunRequeued):
                return NextExecution(pending.attempt, pending.timestamp)
        return None

    def fail_task(self, id: str, error: Any, now: datetime) -> Task:
        task = self._task(id)
        if task.has_ended:
            return task
        self._task_failed(task_id=id, error=error, completed_at=now)
        self._resume_if_waiting_on(id)
        return self.tasks[id]

    def time_out_callback(self, id: str, now: datetime) -> bool:
        """The task's callback did not come in time: the task fails (its output says so, as trigger.dev's did)
        and a run waiting for it executes again. False when it no longer waits."""
        task = self.tasks.get(id)
        if task is None or task.status is not TaskStatus.WAITING or not task.callback_url:
            return False
        self._task_failed(task_id=id, error=CALLBACK_TIMEOUT_OUTPUT, completed_at=now)
        if self.waiting_task == id and self.status is RunStatus.WAITING_TO_CONTINUE:
            self._resumed(attempt=self.attempt + 1, task_id=id)
        return True

    def _fail_open_task(self, id: str, error: Any, now: datetime) -> None:
        task = self.tasks.get(id)
        if task is not None and task.status not in (TaskStatus.COMPLETED, TaskStatus.ERRORED):
            self._task_failed(task_id=id, error=error, completed_at=now)

    @event(TaskFailed)
    def _task_failed(self, task_id: str, error: Any, completed_at: datetime) -> None:
        task = self.tasks[task_id]
        task.status, task.output, task.completed_at = TaskStatus.ERRORED, error, completed_at

    @event(TaskRetryScheduled)
    def _task_retry_scheduled(self, task_id: str, error: Any, retry_at: datetime) -> None:
        task = self.tasks[task_id]
        task.status, task.delay_until, task.attempts = TaskStatus.WAITING, retry_at, task.attempts + 1

    @event(TaskResumed)
    def _task_resumed(self, task_id: str) -> None:
        task = self.tasks[task_id]
        task.status, task.delay_until = TaskStatus.RUNNING, None

    # -- server-performed tasks (fetch operations) -------------------------------------------------

    def operation_due(self, task_id: str, attempt: int) -> Task | None:
        """The task whose operation attempt `attempt` is to be performed now; None when that is stale (the task
        ended, was canceled, or is at another attempt) or the run ended."""
        task = self.tasks.get(task_id)
        if self.is_terminal or task is None or not task.operation:
            return None
        return task if task.status is TaskStatus.RUNNING and task.attempts == attempt else None

    def record_operation(
        self, task_id: str, attempt: int, result: Result, now: datetime, poll: PollAttempt | None = None
    ) -> bool:
        """How attempt `attempt` of the task's operation went; False (nothing recorded) when it is stale. A task
        that ends resumes the run waiting on it. A poll's request is kept as a noop sub-task, as trigger.dev did."""
        if self.operation_due(task_id, attempt) is None:
            return False
        if poll is not None:
            spec = TaskSpec(
                idempotency_key=f"poll-attempt:{task_id}:{attempt}",
                name="poll attempt",
                noop=True,
                icon="activity",
                description=f"{poll.method} {poll.url} {poll.status}",
                params={"status": poll.status, "headers": poll.headers, "body": poll.body},
                style={"style": "minimal", "variant": "info"},
                parent_id=task_id,
            )
            self.create_task(spec, now)
        if result.decision is Decision.COMPLETE:
            self.complete_task(task_id, result.output, None, now)
        elif result.decision is Decision.FAIL:
            self.fail_task(task_id, result.output, now)
        else:
            assert result.retry_at is not None
            self._operation_retry_scheduled(
                task_id=task_id, attempt=attempt + 1, reason=result.reason, retry_at=result.retry_at
            )
        return True

    @event(TaskOperationRetryScheduled)
    def _operation_retry_scheduled(self, task_id: str, attempt: int, reason: str, retry_at: datetime) -> None:
        self.tasks[task_id].attempts = attempt

    def _task(self, id: str) -> Task:
        task = self.tasks.get(id)
        if task is None:
            raise UnknownTask(id)
        return task

    def completed_tasks(self) -> list[Task]:
        """Completed tasks sent back to the endpoint so the job replays past them."""
        return [t for t in self.tasks.values() if t.status is TaskStatus.COMPLETED and not t.noop]

    # -- statuses, subscriptions, notifications ---------------------------------------------------

    def update_status(
        self, key: str, label: str | None, state: str | None, data: dict[str, Any] | None
    ) -> dict[str, Any]:
        self._status_updated(key=key, label=label, state=state, data=data)
        return self.statuses[key]

    @event(StatusUpdated)
    def _status_updated(self, key: str, label: str | None, state: str | None, data: dict[str, Any] | None) -> None:
        previous = self.statuses.get(key)
        if previous is None:
            record: dict[str, Any] = {"key": key, "label": label or key, "history": []}
        else:
            record = previous
            record["history"].append({k: v for k, v in previous.items() if k in ("label", "state", "data")})
            if label is not None:
                record["label"] = label
        if state is not None:
            record["state"] = state
        if data is not None:
            record["data"] = data
        self.statuses[key] = record

    def subscribe_endpoint(self, on_success: bool, on_failure: bool) -> None:
        if (on_success, on_failure) != (self.subscriptions["SUCCESS"], self.subscriptions["FAILURE"]):
            self._endpoint_subscribed(on_success=on_success, on_failure=on_failure)

    @event(EndpointSubscribed)
    def _endpoint_subscribed(self, on_success: bool, on_failure: bool) -> None:
        self.subscriptions = {"SUCCESS": on_success, "FAILURE": on_failure}

    def notification_targets(self) -> list[str]:
        """Who hears about this finished run: the invoker's callback URL, and the endpoint if it asked."""
        if not self.is_terminal:
            return []
        targets = ["callback"] if self.callback_url else []
        outcome = "SUCCESS" if self.status is RunStatus.SUCCESS else "FAILURE"
        if self.subscriptions[outcome]:
            targets.append("endpoint")
        return targets

    def accepts_notification(self, target: str, attempt: int) -> bool:
        return target not in self.delivered and attempt == self.notifications.get(target, 0) + 1

    def notification_attempted(self, target: str, attempt: int, delivered: bool, detail: str) -> None:
        self._notification_attempted(target=target, attempt=attempt, delivered=delivered, detail=detail)

    @event(NotificationAttempted)
    def _notification_attempted(self, target: str, attempt: int, delivered: bool, detail: str) -> None:
        self.notifications[target] = attempt
        if delivered:
            self.delivered.add(target)


class StaleAttempt(Exception):
    def __init__(self, run_id: UUID, attempt: int, current: int) -> None:
        super().__init__(f"run {run_id}: attempt {attempt} is not next after {current}")
        self.run_id = run_id
        self.attempt = attempt
        self.current = current


class UnknownTask(KeyError):
    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


def validate_tags(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise ValueError(f"a run takes at most {MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        if not tag or len(tag) > 64:
            raise ValueError("each tag must be 1 to 64 characters")
    return tags


def _json_loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
