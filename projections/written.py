"""Which read-model rows a rebuild has written to its shadow tables: a Bloom filter over their keys.

A batch copies in the rows it creates unless an earlier batch wrote them; asking the database about every
key is the bulk pass's dearest query. The filter answers "not written" for certain and "maybe" otherwise, so
only the maybes are asked about. Its size is fixed: memory stays flat however many rows there are (more
rows only make more maybes).
"""

from typing import Any

BITS = 1 << 26  # 8 MiB; two probes per key: about 1% maybes at 3 million keys


class WrittenKeys:
    def __init__(self, bits: int = BITS) -> None:
        assert bits & (bits - 1) == 0, "a power of two"
        self._bits = bytearray(bits >> 3)
        self._mask = bits - 1
        self._shift = bits.bit_length() - 1

    def add(self, table: str, key: tuple[Any, ...]) -> None:
        first, second = self._probes(hash((table, key)))
        self._bits[first >> 3] |= 1 << (first & 7)
        self._bits[second >> 3] |= 1 << (second & 7)

    def may_hold(self, table: str, key: tuple[Any, ...]) -> bool:
        first, second = self._probes(hash((table, key)))
        return bool(self._bits[first >> 3] & (1 << (first & 7))) and bool(self._bits[second >> 3] & (1 << (second & 7)))

    def _probes(self, hashed: int) -> tuple[int, int]:
        return hashed & self._mask, (hashed >> self._shift) & self._mask
