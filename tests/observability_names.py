"""The series names the Grafana dashboard and the Prometheus alert rules of deploy/ use, and the ones the service
declares (app/observability/metrics.py), both as a scrape shows them: `jobs_runs_created_total`,
`jobs_run_queue_wait_seconds_bucket`, `up`."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import app.observability.metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy/grafana/dashboards/jobs.json"
RULES = ROOT / "deploy/prometheus/rules.yml"

# Series of every target that are not the service's own: Prometheus's `up`, the client's process and Python ones.
STANDARD_PREFIXES = ("process_", "python_")
SCRAPE_SERIES = frozenset({"up"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:$])[A-Za-z_:][\w:]*")
_OURS = re.compile(r"jobs_\w+|process_\w+|python_\w+|up")
_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def dashboard_expressions(path: Path = DASHBOARD) -> list[str]:
    """The PromQL of every target of every panel (rows' nested panels too), Grafana's $variables left in."""
    return [target["expr"] for panel in panels(json.loads(path.read_text())) for target in panel.get("targets", [])]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def rule_expressions(path: Path = RULES) -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def series_in(expression: str) -> set[str]:
    """The series names an expression selects (strings, label matchers and grouping labels are not names; a
    name followed by `(` is a function)."""
    text = _GROUPING.sub(" ", _MATCHERS.sub(" ", _STRING.sub(" ", expression)))
    return {
        match.group()
        for match in _IDENTIFIER.finditer(text)
        if _OURS.fullmatch(match.group()) and not text[match.end() :].lstrip().startswith("(")
    }


def metric_names_used() -> set[str]:
    """Every series name the dashboard and the alert rules use, exactly as a scrape of a role shows it."""
    return {name for expression in dashboard_expressions() + rule_expressions() for name in series_in(expression)}


def declared_names() -> set[str]:
    """The series a scrape of a role shows, as declared: every metric of app/observability/metrics.py with the
    suffixes prometheus-client gives its type, the client's standard process and Python series, and `up`."""
    names = set(SCRAPE_SERIES)
    for metric in vars(app.observability.metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    for family in REGISTRY.collect():
        names.update(sample.name for sample in family.samples if sample.name.startswith(STANDARD_PREFIXES))
    return names
