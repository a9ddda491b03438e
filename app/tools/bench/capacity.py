"""The capacity model of docs/scaling.md: from the per-run costs a bench run recorded (CPU of each role,
PostgreSQL commits, WAL and rows, Kafka messages and bytes), what a target rate takes. Prints the doc's tables
as Markdown, so refreshing the doc after the per-run costs change is one command:

    python -m app.tools.bench.capacity RESULTS.json [MORE.json ...] [--write docs/scaling.md]

Several runs: a figure a later one holds replaces an earlier one's. With --write, the tables replace what the
document holds between its BEGIN and END markers.

Every input that is not measured is an `Assumptions` field, named in the output."""

import json
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path

RATES = (10_000, 100_000)
ROLES = ("api", "relay", "worker")

# (figure, what it is); the one table the model reads, printed first
COSTS = (
    ("cpu_ms_per_run_api", "API CPU, ms"),
    ("cpu_ms_per_run_relay", "relay CPU, ms"),
    ("cpu_ms_per_run_worker", "worker CPU, ms"),
    ("cpu_ms_per_run_postgres", "PostgreSQL CPU, ms"),
    ("cpu_ms_per_run_broker", "broker CPU, ms (embedded Tansu)"),
    ("pg_write_xacts_per_run", "PostgreSQL write transactions"),
    ("pg_commits_per_run", "PostgreSQL commits"),
    ("pg_wal_bytes_per_run", "WAL bytes"),
    ("pg_rows_inserted_per_run", "rows inserted"),
    ("pg_rows_updated_per_run", "rows updated"),
    ("pg_rows_deleted_per_run", "rows deleted"),
    ("kafka_messages_per_run", "Kafka messages"),
    ("kafka_bytes_per_run", "Kafka payload bytes"),
)


@dataclass(frozen=True)
class Assumptions:
    utilisation: float = 0.7  # of a core (or of a ceiling) planned for, leaving room for bursts
    core_speed: float = 1.0  # a server core's speed relative to the bench machine's
    partitions_per_worker: int = 2  # room to double the workers without repartitioning
    pg_cores: int = 64  # one large PostgreSQL primary
    pg_wal_bytes_per_s: float = 300e6  # WAL one primary writes sustained (WAL insert locks, one walwriter)
    pg_write_xacts_per_s: float = 100_000  # write transactions one primary commits (group commit on NVMe)
    kafka_broker_bytes_per_s: float = 50e6  # produce one broker takes with replication factor 3


def costs_of(*documents: dict[str, object]) -> dict[str, float]:
    """The per-run costs recorded bench runs hold (benchmarks/results/*.json); a figure a later run holds
    replaces an earlier one's (say, CPU from a run on a quiet machine over a run that measured the rest)."""
    values: dict[str, float] = {}
    for document in documents:
        figures = document.get("figures")
        if not isinstance(figures, list):
            raise ValueError("not a recorded bench run: no figures")
        values.update({str(f["figure"]): float(f["value"]) for f in figures if f["figure"] in dict(COSTS)})
    missing = [name for name, _ in COSTS if name not in values]
    if missing:
        raise ValueError(f"the run lacks the cost figures {', '.join(missing)}: record one with this bench")
    return {name: values[name] for name, _ in COSTS}


@dataclass(frozen=True)
class Plan:
    rate: int
    processes: dict[str, int]
    partitions: int
    pg_cores: float
    wal_bytes_per_s: float
    write_xacts_per_s: float
    rows_per_s: float
    dead_rows_per_s: float
    kafka_messages_per_s: float
    kafka_bytes_per_s: float
    kafka_brokers: int

    def primaries(self, a: Assumptions) -> int:
        """Write primaries the rate takes: its most saturated of CPU, WAL and commits over one's ceiling."""
        return math.ceil(max(self.pg_load(a).values()))

    def pg_load(self, a: Assumptions) -> dict[str, float]:
        """Each PostgreSQL limit's use as a fraction of one primary's planned share of it."""
        return {
            "CPU": self.pg_cores / a.pg_cores,
            "WAL": self.wal_bytes_per_s / (a.pg_wal_bytes_per_s * a.utilisation),
            "commits": self.write_xacts_per_s / (a.pg_write_xacts_per_s * a.utilisation),
        }


