import msgspec
import pytest

from app.adapters.json_limits import (
    MAX_DEPTH,
    MAX_STORED_DEPTH,
    UNRENDERABLE,
    JsonRefused,
    decode_stored,
    decode_untrusted,
    depth,
)


def nested(levels: int, leaf: bytes = b"1") -> bytes:
    return b'{"a":' * levels + leaf + b"}" * levels


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"1", 0),
        (b'"[[{"', 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": "]]]"}]}', 3),
        (b'["\\"[", [[]]]', 3),
        (nested(500), 500),
    ],
)
def test_depth_counts_brackets_outside_strings(text: bytes, expected: int) -> None:
    assert depth(text) == expected


def test_outside_json_within_the_limits_decodes() -> None:
    assert decode_untrusted(nested(MAX_DEPTH - 1), "body") == msgspec.json.decode(nested(MAX_DEPTH - 1))
    assert decode_untrusted(b'{"a": "\\\\u0000"}', "body") == {"a": "\\u0000"}  # an escaped backslash, then text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (nested(MAX_DEPTH + 1), "nested deeper than 32 levels"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
        (b'{"a": "\xff\xfe"}', "not valid UTF-8"),
        (b'{"a": "x\\u0000y"}', "NUL character"),
        (b'{"a": "\\\\\\u0000"}', "NUL character"),
        (b'{"a": "' + b"y" * 100_001 + b'"}', "string longer than 100000 bytes"),
        (b'{"a": ', "not valid JSON"),
    ],
)
def test_outside_json_breaking_a_limit_is_refused_with_the_reason(text: bytes, reason: str) -> None:
    with pytest.raises(JsonRefused, match=reason):
        decode_untrusted(text, "body")


def test_long_bodies_of_short_strings_pass() -> None:
    decode_untrusted(b'{"a": [' + b"1," * 200_000 + b'1], "b": "' + b"y" * 90_000 + b'"}', "body")


def test_stored_json_of_any_depth_decodes_with_a_marker_below_the_stored_limit() -> None:
    value = decode_stored(b'{"task": ' + nested(100_000, b'"bottom"') + b', "after": [1, "]"]}')
    assert value["after"] == [1, "]"]
    level, node = 0, value["task"]
    while UNRENDERABLE not in node:
        node, level = node["a"], level + 1
    assert level == MAX_STORED_DEPTH - 1
    msgspec.json.encode(value)  # and it renders


def test_stored_json_that_is_not_json_decodes_to_a_marker() -> None:
    assert UNRENDERABLE in decode_stored(b'{"a": [1, ')
    assert UNRENDERABLE in decode_stored("[" * 5000)
