"""A ring of topics, for a broker that never trims what it holds.

The embedded Tansu keeps every message in memory and lists a partition's whole log on every fetch, so a
topic written for hours gets slower with each message. With a ring, each topic the outbox names is written
as one of RING_SLOTS slot topics (`<topic>.r0`, `.r1`, `.r2`), a slot per period in turn. A keeper
(app/worker/ring_keeper.py) empties the upcoming slot (deletes it and creates it anew) once every message
published to it was handled, before its turn comes round again; while one is not, the slot is left as it is
and simply grows. Consumers subscribe to every slot by name, so a switch costs them nothing (no rebalance).
A worker whose position in a slot lies past its recreated end starts it over from the beginning.

With a period of 0 (a real Kafka, whose retention is its own) each topic is itself.
"""

import time
from dataclasses import dataclass

RING_SLOTS = 3
EMBEDDED_BROKER_PERIOD_SECONDS = 20.0  # at 1,600 messages/s, a slot's partitions stay under 10k batches each
# What the ring cannot empty is a slot still holding a message not handled, and under a backlog every slot would:
# each is written again at its next turn, so it would keep the handled messages too, growing with throughput.
# `dev` has the relay publish at most this many ahead of the workers (JOBS_RELAY_MAX_IN_FLIGHT) and leaves the
# rest of a backlog in the outbox: a slot is then handled within 1,000 / throughput seconds of its turn, under
# the 35 s the keeper has to empty it for any throughput above 30 runs/s (healthy `dev` holds a few hundred).
EMBEDDED_BROKER_MAX_IN_FLIGHT = 1_000


@dataclass(frozen=True, slots=True)
class TopicRing:
    period_seconds: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.period_seconds > 0

    def current(self, topic: str, now: float | None = None) -> str:
        """The topic a message for `topic` is published to now."""
        if not self.enabled:
            return topic
        return slot_topic(topic, self._turn(now) % RING_SLOTS)

    def upcoming(self, topic: str, now: float | None = None) -> str:
        """The slot whose turn comes next: the one to empty during this period."""
        return slot_topic(topic, (self._turn(now) + 1) % RING_SLOTS)

    def topics(self, topic: str) -> list[str]:
        """Every topic a message for `topic` may be found in."""
        return [slot_topic(topic, slot) for slot in range(RING_SLOTS)] if self.enabled else [topic]

    def phase(self, now: float | None = None) -> float:
        """How far into its period the current slot is, from 0 to 1."""
        return ((time.time() if now is None else now) % self.period_seconds) / self.period_seconds

    def turn(self, now: float | None = None) -> int:
        return self._turn(now)

    def _turn(self, now: float | None) -> int:
        return int((time.time() if now is None else now) // self.period_seconds)


def slot_topic(topic: str, slot: int) -> str:
    return f"{topic}.r{slot}"
