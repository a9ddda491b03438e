"""The bloom filter of @trigger.dev/core (`BloomFilter`), byte for byte: the set of a run's completed noop tasks
(`noopTasksSet` of EXECUTE_JOB), so the SDK skips replaying them without a request each.

One hash (the core's 53-bit murmur-style hash over UTF-16 code units, seed 0) sets one bit of `size` bits;
bit i lives in byte i // 8 at position i % 8. Serialized as standard base64 of the bytes."""

import base64

NOOP_TASK_SET_SIZE = 32768  # BloomFilter.NOOP_TASK_SET_SIZE: 4 KiB, 5,464 characters of base64
_MASK = 0xFFFFFFFF


def _imul(a: int, b: int) -> int:
    return (a * b) & _MASK


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


def hash53(text: str, seed: int = 0) -> int:
    """The core's murmurHash3(text, seed): JavaScript's 32-bit integer arithmetic, on unsigned values."""
    h1 = (0xDEADBEEF ^ seed) & _MASK
    h2 = (0x41C6CE57 ^ seed) & _MASK
    units = text.encode("utf-16-le", "surrogatepass")
    length = len(units) // 2
    for i in range(0, len(units), 2):
        unit = units[i] | (units[i + 1] << 8)
        h1 = _imul(_rotl(_imul(h1 ^ unit, 3432918353), 15), 461845907)
        h2 = _imul(_rotl(_imul(h2 ^ unit, 2246822507), 13), 3266489909)
    h1 ^= length
    h2 ^= length
    h1 = _imul(h1 ^ (h1 >> 16), 2246822507)
    h1 = _imul(h1 ^ (h1 >> 13), 3266489909)
    h1 ^= h1 >> 16
    h2 = _imul(h2 ^ (h2 >> 16), 2246822507)
    h2 = _imul(h2 ^ (h2 >> 13), 3266489909)
    h2 ^= h2 >> 16
    return 4294967296 * (0x1FFFFF & h2) + h1


class BloomFilter:
    def __init__(self, size: int = NOOP_TASK_SET_SIZE) -> None:
        self.size = size
        self.bits = bytearray(-(-size // 8))

    def add(self, item: str) -> None:
        index = hash53(item) % self.size
        self.bits[index // 8] |= 1 << (index % 8)

    def test(self, item: str) -> bool:
        index = hash53(item) % self.size
        return bool(self.bits[index // 8] & (1 << (index % 8)))

    def serialize(self) -> str:
        return base64.b64encode(self.bits).decode()

    @classmethod
    def deserialize(cls, text: str, size: int = NOOP_TASK_SET_SIZE) -> "BloomFilter":
        bloom = cls(size)
        bloom.bits = bytearray(base64.b64decode(text))
        return bloom
