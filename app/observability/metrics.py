"""Every Prometheus series the service exports, declared once (the process's default registry, which also holds
the client's process and Python collectors). Labels are bounded: route templates, statuses, topics, partitions."""

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin of every series

# Seconds, from a millisecond to five minutes: queue waits, endpoint calls, executions, HTTP requests.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

HTTP_REQUESTS = Counter("jobs_http_requests", "HTTP requests answered by the API", ["method", "route", "status"])
HTTP_REQUEST_DURATION = Histogram(
    "jobs_http_request_duration_seconds", "Time to answer an API request", ["method", "route"], buckets=LATENCY_BUCKETS
)
RUNS_CREATED = Counter("jobs_runs_created", "Runs created (TestJob, invoke, events, schedules, reruns)")
RUNS_FINISHED = Counter("jobs_runs_finished", "Runs that reached a final status", ["status"])
RUN_QUEUE_WAIT = Histogram(
    "jobs_run_queue_wait_seconds", "From a run's creation to its first start", buckets=LATENCY_BUCKETS
)
RUN_EXECUTION = Histogram(
    "jobs_run_execution_seconds", "From a run's start to its final status", buckets=LATENCY_BUCKETS
)
ENDPOINT_REQUEST_DURATION = Histogram(
    "jobs_endpoint_request_duration_seconds",
    "Calls to users' endpoints and callback URLs, by outcome (ok, error, timeout, refused, unreachable)",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
OUTBOX_PENDING = Gauge("jobs_outbox_pending", "Outbox rows whose message is not handled yet")
OUTBOX_OLDEST_AGE = Gauge(
    "jobs_outbox_oldest_age_seconds", "Age of the oldest due outbox row not yet published (0 when none)"
)
RELAY_PUBLISHED = Counter("jobs_relay_published", "Messages the relay published", ["topic"])
CONSUMER_LAG = Gauge(
    "jobs_consumer_lag", "Messages of a partition this worker holds that are not committed yet", ["topic", "partition"]
)
MESSAGES_HANDLED = Counter(
    "jobs_messages_handled", "Messages a worker is done with, by type and outcome", ["type", "outcome"]
)
DEAD_LETTERS = Counter("jobs_dead_letters", "Messages sent to the dead-letter topic")
RUNS_RESCUED = Counter("jobs_runs_rescued", "Attempts whose lease expired, given back to the queue")
RUNS_REQUEUED = Counter("jobs_runs_requeued", "Lost messages published again by the rescuer")
GROUP_COMMIT_BATCH_SIZE = Histogram(
    "jobs_group_commit_batch_size", "Writes that shared one transaction", buckets=BATCH_BUCKETS
)
ASSIGNED_PARTITIONS = Gauge("jobs_consumer_assigned_partitions", "Partitions this worker's consumer holds")
