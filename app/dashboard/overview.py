"""The Overview page: the environment's runs per minute by status over the last hour (an SVG chart), its queue,
and the service's figures `jobs-service status` shows: outbox backlog, consumer lag and dead letters.

The broker's figures cost a few round trips: each process reads them at most once every `BROKER_TTL_SECONDS`
(every request in between is served the same answer), and gives up on the broker after `BROKER_WAIT_SECONDS`,
so the page's time stays bounded when the broker is slow or away."""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from litestar import Response, get
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters import backlog, status_readings
from app.adapters.ttl_cache import TtlCache
from app.api.common import AnyRequest, Service
from app.dashboard.chart import STATUS_ORDER, Series, runs_chart
from app.dashboard.web import DashboardEnv, render
from app.settings import Settings

BROKER_TTL_SECONDS = 5.0
BROKER_WAIT_SECONDS = 3.0
MINUTES = 60

_PER_MINUTE = text(
    "SELECT date_trunc('minute', created_at) AS minute, status, count(*) AS n FROM run_status "
    "WHERE environment_id = :env AND created_at >= :since GROUP BY 1, 2"
)
# Runs of the environment waiting for a worker (due now or later), and those waiting on something else.
_QUEUE = text(
    "SELECT count(*) FILTER (WHERE status IN ('QUEUED', 'WAITING_TO_EXECUTE')) AS queued, "
    "count(*) FILTER (WHERE status = 'WAITING_TO_CONTINUE') AS waiting, "
    "count(*) FILTER (WHERE status = 'EXECUTING') AS executing FROM run_status "
    "WHERE environment_id = :env AND status IN ('QUEUED', 'WAITING_TO_EXECUTE', 'WAITING_TO_CONTINUE', 'EXECUTING')"
)


@dataclass(frozen=True, slots=True)
class BrokerFigures:
    lag: int | None  # messages of the execution lanes the workers have not committed; None: unknown
    lag_by_topic: dict[str, int]
    dead_letters: int | None
    read_at: datetime
    problem: str | None = None


class BrokerReader:
    """The broker's figures of this process, read at most once every few seconds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: TtlCache[str, BrokerFigures] = TtlCache(self._read, BROKER_TTL_SECONDS, max_entries=1)

    async def figures(self) -> BrokerFigures:
        return await self._cache.get("broker")

    async def _read(self, _: str) -> BrokerFigures:
        try:
            async with asyncio.timeout(BROKER_WAIT_SECONDS):
                lanes, dead_letters, _workers = await status_readings.from_broker(self.settings)
        except Exception as error:
            reason = "no answer in time" if isinstance(error, TimeoutError) else str(error).splitlines()[0]
            return BrokerFigures(None, {}, None, datetime.now(UTC), f"the broker cannot be read: {reason}")
        by_topic: dict[str, int] = {}
        for partition, where in lanes.items():
            lag = max(0, where.end - max(where.start, where.committed))
            by_topic[partition.topic] = by_topic.get(partition.topic, 0) + lag
        return BrokerFigures(sum(by_topic.values()), by_topic, sum(dead_letters.values()), datetime.now(UTC))


async def runs_per_minute(engine: AsyncEngine, environment_id: UUID, now: datetime) -> Series:
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
    counts: dict[datetime, dict[str, int]] = {}
    async with engine.connect() as conn:
        for minute, run_status, n in await conn.execute(_PER_MINUTE, {"env": environment_id, "since": since}):
            counts.setdefault(minute.astimezone(UTC), {})[run_status] = int(n)
    return Series(now, counts, MINUTES)


async def queue(engine: AsyncEngine, environment_id: UUID) -> dict[str, int]:
    async with engine.connect() as conn:
        row = (await conn.execute(_QUEUE, {"env": environment_id})).one()
    return {"queued": int(row.queued), "waiting": int(row.waiting), "executing": int(row.executing)}


def broker_reader(request: AnyRequest) -> BrokerReader:
    reader: BrokerReader = request.app.state.dashboard_broker
    return reader


@get("/overview", include_in_schema=False)
async def overview_page(request: AnyRequest, env: DashboardEnv, service: Service) -> Response[str]:
    engine = service.reads.engine
    now = datetime.now(UTC)
    series, queued, outbox, oldest, broker = await asyncio.gather(
        runs_per_minute(engine, env.id, now),
        queue(engine, env.id),
        backlog.outbox_backlog(engine),
        backlog.oldest_due_run(engine),
        broker_reader(request).figures(),
    )
    context: dict[str, Any] = {
        "chart": runs_chart(series),
        "totals": series.totals(),
        "queue": queued,
        "outbox": outbox,
        "oldest_due": oldest,
        "broker": broker,
        "now": now,
        "chart_statuses": STATUS_ORDER,
    }
    return render(request, "overview.html", env=env, **context)


HANDLERS = [overview_page]
