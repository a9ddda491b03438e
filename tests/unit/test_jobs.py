"""What a job version's metadata decides about its runs (no I/O)."""

from typing import Any

import pytest

from domain.jobs import Concurrency, JobVersion, is_enabled


def version(**metadata: Any) -> JobVersion:
    return JobVersion.from_metadata("orders", "1.0.0", "endpoint-1", metadata)


def test_the_event_defaults_to_the_jobs_slug_and_the_sdks_source() -> None:
    bare = version()
    assert (bare.event_name, bare.event_source, bare.priority, bare.concurrency) == (
        "orders",
        "trigger.dev",
        0,
        None,
    )
    named = version(event={"name": "order.placed", "source": "shop"})
    assert (named.event_name, named.event_source) == ("order.placed", "shop")


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (3, Concurrency("job:orders@1.0.0", 3)),
        ({"id": "payments", "limit": 2}, Concurrency("group:payments", 2)),
        ({"id": "payments", "limit": 0}, Concurrency("group:payments", 1)),
        (0, None),
        (-1, None),
        (True, None),
        ("3", None),
        ({"limit": 2}, None),
    ],
)
def test_a_concurrency_limit_is_the_versions_own_or_a_named_groups(limit: Any, expected: Concurrency | None) -> None:
    assert version(concurrencyLimit=limit).concurrency == expected


@pytest.mark.parametrize(("priority", "expected"), [(3, 3), ("3", 0), (True, 0), (None, 0)])
def test_priority_is_taken_when_it_is_a_number(priority: Any, expected: int) -> None:
    assert version(priority=priority).priority == expected


def test_a_job_runs_unless_it_says_enabled_false() -> None:
    assert is_enabled({}) and is_enabled({"enabled": True}) and is_enabled({"enabled": None})
    assert not is_enabled({"enabled": False})


def test_only_an_enabled_static_trigger_is_triggered_by_matching_events() -> None:
    static = {"type": "static", "rule": {"event": "order.placed", "source": "trigger.dev"}}
    job = version(trigger=static)
    assert job.triggered_by("order.placed", "trigger.dev", {}, {})
    assert not job.triggered_by("order.shipped", "trigger.dev", {}, {})
    assert not version(trigger=static, enabled=False).triggered_by("order.placed", "trigger.dev", {}, {})
    assert not version(trigger={"type": "scheduled"}).triggered_by("order.placed", "trigger.dev", {}, {})
    assert version(trigger={"type": "static"}).trigger_rule == {}
