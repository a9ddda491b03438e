"""Relays share the due outbox rows: each claims those whose id falls in its share (the id modulo the number of
live relays), so relays woken by the same NOTIFY do not race for the same rows, each skipping what another
has locked and publishing half batches.

A relay is live while it holds one of the slot advisory locks (a session lock on a connection of its own):
a relay that dies loses its connection and with it its lock, and the others' next look finds one relay fewer,
so they take its share. A row due for longer than the grace is anyone's: a relay alive but stuck (stopped,
cut off from the broker) keeps its slot, and its share is still published by the others after the grace.
Shares are only a division of labour: claims stay FOR UPDATE SKIP LOCKED, so relays that see the membership
differently for a moment overlap or leave a gap (closed by the grace), never publish a row twice.
"""

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

RELAY_SLOTS = 7342004  # the first key of the two-key advisory locks relays hold, one per live relay
MAX_RELAYS = 1024
GRACE_SECONDS = 2.0  # a row due this long is claimed by any relay, whatever its share

_JOIN = text("SELECT slot FROM generate_series(0, :last) AS slot WHERE pg_try_advisory_lock(:namespace, slot) LIMIT 1")
_MEMBERS = text(
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
    "AND classid::bigint = :namespace AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY objid::bigint"
)
_LEAVE = text("SELECT pg_advisory_unlock(:namespace, :slot)")


@dataclass(frozen=True, slots=True)
class Share:
    """Rows whose id modulo `count` is `position`, and any row due for longer than `grace_seconds`."""

    position: int = 0
    count: int = 1
    grace_seconds: float = GRACE_SECONDS

    def params(self) -> dict[str, Any]:
        return {"share_position": self.position, "share_count": self.count, "share_grace": self.grace_seconds}


EVERYTHING = Share()


class RelayShares:
    """This relay's membership among the live relays, and the share of the rows it gives."""

    def __init__(self, engine: AsyncEngine, grace_seconds: float = GRACE_SECONDS, namespace: int = RELAY_SLOTS):
        self.engine = engine
        self.grace_seconds = grace_seconds
        self.namespace = namespace
        self.slot: int | None = None
        self.share = Share(grace_seconds=grace_seconds)
        self._conn: AsyncConnection | None = None

    async def refresh(self) -> Share:
        """Join if not a member yet, then look at who is: the share for now. When the database cannot tell,
        the relay claims from every row (as if alone: safe, only less efficient)."""
        try:
            if self._conn is None or self.slot is None:
                await self._join()
            assert self._conn is not None
            members = list((await self._conn.execute(_MEMBERS, {"namespace": self.namespace})).scalars())
        except Exception as error:
            log.warning("relay shares: membership unknown (%s); claiming from every row", error)
            await self.close()
            self.share = Share(grace_seconds=self.grace_seconds)
            return self.share
        if self.slot in members:
            self.share = Share(members.index(self.slot), len(members), self.grace_seconds)
        else:  # not granted after all: as if alone until the next look joins again
            self.slot = None
            self.share = Share(grace_seconds=self.grace_seconds)
        return self.share

    async def _join(self) -> None:
        if self._conn is None:
            self._conn = await self.engine.execution_options(isolation_level="AUTOCOMMIT").connect()
        params = {"last": MAX_RELAYS - 1, "namespace": self.namespace}
        self.slot = (await self._conn.execute(_JOIN, params)).scalar()
        if self.slot is None:
            raise RuntimeError(f"every one of the {MAX_RELAYS} relay slots is taken")

    async def close(self) -> None:
        """Leave: the others take this relay's share at their next look."""
        conn, self._conn = self._conn, None
        slot, self.slot = self.slot, None
        if conn is None:
            return
        try:
            if slot is not None:
                await conn.execute(_LEAVE, {"namespace": self.namespace, "slot": slot})
        except Exception:
            await conn.invalidate()  # its session, and with it the lock, ends with the connection
        finally:
            await conn.close()
