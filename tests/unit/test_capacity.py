"""The capacity model's arithmetic (app/tools/bench/capacity.py), on made-up per-run costs."""

import pytest

from app.tools.bench.capacity import BEGIN, COSTS, END, Assumptions, costs_of, markdown, plan, replace_tables

COSTS_HERE = {
    "cpu_ms_per_run_api": 0.5,
    "cpu_ms_per_run_relay": 0.1,
    "cpu_ms_per_run_worker": 0.6,
    "cpu_ms_per_run_postgres": 0.4,
    "cpu_ms_per_run_broker": 0.1,
    "pg_write_xacts_per_run": 0.5,
    "pg_commits_per_run": 0.6,
    "pg_wal_bytes_per_run": 6000.0,
    "pg_rows_inserted_per_run": 6.0,
    "pg_rows_updated_per_run": 3.0,
    "pg_rows_deleted_per_run": 1.0,
    "kafka_messages_per_run": 1.0,
    "kafka_bytes_per_run": 400.0,
}


def test_processes_are_the_cores_a_role_needs_at_the_planned_utilisation() -> None:
    at = plan(COSTS_HERE, 10_000, Assumptions(utilisation=0.5))
    # 10,000 runs/s x 0.5 ms = 5 cores, at 50% each: 10 processes of one event loop each
    assert at.processes == {"api": 10, "relay": 2, "worker": 12}
    assert at.partitions == 24
    assert at.pg_cores == pytest.approx(8.0)
    assert at.wal_bytes_per_s == pytest.approx(60e6)
    assert at.rows_per_s == pytest.approx(100_000)
    assert at.dead_rows_per_s == pytest.approx(40_000)


def test_the_most_saturated_limit_decides_how_many_primaries() -> None:
    a = Assumptions(utilisation=1.0, pg_cores=1000, pg_wal_bytes_per_s=100e6, pg_write_xacts_per_s=1e9)
    at = plan(COSTS_HERE, 100_000, a)  # 600 MB/s of WAL over 100 MB/s a primary
    assert at.pg_load(a)["WAL"] == pytest.approx(6.0)
    assert at.primaries(a) == 6


def test_a_run_without_the_cost_figures_is_refused() -> None:
    document = {"figures": [{"figure": "cpu_ms_per_run_api", "value": 0.5}]}
    with pytest.raises(ValueError, match="lacks the cost figures"):
        costs_of(document)


def test_the_tables_name_every_figure_and_assumption() -> None:
    document = {"figures": [{"figure": name, "value": value} for name, value in COSTS_HERE.items()]}
    text = markdown(costs_of(document), "run.json", Assumptions())
    assert all(f"`{name}`" in text for name, _ in COSTS)
    assert "`pg_wal_bytes_per_s` = 3e+08" in text
    assert "| 10,000 runs/s | 100,000 runs/s |" in text


def test_the_tables_replace_only_what_lies_between_the_markers() -> None:
    document = f"intro\n{BEGIN}\nold tables\n{END}\nafterwards\n"
    assert replace_tables(document, "new tables\n") == f"intro\n{BEGIN}\nnew tables\n{END}\nafterwards\n"
    with pytest.raises(ValueError, match="no capacity table markers"):
        replace_tables("no markers", "new tables\n")


def test_a_later_run_replaces_the_figures_it_holds() -> None:
    everything = {"figures": [{"figure": name, "value": value} for name, value in COSTS_HERE.items()]}
    quiet_cpu = {"figures": [{"figure": "cpu_ms_per_run_api", "value": 0.25}, {"figure": "other", "value": 1}]}
    costs = costs_of(everything, quiet_cpu)
    assert costs["cpu_ms_per_run_api"] == 0.25
    assert costs["pg_wal_bytes_per_run"] == 6000.0
    assert "other" not in costs
