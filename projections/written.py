"""Which read-model rows a rebuild has written to its shadow tables: a Bloom filter over their keys.

A batch copies in the rows it creates unless an earlier batch wrote them; asking the database about every
key is the bulk pass's dearest query. The filter answers "not written" for certain and "maybe" otherwise, so
only the maybes are asked about. Its size is fixed: memory stays flat however many rows there are (more
rows only make more maybes).
"""

from collections.abc import Iterable
from typing import Any

BITS = 1 << 26  # 8 MiB; two probes per key: about 1% maybes at 3 million keys


class WrittenKeys:
    def __init__(self, bits: int = BITS) -> None:
        assert bits & (bits - 1) == 0, "a power of two"
        self._bits = bytearray(bits >> 3)
        self._mask = bits - 1
        self._shift = bits.bit_length() - 1

    def add(self, table: str, key: tuple[Any, ...]) -> None:
        self.add_all(table, (key,))

    def may_hold(self, table: str, key: tuple[Any, ...]) -> bool:
        return bool(self.maybe_held(table, (key,)))

    def add_all(self, table: str, keys: Iterable[tuple[Any, ...]]) -> None:
        bits, mask, shift = self._bits, self._mask, self._shift
        for key in keys:
            hashed = hash((table, key))
            first, second = hashed & mask, (hashed >> shift) & mask
            bits[first >> 3] |= 1 << (first & 7)
            bits[second >> 3] |= 1 << (second & 7)

    def maybe_held(self, table: str, keys: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The keys the filter may hold: every key written is among them, a few others may be too."""
        bits, mask, shift = self._bits, self._mask, self._shift
        maybe = []
        for key in keys:
            hashed = hash((table, key))
            first, second = hashed & mask, (hashed >> shift) & mask
            if bits[first >> 3] & (1 << (first & 7)) and bits[second >> 3] & (1 << (second & 7)):
                maybe.append(key)
        return maybe
