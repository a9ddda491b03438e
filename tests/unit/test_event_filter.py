import pytest

from domain.event_filter import matches, rule_matches

PAYLOAD = {"user": {"plan": "pro", "age": 30, "tags": ["a", "b"]}, "path": "images/cat.png", "n": 5, "ok": True}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({}, True),
        ({"n": [5, 6]}, True),
        ({"n": [6]}, False),
        ({"n": ["5"]}, False),
        ({"ok": [True]}, True),
        ({"user": {"plan": ["pro", "team"]}}, True),
        ({"user": {"plan": ["free"]}}, False),
        ({"path": [{"$startsWith": "images/"}, {"$endsWith": ".png"}]}, True),
        ({"path": [{"$startsWith": "images/"}, {"$endsWith": ".jpg"}]}, False),
        ({"n": [{"$between": [1, 10]}]}, True),
        ({"n": [{"$gt": 5}]}, False),
        ({"n": [{"$gte": 5}]}, True),
        ({"missing": [{"$exists": False}]}, True),
        ({"n": [{"$exists": False}]}, False),
        ({"user": {"tags": [{"$includes": "b"}]}}, True),
        ({"user": {"plan": [{"$anythingBut": ["free", "team"]}]}}, True),
        ({"user": {"plan": [{"$ignoreCaseEquals": "PRO"}]}}, True),
        ({"user": {"plan": [{"$not": "pro"}]}}, False),
        ({"n": []}, True),
        ({"user": {"missing": ["x"]}}, False),
    ],
)
def test_payload_filters(filter: dict[str, object], expected: bool) -> None:
    assert matches(PAYLOAD, filter) is expected


def test_a_nested_filter_on_a_list_matches_any_item() -> None:
    payload = {"items": [{"sku": "a"}, {"sku": "b"}]}
    assert matches(payload, {"items": {"sku": ["b"]}})
    assert not matches(payload, {"items": {"sku": ["c"]}})


def test_no_payload_only_matches_an_empty_filter() -> None:
    assert matches(None, {})
    assert not matches(None, {"a": ["x"]})


def test_rules_match_name_source_and_payload() -> None:
    rule = {"event": "order.paid", "source": "trigger.dev", "payload": {"total": [{"$gt": 100}]}}
    assert rule_matches(rule, "order.paid", "trigger.dev", {"total": 150})
    assert not rule_matches(rule, "order.paid", "trigger.dev", {"total": 50})
    assert not rule_matches(rule, "order.refunded", "trigger.dev", {"total": 150})
    assert not rule_matches(rule, "order.paid", "stripe", {"total": 150})
    assert rule_matches({"event": ["a", "b"], "source": "trigger.dev", "payload": {}}, "b", "trigger.dev", None)
