"""What one run costs beyond CPU, in the throughput phase: PostgreSQL commits, WAL bytes and rows written, and
Kafka messages and bytes. A snapshot before the phase and one after; the figures are the difference per run.

PostgreSQL's counters are the server's own: WAL position and transaction ids count for the whole server (the
bench's embedded one serves nothing else; on a shared server other databases' writes are counted too), the
commit and row counters count for the bench's database. A backend publishes its commit and row counters when
it goes idle, at most once a second and within PostgreSQL's idle interval (10 s), so each snapshot first waits
that long for the roles' connections to publish theirs."""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import text

from app.container import Container
from app.tools.bench.figures import Report

STATS_PUBLISHED_SECONDS = 11.0  # PGSTAT_IDLE_INTERVAL (10 s) and a margin

_DATABASE = text(
    "SELECT xact_commit, xact_rollback, pg_current_wal_lsn() - '0/0'::pg_lsn AS wal, "
    "pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next_xid "
    "FROM pg_stat_database WHERE datname = current_database()"
)
_TABLES = text("SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables")


@dataclass(frozen=True)
class TableRows:
    inserted: int
    updated: int
    hot_updated: int
    deleted: int


@dataclass
class KafkaTally:
    """Records published to the execution lanes (every slot of their ring), as a reader of them saw them."""

    messages: int = 0
    payload_bytes: int = 0
    keys: set[bytes] = field(default_factory=set)  # a run's id: more messages than keys is a run sent again

    def add(self, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]) -> None:
        self.messages += 1
        self.payload_bytes += record_size(key, value, headers)
        self.keys.add(key or b"")


@dataclass
class Snapshot:
    commits: int = 0
    rollbacks: int = 0
    wal_bytes: int = 0
    next_xid: int = 0
    tables: dict[str, TableRows] = field(default_factory=dict)


async def snapshot(container: Container) -> Snapshot:
    """The server's counters once every backend has published its own."""
    await asyncio.sleep(STATS_PUBLISHED_SECONDS)
    async with container.engine.connect() as conn:
        row = (await conn.execute(_DATABASE)).one()
        tables = {
            r.relname: TableRows(r.n_tup_ins, r.n_tup_upd, r.n_tup_hot_upd, r.n_tup_del)
            for r in await conn.execute(_TABLES)
        }
    return Snapshot(int(row.xact_commit), int(row.xact_rollback), int(row.wal), int(row.next_xid), tables)


def record_size(key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]) -> int:
    """Key, value and header bytes of a record (its payload; the record batch's own framing comes on top)."""
    return len(key or b"") + len(value or b"") + sum(len(name) + len(content or b"") for name, content in headers)


def _rows(snap: Snapshot) -> TableRows:
    tables = snap.tables.values()
    return TableRows(
        sum(t.inserted for t in tables),
        sum(t.updated for t in tables),
        sum(t.hot_updated for t in tables),
        sum(t.deleted for t in tables),
    )


def cost_figures(report: Report, before: Snapshot, after: Snapshot, kafka: KafkaTally, runs: int) -> None:
    """Print what one run cost between the snapshots, and each table's share of the rows written; `kafka`
    counted what the phase published."""
    report.add("pg_commits_per_run", (after.commits - before.commits) / runs, "commits")
    report.add("pg_write_xacts_per_run", (after.next_xid - before.next_xid) / runs, "xacts")
    report.add("pg_rollbacks_per_run", (after.rollbacks - before.rollbacks) / runs, "xacts")
    report.add("pg_wal_bytes_per_run", (after.wal_bytes - before.wal_bytes) / runs, "bytes")
    rows_before, rows_after = _rows(before), _rows(after)
    report.add("pg_rows_inserted_per_run", (rows_after.inserted - rows_before.inserted) / runs, "rows")
    report.add("pg_rows_updated_per_run", (rows_after.updated - rows_before.updated) / runs, "rows")
    report.add("pg_rows_hot_updated_per_run", (rows_after.hot_updated - rows_before.hot_updated) / runs, "rows")
    report.add("pg_rows_deleted_per_run", (rows_after.deleted - rows_before.deleted) / runs, "rows")
    shares = []
    for name, now in sorted(after.tables.items()):
        was = before.tables.get(name, TableRows(0, 0, 0, 0))
        ins, upd, dele = now.inserted - was.inserted, now.updated - was.updated, now.deleted - was.deleted
        if ins or upd or dele:
            shares.append(f"{name} +{ins / runs:.2f} ~{upd / runs:.2f} -{dele / runs:.2f}")
    print("# rows per run (inserted ~updated -deleted): " + ", ".join(shares))
    # Messages: the outbox rows written (each is published once; a reader of the topics misses what lands in a
    # ring slot before it notices the slot was made anew). Bytes: the reader's mean record size times those.
    was, now = before.tables.get("outbox", TableRows(0, 0, 0, 0)), after.tables.get("outbox", TableRows(0, 0, 0, 0))
    messages = (now.inserted - was.inserted) / runs
    mean_size = kafka.payload_bytes / kafka.messages if kafka.messages else 0.0
    report.add("kafka_messages_per_run", messages, "msgs")
    report.add("kafka_bytes_per_run", messages * mean_size, "bytes")
    report.add("kafka_messages_sent_again_per_run", (kafka.messages - len(kafka.keys)) / runs, "msgs")
