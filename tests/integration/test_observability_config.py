"""deploy/: the Prometheus config and alert rules pass promtool (`make install` puts it in .venv/bin), each alert
fires on a synthetic series and stays quiet otherwise (rules_test.yml), the Grafana dashboard is well formed and
queries the provisioned data source, and every series the dashboard and the rules use is one the service declares."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.observability_names import (
    DASHBOARD,
    ROOT,
    RULES,
    dashboard_expressions,
    declared_names,
    metric_names_used,
    panels,
    rule_expressions,
    series_in,
)

PROMETHEUS = ROOT / "deploy/prometheus"
GRAFANA = ROOT / "deploy/grafana"
GRID_WIDTH = 24
# Grafana's interval variables, as a fixed duration for promtool.
GRAFANA_VARIABLES = re.compile(r"\$__(?:rate_interval|interval|range)\b")

# The issue's series, each of which the dashboard must show.
DASHBOARD_SERIES = (
    "jobs_http_requests_total",
    "jobs_http_request_duration_seconds_bucket",
    "jobs_runs_created_total",
    "jobs_runs_finished_total",
    "jobs_run_queue_wait_seconds_bucket",
    "jobs_run_execution_seconds_bucket",
    "jobs_endpoint_request_duration_seconds_bucket",
    "jobs_outbox_pending",
    "jobs_outbox_oldest_age_seconds",
    "jobs_relay_published_total",
    "jobs_consumer_lag",
    "jobs_messages_handled_total",
    "jobs_dead_letters_total",
    "jobs_runs_rescued_total",
    "jobs_runs_requeued_total",
    "jobs_group_commit_batch_size_bucket",
)
ALERTS = {
    "JobsOutboxBacklogOld",
    "JobsConsumerLagGrowing",
    "JobsDeadLetters",
    "JobsRunFailureRatioHigh",
    "JobsTargetDown",
    "JobsRoleMissing",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """promtool from PATH, else the one `make install` puts beside this interpreter."""
    found = shutil.which("promtool") or shutil.which("promtool", path=str(Path(sys.executable).parent))
    assert found, "promtool is missing: `make install` installs it"
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=120, check=False)


def assert_passes(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_prometheus_config_and_its_rule_files() -> None:
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert_passes(result)
    assert "1 rule files found" in result.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert_passes(result)
    assert f"{len(ALERTS)} rules found" in result.stdout


def test_each_alert_fires_on_its_synthetic_series_and_stays_quiet_otherwise() -> None:
    assert_passes(promtool("test", "rules", str(PROMETHEUS / "rules_test.yml")))


def test_the_rules_test_covers_every_alert_firing_and_quiet() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"]
    assert {rule["alert"] for group in rules for rule in group["rules"]} == ALERTS
    tests = yaml.safe_load((PROMETHEUS / "rules_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    assert {case["alertname"] for case in cases if case["exp_alerts"]} == ALERTS
    assert {case["alertname"] for case in cases if not case["exp_alerts"]} == ALERTS


def test_promtool_test_rules_fails_when_an_alert_does_not_fire_as_expected(tmp_path: Path) -> None:
    """The rules test can fail: the same cases against rules whose thresholds no series reaches."""
    rules = RULES.read_text().replace("> 60", "> 6000").replace("> 0.1", "> 0.9")
    (tmp_path / "rules.yml").write_text(rules)
    shutil.copy(PROMETHEUS / "rules_test.yml", tmp_path / "rules_test.yml")
    result = promtool("test", "rules", str(tmp_path / "rules_test.yml"))
    assert result.returncode != 0
    assert "JobsOutboxBacklogOld" in result.stdout + result.stderr
    assert "JobsRunFailureRatioHigh" in result.stdout + result.stderr


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each target's query as a recording rule (Grafana's interval variables as 1m)."""
    expressions = dashboard_expressions()
    rules = [
        {"record": f"dashboard:query_{number}", "expr": GRAFANA_VARIABLES.sub("1m", expression)}
        for number, expression in enumerate(expressions)
    ]
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(tmp_path / "dashboard.yml"))
    assert_passes(result)
    assert f"{len(expressions)} rules found" in result.stdout


def test_every_series_the_dashboard_and_rules_use_is_declared() -> None:
    used = metric_names_used()
    assert used >= {"jobs_runs_finished_total", "jobs_run_queue_wait_seconds_bucket", "up"}
    assert used - declared_names() == set()


def test_the_dashboard_shows_every_series_of_the_issue() -> None:
    shown = {name for expression in dashboard_expressions() for name in series_in(expression)}
    assert set(DASHBOARD_SERIES) - shown == set()


def test_series_in_reads_names_not_labels_strings_or_functions() -> None:
    expression = (
        'histogram_quantile(0.99, sum by (le, up) (rate(jobs_run_execution_seconds_bucket{job=~"jobs_x|up"}'
        "[$__rate_interval]))) / on (instance) group_left up and absent(process_open_fds)"
    )
    assert series_in(expression) == {"jobs_run_execution_seconds_bucket", "up", "process_open_fds"}
    assert series_in('label_replace(absent(up{job="jobs-api"} == 1), "job", "jobs-api", "", "")') == {"up"}


def test_rule_expressions_are_read_from_every_rule() -> None:
    assert len(rule_expressions()) == len(ALERTS)


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    provisioning = yaml.safe_load((GRAFANA / "provisioning/datasources/datasources.yml").read_text())
    return {source["type"]: source for source in provisioning["datasources"]}


def test_the_dashboard_is_a_well_formed_grafana_dashboard_on_the_provisioned_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    prometheus = provisioned_datasources()["prometheus"]
    assert prometheus["url"] == "http://prometheus:9090"
    all_panels = list(panels(dashboard))
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    queried = 0
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and 0 <= grid["x"] and grid["x"] + grid["w"] <= GRID_WIDTH, panel
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": prometheus["uid"]}
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == prometheus["uid"]
            queried += 1
    assert queried == len(dashboard_expressions())


def test_grafana_provisions_the_dashboard_from_where_compose_mounts_it() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())["providers"]
    assert [provider["options"]["path"] for provider in providers] == [mounts["./deploy/grafana/dashboards"]]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{mounts['./deploy/grafana/dashboards']}/{DASHBOARD.name}"
    assert provisioned_datasources()["jaeger"]["url"] == "http://jaeger:16686"


def test_prometheus_finds_its_rule_files_inside_the_container() -> None:
    """Prometheus reads rule files relative to its config; compose mounts each beside it."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["prometheus"]["volumes"])
    config_dir = Path(mounts["./deploy/prometheus/prometheus.yml"]).parent
    rule_files = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]
    assert rule_files
    for rule_file in rule_files:
        assert mounts[f"./{(PROMETHEUS / rule_file).relative_to(ROOT)}"] == str(config_dir / rule_file)
