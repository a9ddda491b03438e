"""The application layer: every use case of the service, over one event store, built once in the composition
root (app/container.py). HTTP handlers, the worker, the rescuer and the notifier all call it; it alone opens
write transactions, routes outbox messages to their topics, and holds the short caches.

| group | use cases |
| --- | --- |
| `catalog` | register an endpoint; job versions; where a run's endpoint is called |
| `runs` | TestJob, invoke, rerun; a run now, as it was, its history; run lists |
| `events` | send an event (now or later), deliver a scheduled one, cancel, read |
| `tasks` | the task API the SDK calls while a job executes; status updates |
| `control` | cancel runs, continue a run |
| `executions` | start an attempt, hold its lease, record its outcome; rescue and requeue |
| `notifications` | a finished run's notifications and their tries |
| `operations` | server-performed tasks (io.backgroundFetch...): the attempt due, recording how it went |
| `environments` | environments and their keys; `authenticator` finds a key's environment |
| `store` | the key-value store of an environment (io.store, client.store) |
| `dispatchers` | io.waitForEvent: wait for a matching event, hand it to the waiting task |
| `schedules` | scheduled jobs and DynamicSchedule registrations; firing their ticks |
| `queues` | named concurrency groups with their limits and counts |
"""

from datetime import timedelta

from app.adapters.endpoint_client import EndpointClient
from app.adapters.key_value import KeyValueItems
from app.adapters.reads import ReadModels
from app.adapters.sealing import Sealer
from app.adapters.store import EventStore
from app.adapters.url_policy import UrlPolicy
from app.service.catalog import Catalog
from app.service.control import Control
from app.service.dispatchers import Dispatchers
from app.service.environments import Authenticator, Environments
from app.service.events import Events
from app.service.executions import Executions
from app.service.notifications import Notifications
from app.service.operations import Operations
from app.service.queues import Queues
from app.service.runs import Runs
from app.service.schedules import Schedules
from app.service.store import Store
from app.service.tasks import Tasks
from app.service.writes import RunWriter, Topics
from domain import task_cache


class JobsService:
    def __init__(
        self,
        store: EventStore,
        reads: ReadModels,
        sealer: Sealer,
        client: EndpointClient,
        url_policy: UrlPolicy,
        execution_topic: str,
        api_url: str,
        lease: timedelta,
        cached_tasks_bytes: int = task_cache.PAGE_BUDGET_BYTES,
    ) -> None:
        self.reads = reads
        topics = Topics(execution_topic)
        writer = RunWriter(store, topics)
        self.environments = Environments(store, reads, sealer)
        self.authenticator = Authenticator(reads, sealer)
        self.catalog = Catalog(store, reads, client, url_policy, sealer)
        self.runs = Runs(store, reads, topics, self.catalog, url_policy)
        self.tasks = Tasks(store, writer, api_url, self.authenticator.api_key, cached_tasks_bytes)
        self.dispatchers = Dispatchers(store, reads, topics, self.tasks)
        self.events = Events(store, reads, topics, self.catalog, self.runs, self.dispatchers)
        self.control = Control(reads, writer)
        self.executions = Executions(store, writer, lease)
        self.notifications = Notifications(store, reads, topics, sealer)
        self.store = Store(KeyValueItems(store.engine))
        self.schedules = Schedules(store, reads, topics)
        self.queues = Queues(store, reads)
        self.catalog.index_hooks += [self.schedules.for_index, self.queues.for_index]
        self.catalog.delete_hooks.append(self.schedules.for_deleted_job)
        self.operations = Operations(store, writer)
