"""trigger.dev event filters: which events a job's trigger rule matches.

A filter maps field names to a list or a nested filter. A list of plain values (all strings, all numbers or
all booleans) matches when the field equals one of them; a list of content filters such as
`{"$startsWith": "a"}` matches when every one of them does. A nested filter on a list field matches when
any item matches. An empty list matches anything.
"""

from collections.abc import Callable
from typing import Any

JSON = Any
_MISSING = object()


def rule_matches(rule: dict[str, Any], name: str, source: str, payload: JSON, context: JSON = None) -> bool:
    """Whether a trigger rule `{event, source, payload?, context?}` matches a received event."""
    events = rule.get("event")
    names = events if isinstance(events, list) else [events]
    if name not in names:
        return False
    if rule.get("source") not in (None, source):
        return False
    return matches(payload, rule.get("payload") or {}) and matches(context, rule.get("context") or {})


def matches(value: JSON, filter: dict[str, Any]) -> bool:
    if value is None:
        return not filter
    for key, pattern in filter.items():
        actual = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
        if isinstance(pattern, list):
            if not _list_matches(pattern, actual):
                return False
        elif isinstance(pattern, dict):
            items = actual if isinstance(actual, list) else [actual]
            if not any(matches(None if item is _MISSING else item, pattern) for item in items):
                return False
    return True


def _list_matches(pattern: list[JSON], actual: JSON) -> bool:
    if not pattern:
        return True
    for kind in (str, _is_number, bool):
        if all(_is(item, kind) for item in pattern):
            return any(_is(actual, kind) and actual == item for item in pattern)
    return all(_content_matches(item, actual) for item in pattern if isinstance(item, dict))


def _is(value: JSON, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    return bool(kind(value))


def _is_number(value: JSON) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _content_matches(content_filter: dict[str, JSON], actual: JSON) -> bool:
    for operator, check in _CONTENT.items():
        if operator in content_filter:
            return check(content_filter[operator], actual)
    return True


def _numeric(op: Callable[[float, float], bool]) -> Callable[[JSON, JSON], bool]:
    return lambda operand, actual: _is_number(actual) and op(actual, operand)


def _anything_but(operand: JSON, actual: JSON) -> bool:
    return actual != operand and not (isinstance(operand, list) and actual in operand)


def _not(operand: JSON, actual: JSON) -> bool:
    if isinstance(actual, list):
        return operand not in actual
    return isinstance(actual, str | int | float | bool) and actual != operand


_CONTENT: dict[str, Callable[[JSON, JSON], bool]] = {
    "$endsWith": lambda o, a: isinstance(a, str) and a.endswith(o),
    "$startsWith": lambda o, a: isinstance(a, str) and a.startswith(o),
    "$anythingBut": _anything_but,
    "$exists": lambda o, a: (a is not _MISSING) if o else (a is _MISSING),
    "$gt": _numeric(lambda a, o: a > o),
    "$lt": _numeric(lambda a, o: a < o),
    "$gte": _numeric(lambda a, o: a >= o),
    "$lte": _numeric(lambda a, o: a <= o),
    "$between": lambda o, a: _is_number(a) and o[0] <= a <= o[1],
    "$includes": lambda o, a: isinstance(a, list) and o in a,
    "$ignoreCaseEquals": lambda o, a: isinstance(a, str) and isinstance(o, str) and a.casefold() == o.casefold(),
    "$isNull": lambda o, a: (a is None) if o else (a is not None),
    "$not": _not,
}


MAX_FILTER_DEPTH = 8


def check_filter(filter: Any, depth: int = 0) -> None:
    """Refuse (ValueError) a filter that matching could not evaluate: a field's pattern must be a list of
    plain values or of content filters (one known operator each, with an operand of its kind), or a nested
    filter."""
    if not isinstance(filter, dict):
        raise ValueError("a filter must be an object")
    if depth >= MAX_FILTER_DEPTH:
        raise ValueError(f"a filter may nest at most {MAX_FILTER_DEPTH} levels")
    for key, pattern in filter.items():
        if isinstance(pattern, dict):
            check_filter(pattern, depth + 1)
        elif isinstance(pattern, list):
            for item in pattern:
                if isinstance(item, dict):
                    _check_content_filter(key, item)
                elif not isinstance(item, str | int | float | bool):
                    raise ValueError(f"`{key}`: a filter list holds strings, numbers, booleans or content filters")
        else:
            raise ValueError(f"`{key}`: a filter's value must be a list or an object")


def _check_content_filter(key: str, item: dict[str, Any]) -> None:
    if len(item) != 1 or next(iter(item)) not in _CONTENT:
        raise ValueError(f"`{key}`: a content filter has one operator of {', '.join(_CONTENT)}")
    operator, operand = next(iter(item.items()))
    number = _is_number(operand)
    valid = {
        "$endsWith": isinstance(operand, str),
        "$startsWith": isinstance(operand, str),
        "$ignoreCaseEquals": isinstance(operand, str),
        "$exists": isinstance(operand, bool),
        "$isNull": isinstance(operand, bool),
        "$gt": number,
        "$lt": number,
        "$gte": number,
        "$lte": number,
        "$between": isinstance(operand, list) and len(operand) == 2 and all(_is_number(n) for n in operand),
    }.get(operator, True)
    if not valid:
        raise ValueError(f"`{key}`: the operand of {operator} is not of its kind")
