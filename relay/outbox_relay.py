"""The outbox relay: publishes due outbox rows to Kafka and records, on each row the broker acked, where the
message went (topic, partition, offset). The row stays until a worker has handled the message."""

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer

from app.adapters.outbox import Outbox, Published
from app.adapters.relay_shares import EVERYTHING, RelayShares
from app.adapters.topic_ring import TopicRing
from app.faults import is_unavailable
from app.observability import record as observed
from app.observability import tracing
from app.observability.logs import Failures

log = logging.getLogger(__name__)

HELD_BACK_POLL_SECONDS = 0.1  # how soon a relay held back by max_in_flight looks again
# How soon a relay that found rows due but could claim none (another relay holds them until it has published
# them) looks again, unless woken first: without it, it would claim nothing over and over meanwhile.
CONTENDED_POLL_SECONDS = 0.05
# A relay claims at most once per this many seconds (or per its last claim's duration, if longer) per live
# relay, unless its last batch was full: every commit of every API process sends a NOTIFY, which wakes every
# relay, and a claim has a fixed cost (a transaction, a produce request, and downstream a fetch and smaller
# batches for the workers) whatever it carries. So together the relays claim about as often as one relay
# would, however many there are and however many processes commit: n relays each claiming back to back would
# carry batches n times smaller, at n times the cost a row (two relays on one machine halved throughput).
# 10 ms rather than 5: at 500 runs/s each claim then carries twice the runs, the stack spent 15% less CPU a run
# and p99 submit -> started fell (docs/scaling.md#below-saturation); 20 ms added more wait than it saved.
CLAIM_INTERVAL_SECONDS = 0.010
SHARE_REFRESH_SECONDS = 1.0  # how often a relay looks which relays are live (a dead one's share is taken then)


class OutboxRelay:
    def __init__(
        self,
        outbox: Outbox,
        producer: AIOKafkaProducer,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        pause_after_publish: float = 0.0,
        ring: TopicRing | None = None,
        max_in_flight: int = 0,
        shares: RelayShares | None = None,
        claim_interval: float = CLAIM_INTERVAL_SECONDS,
    ) -> None:
        # With a broker that keeps everything in memory (the embedded one), at most this many messages are
        # published and not yet handled: beyond it the backlog waits in the outbox, not in the broker (0: no limit).
        self.max_in_flight = max_in_flight
        self.held_back = False
        self._room = 0  # at least this many more may be published (handled messages only add to it)
        self.pause_after_publish = pause_after_publish
        self.ring = ring or TopicRing()
        self.outbox = outbox
        self.producer = producer
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.published = 0
        # Several relays each claim their own share of the rows (none: this relay claims from every row).
        self.shares = shares
        self.share = EVERYTHING
        self._share_looked_at = -SHARE_REFRESH_SECONDS
        self.claim_interval = claim_interval
        self._claimed_at = -claim_interval
        self._claim_took = 0.0
        self._last_full = False
        self._wake = asyncio.Event()
        self.failures = Failures(log, "outbox relay: publishing")

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch of due rows; returns how many were published."""
        limit = self.batch_size
        if self.max_in_flight:
            if self._room < limit:  # counted again only when the room known is short of a batch
                self._room = self.max_in_flight - await self.outbox.in_flight()
            limit = min(limit, self._room)
            self.held_back = limit <= 0
            if self.held_back:
                return 0
        async with self.outbox.claim(limit, self.share) as claim:
            if not claim.rows:
                return 0
            now = time.time()  # one slot of the ring for the whole batch
            spans = tracing.publishing([row.headers for row in claim.rows], [row.topic for row in claim.rows])
            try:
                sent = [
                    await self.producer.send(
                        self.ring.current(row.topic, now),
                        value=row.value,
                        key=row.key.encode(),
                        headers=_headers(row.id, row.headers if spans is None else spans.headers(i, row.headers)),
                    )
                    for i, row in enumerate(claim.rows)
                ]
                acked = await asyncio.gather(*sent)
            except BaseException as error:
                if spans is not None:
                    spans.end(error)
                raise
            if spans is not None:
                spans.end()
            if self.pause_after_publish:
                await asyncio.sleep(self.pause_after_publish)  # fault injection: a crash here duplicates
            await claim.published(
                [
                    Published(row.id, meta.topic, meta.partition, meta.offset)
                    for row, meta in zip(claim.rows, acked, strict=True)
                ]
            )
        self.published += len(claim.rows)
        self._room -= len(claim.rows)
        observed.published(row.topic for row in claim.rows)
        return len(claim.rows)

    async def refresh_share(self) -> None:
        """Look again which relays are live, at most every SHARE_REFRESH_SECONDS."""
        if self.shares is None or time.monotonic() - self._share_looked_at < SHARE_REFRESH_SECONDS:
            return
        self._share_looked_at = time.monotonic()
        self.share = await self.shares.refresh()

    async def run(self) -> None:
        try:
            async with self.outbox.listening(self._wake.set):
                await self._run()
        finally:
            if self.shares is not None:
                await asyncio.shield(self.shares.close())

    async def _run(self) -> None:
        while True:
            await self.refresh_share()
            await self._pace()
            self._wake.clear()  # what woke it meanwhile is claimed now
            self._claimed_at = time.monotonic()
            try:
                published = await self.publish_batch()
            except Exception as error:
                self.failures.failed(error, self.poll_seconds, traceback=not is_unavailable(error))
                await asyncio.sleep(self.poll_seconds)
                continue
            self._claim_took = time.monotonic() - self._claimed_at
            self.failures.succeeded()
            self._last_full = published == self.batch_size
            if self._last_full:
                continue
            if self.held_back:  # rows are due, but the broker holds enough until workers handle some
                await asyncio.sleep(HELD_BACK_POLL_SECONDS)
                continue
            if self._wake.is_set():
                continue  # more rows are waiting: no need to ask when the next one is due
            idle = await self._idle_seconds(claimed_none=published == 0)
            try:
                await asyncio.wait_for(self._wake.wait(), idle)
            except TimeoutError:
                pass

    async def _pace(self) -> None:
        """Let rows gather until the claim interval, or the last claim's duration, has passed once per live relay
        since the last claim started, unless a backlog is draining."""
        if self._last_full:
            return
        due = next_claim_at(self._claimed_at, self._claim_took, self.claim_interval, self.share.count)
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _idle_seconds(self, claimed_none: bool) -> float:
        try:
            due_in = await self.outbox.next_due_in(self.share)
        except Exception:
            return self.poll_seconds
        if due_in is None:
            return self.poll_seconds
        if due_in <= 0 and claimed_none:
            return CONTENDED_POLL_SECONDS
        return max(0.0, min(due_in, self.poll_seconds))


def next_claim_at(last_started: float, last_took: float, interval: float, relays: int) -> float:
    """When a relay claims next: once the claim interval, or its last claim's duration if longer, has passed
    once per live relay since its last claim started (alone, a claim that took longer waits no more)."""
    return last_started + max(interval, last_took) * relays


def _headers(outbox_id: int, headers: dict[str, str]) -> list[tuple[str, bytes]]:
    pairs = [("id", str(outbox_id).encode())]
    pairs.extend((name, value.encode()) for name, value in headers.items())
    return pairs