def plan(costs: dict[str, float], rate: int, a: Assumptions) -> Plan:
    def cores(ms: float) -> float:
        return rate * ms / 1000 / a.core_speed / a.utilisation

    # a role's process runs one event loop: one core at most
    processes = {role: max(1, math.ceil(cores(costs[f"cpu_ms_per_run_{role}"]))) for role in ROLES}
    kafka_bytes = rate * costs["kafka_bytes_per_run"]
    return Plan(
        rate=rate,
        processes=processes,
        partitions=processes["worker"] * a.partitions_per_worker,
        pg_cores=cores(costs["cpu_ms_per_run_postgres"]),
        wal_bytes_per_s=rate * costs["pg_wal_bytes_per_run"],
        write_xacts_per_s=rate * costs["pg_write_xacts_per_run"],
        rows_per_s=rate
        * (costs["pg_rows_inserted_per_run"] + costs["pg_rows_updated_per_run"] + costs["pg_rows_deleted_per_run"]),
        dead_rows_per_s=rate * (costs["pg_rows_updated_per_run"] + costs["pg_rows_deleted_per_run"]),
        kafka_messages_per_s=rate * costs["kafka_messages_per_run"],
        kafka_bytes_per_s=kafka_bytes,
        kafka_brokers=max(3, math.ceil(kafka_bytes / (a.kafka_broker_bytes_per_s * a.utilisation))),
    )


def markdown(costs: dict[str, float], source: str, a: Assumptions) -> str:
    lines = [
        f"Per-run costs (from {source}; a later file's figure replaces an earlier one's):",
        "",
        "| figure | per run | what |",
        "| --- | ---: | --- |",
    ]
    lines += [f"| `{name}` | {costs[name]:g} | {what} |" for name, what in COSTS]
    plans = [plan(costs, rate, a) for rate in RATES]
    head = "| | " + " | ".join(f"{p.rate:,} runs/s" for p in plans) + " |"
    rule = "| --- |" + " ---: |" * len(plans)

    def row(what: str, values: list[str]) -> str:
        return f"| {what} | " + " | ".join(values) + " |"

    lines += ["", "Processes, partitions and brokers:", "", head, rule]
    for role in ROLES:
        lines.append(row(f"{role} processes", [str(p.processes[role]) for p in plans]))
    lines.append(row("partitions per execution lane", [str(p.partitions) for p in plans]))
    lines.append(row("Kafka messages/s", [f"{p.kafka_messages_per_s:,.0f}" for p in plans]))
    lines.append(row("Kafka payload MB/s", [f"{p.kafka_bytes_per_s / 1e6:.1f}" for p in plans]))
    lines.append(row("Kafka brokers (replication 3)", [str(p.kafka_brokers) for p in plans]))
    lines += ["", "PostgreSQL (one write primary unless more are needed):", "", head, rule]
    lines.append(row("CPU cores", [f"{p.pg_cores:.0f}" for p in plans]))
    lines.append(row("WAL MB/s", [f"{p.wal_bytes_per_s / 1e6:.0f}" for p in plans]))
    lines.append(row("write transactions/s", [f"{p.write_xacts_per_s:,.0f}" for p in plans]))
    lines.append(row("rows written/s", [f"{p.rows_per_s:,.0f}" for p in plans]))
    lines.append(row("dead rows/s for vacuum", [f"{p.dead_rows_per_s:,.0f}" for p in plans]))
    for limit in ("CPU", "WAL", "commits"):
        lines.append(row(f"share of one primary's {limit}", [f"{p.pg_load(a)[limit]:.0%}" for p in plans]))
    lines.append(row("write primaries needed", [str(p.primaries(a)) for p in plans]))
    lines += ["", "Assumptions (not measured):", ""]
    lines += [f"- `{f.name}` = {getattr(a, f.name):g}" for f in fields(a)]
    return "\n".join(lines) + "\n"


BEGIN = "<!-- capacity tables: begin (python -m app.tools.bench.capacity ... --write) -->"
END = "<!-- capacity tables: end -->"


def replace_tables(document: str, tables: str) -> str:
    """`document` with what lies between its markers replaced by `tables`."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError("the document has no capacity table markers")
    return document[: start + len(BEGIN)] + "\n" + tables + document[end:]


def main(argv: list[str]) -> int:
    target = None
    if "--write" in argv:
        at = argv.index("--write")
        target, argv = (Path(argv[at + 1]) if at + 1 < len(argv) else None), argv[:at] + argv[at + 2 :]
        if target is None:
            argv = []
    if not argv:
        print(
            "usage: python -m app.tools.bench.capacity RESULTS.json [MORE.json ...] [--write DOC.md]", file=sys.stderr
        )
        return 2
    try:
        costs = costs_of(*(json.loads(Path(name).read_text()) for name in argv))
        tables = markdown(costs, ", ".join(argv), Assumptions())
        if target is not None:
            target.write_text(replace_tables(target.read_text(), tables))
            print(f"capacity tables written in {target}")
        else:
            print(tables, end="")
    except (OSError, ValueError) as error:
        print(f"capacity: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
