"""Hostile requests generated from the service's OpenAPI document: for every operation, each path and query
parameter and each body field gets the inputs that break services (NUL bytes, deep nesting, bad encodings,
calendar edges, huge numbers, wrong types), so a new route or field is covered without a new test."""

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec

DEEP = 1_000
CALENDAR_EDGES = (
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2030-01-01T00:00:00",  # no time zone
    "2030-02-30T00:00:00Z",
    "not a date",
)
URL_EDGES = (
    "http://[::1/",
    "http://" + "a" * 10_000 + "/x",
    "http://" + "a." * 200 + "com/",
    "http://[::10.0.0.1]/x",  # the private IPv4 addresses these IPv6 forms reach are not allowed in tests
    "http://[::ffff:0:10.0.0.1]/x",
    "http://[64:ff9b::a00:1]/x",
    "http://[::ffff:169.254.169.254]/latest",
    "http://127.0.0.1:0/x",
    "http://10.0.0.1:99999/x",
    "ftp://example.com/x",
    "http:///x",
)
WRONG_TYPES: tuple[Any, ...] = (None, True, -1, 2**70, 1e308, "x", "", [], {}, [[]], {"": None})


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    label: str
    query: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    must_refuse: bool = False  # a 2xx would be a defect, not only a 5xx


def deep_json(levels: int) -> bytes:
    return b'{"d":' * levels + b"1" + b"}" * levels


def cases(document: dict[str, Any], values: dict[str, str], examples: dict[str, Any]) -> Iterator[Case]:
    """`values` gives a real value per path parameter (so requests reach deep code); `examples` a valid
    body per path template, merged over what the schema describes."""
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            method = method.upper()
            parameters = operation.get("parameters", [])
            path_values = {p["name"]: values.get(p["name"], "x") for p in parameters if p["in"] == "path"}
            path = _path(template, path_values)
            yield from _path_cases(method, template, path_values)
            yield from _query_cases(method, path, [p for p in parameters if p["in"] == "query"])
            if "requestBody" in operation or template in examples:  # the callback route reads its raw body
                base = _base_body(document, operation, examples.get(template))
                yield from _body_cases(method, path, base)


def _path(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", quote(value, safe=""))
    return template


def _path_cases(method: str, template: str, values: dict[str, str]) -> Iterator[Case]:
    for name in values:
        for label, value, refuse in (
            ("NUL", values[name] + "\x00", True),
            ("NUL alone", "\x00", True),
            ("10k characters", "a" * 10_000, False),
            ("non-ASCII", "ü\u202e\U0001f600", False),
            ("dots", "..", False),
        ):
            yield Case(method, _path(template, {**values, name: value}), f"path {name}: {label}", must_refuse=refuse)


def _query_cases(method: str, path: str, parameters: list[dict[str, Any]]) -> Iterator[Case]:
    for parameter in parameters:
        name = parameter["name"]
        for label, value, refuse in (
            ("NUL", "a\x00b", True),
            ("10k characters", "a" * 10_000, False),
            ("huge number", "9" * 5_000, False),
            ("negative", "-1", False),
            ("float", "1e999", False),
            *((f"calendar edge {edge}", edge, False) for edge in CALENDAR_EDGES),
        ):
            yield Case(method, path, f"query {name}: {label}", query={name: value}, must_refuse=refuse)


def _body_cases(method: str, path: str, base: Any) -> Iterator[Case]:
    encoded = msgspec.json.encode(base)
    yield Case(method, path, "body: deep nesting", body=deep_json(DEEP), must_refuse=True)
    yield Case(method, path, "body: 33 levels", body=deep_json(33), must_refuse=True)
    yield Case(method, path, "body: invalid UTF-8", body=encoded[:-1] + b' "\xff\xfe"' + encoded[-1:], must_refuse=True)
    yield Case(method, path, "body: Latin-1", body=b'{"name": "caf\xe9"}', must_refuse=True)
    yield Case(method, path, "body: truncated", body=encoded[: max(1, len(encoded) // 2)], must_refuse=True)
    yield Case(method, path, "body: NUL outside a string", body=encoded + b"\x00", must_refuse=True)
    for where, value in _leaves(base):
        yield _with(method, path, base, where, _DEEP, f"{where}: deep nesting", refuse=True)
        if isinstance(value, str):
            yield _with(method, path, base, where, value + "\x00", f"{where}: NUL", refuse=True)
            for edge in CALENDAR_EDGES:
                yield _with(method, path, base, where, edge, f"{where}: {edge}", refuse=_is_time(where))
            yield _with(method, path, base, where, "x" * 150_000, f"{where}: 150k characters", refuse=True)
            if where.rsplit(".", 1)[-1] in ("url", "callbackUrl"):
                for url in URL_EDGES:
                    yield _with(method, path, base, where, url, f"{where}: {url[:40]}", refuse=True)
        for wrong in WRONG_TYPES:
            yield _with(method, path, base, where, wrong, f"{where}: {wrong!r}"[:80], refuse=False)


def _is_time(where: str) -> bool:
    return where.rsplit(".", 1)[-1] in ("deliverAt", "delayUntil")


_DEEP = "__DEEP__"  # stands for a value nested DEEP levels, written into the encoded body


def _with(method: str, path: str, base: Any, where: str, value: Any, label: str, refuse: bool) -> Case:
    body = copy.deepcopy(base)
    *parents, last = where.split(".")
    node = body
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return Case(method, path, f"body {label}", body=_encode(body), must_refuse=refuse)


def _encode(body: Any) -> bytes:
    return msgspec.json.encode(body).replace(b'"' + _DEEP.encode() + b'"', b"[" * DEEP + b"1" + b"]" * DEEP)


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every field of the body (nested ones too), as a dotted path and its value."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        where = f"{prefix}{key}"
        yield where, child
        yield from _leaves(child, where + ".")


def _base_body(document: dict[str, Any], operation: dict[str, Any], example: Any) -> Any:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    built = _sample(document, schema) if schema else {}
    if isinstance(built, dict) and isinstance(example, dict):
        return {**built, **example}
    return example if example is not None else built


def _sample(document: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    """A value of the schema's shape, with every property present."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _sample(document, document["components"]["schemas"][name], depth)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _sample(document, options[0], depth)
    kind = schema.get("type")
    if kind == "object" and depth < 4:
        return {name: _sample(document, sub, depth + 1) for name, sub in schema.get("properties", {}).items()}
    return {"string": "text", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(
        str(kind), "value"
    )
