"""The limits on JSON that comes from outside (request bodies, endpoint answers), and a decoder for what is
stored that never fails on depth.

Outside JSON must be UTF-8, nest at most MAX_DEPTH levels of objects and arrays, and hold no NUL character
(PostgreSQL cannot store one in text or jsonb). Depth is measured on the bytes before decoding, so no
decoder ever recurses deeper than that.
"""

import logging
import re
from itertools import accumulate
from typing import Any

import msgspec

log = logging.getLogger(__name__)

MAX_DEPTH = 32
MAX_STRING_BYTES = 100_000
# Deeper than this, stored JSON is rendered with a marker in place of the deepest parts.
MAX_STORED_DEPTH = 128
UNRENDERABLE = "$unrenderable"

_decoder = msgspec.json.Decoder()
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
# A \u0000 escape, unless its backslash is itself escaped.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class JsonRefused(ValueError):
    """JSON from outside broke one of the limits; the message says which."""


def depth(data: bytes) -> int:
    """How deeply the JSON text nests objects and arrays (brackets inside strings do not count)."""
    if data.count(b"[") + data.count(b"{") <= 1:
        return min(1, data.count(b"[") + data.count(b"{"))
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _within(data: bytes | str, limit: int) -> bool:
    # Counting brackets costs next to nothing; most JSON has fewer than the limit and needs no scan.
    if isinstance(data, str):
        return data.count("[") + data.count("{") <= limit or depth(data.encode()) <= limit
    return data.count(b"[") + data.count(b"{") <= limit or depth(data) <= limit


def check(data: bytes, what: str) -> None:
    """Raise JsonRefused when the JSON text `data` breaks a limit (before anything decodes it)."""
    try:
        data.decode()
    except UnicodeDecodeError as error:
        raise JsonRefused(f"{what} is not valid UTF-8 (byte {error.start})") from None
    if not _within(data, MAX_DEPTH):
        raise JsonRefused(f"{what} is nested deeper than {MAX_DEPTH} levels")
    if len(data) > MAX_STRING_BYTES and max(map(len, _STRING.findall(data)), default=0) > MAX_STRING_BYTES + 2:
        raise JsonRefused(f"{what} holds a string longer than {MAX_STRING_BYTES} bytes")
    if b"\\u0000" in data and _NUL_ESCAPE.search(data):
        raise JsonRefused(f"{what} holds a NUL character (\\u0000), which cannot be stored")


def decode_untrusted(data: bytes, what: str) -> Any:
    """Decode JSON from outside, within the limits."""
    check(data, what)
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as error:
        raise JsonRefused(f"{what} is not valid JSON: {error}") from None


def decode_stored(data: bytes | str) -> Any:
    """Decode JSON the service stored. Whatever was stored, this returns a value that can be rendered:
    parts nested deeper than MAX_STORED_DEPTH become {"$unrenderable": reason} (an incident, logged)."""
    if _within(data, MAX_STORED_DEPTH):
        try:
            return _decoder.decode(data)
        except (msgspec.DecodeError, RecursionError) as error:
            log.error("stored JSON cannot be decoded (%s); rendered as unrenderable", error)
            return {UNRENDERABLE: f"stored JSON cannot be decoded: {error}"}
    log.error(
        "stored JSON is nested deeper than %d levels; its deepest parts are rendered as unrenderable", MAX_STORED_DEPTH
    )
    return _bounded(data.encode() if isinstance(data, str) else data)


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_MARKER = msgspec.json.encode({UNRENDERABLE: f"nested deeper than {MAX_STORED_DEPTH} levels"})


def _bounded(raw: bytes) -> Any:
    """Decode with every part deeper than MAX_STORED_DEPTH replaced by a marker, cut out of the text in one
    pass, so no decoder recurses deeply."""
    parts, kept_until, level, cut_from = [], 0, 0, -1
    for token in _TOKEN.finditer(raw):
        bracket = token.group()
        if bracket[0] == ord('"'):
            continue
        if bracket in b"[{":
            level += 1
            if level == MAX_STORED_DEPTH + 1:
                cut_from = token.start()
        else:
            if level == MAX_STORED_DEPTH + 1 and cut_from >= 0:
                parts += [raw[kept_until:cut_from], _MARKER]
                kept_until, cut_from = token.end(), -1
            level -= 1
    parts.append(raw[kept_until:])
    try:
        return _decoder.decode(b"".join(parts))
    except (msgspec.DecodeError, RecursionError) as error:
        return {UNRENDERABLE: f"stored JSON cannot be decoded: {error}"}
