"""A compact set of 64-bit digests that also remembers the order they came in.

:class:`~cel_whatsapp.core.dedup.InMemoryStore` remembers up to 100,000 message ids
per process for 7 days. As Python objects (a ``set`` of ints and a ``deque``
for the order) that is about 86 bytes per id, most of it the int objects and
the set's spare slots. Here the digests are plain 8-byte words: an
open-addressing hash table (linear probing, at most half full, deletion by
backward shift so no tombstones pile up) and a FIFO queue. About 24 bytes
per id at the largest table size and never more than ~40: a full default
store is ~2.8 MiB instead of ~8.

The words live in private anonymous memory maps rather than on the heap.
The table is reallocated as it doubles, often by a different thread of a
gthread worker each time; heap blocks would stay behind in each thread's
malloc arena, while an unmapped table goes back to the system at once, and
the queue's pages are only resident once used.

Not thread-safe: the store calls it under its own lock.
"""

from __future__ import annotations

import mmap

__all__ = ["DigestQueue", "DigestSet"]

_MIN_SLOTS = 1024  # a power of two
_MASK64 = (1 << 64) - 1
# Copy-on-write after fork: a store made before gunicorn forks its workers
# must not be shared by them.
_PRIVATE = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}


class _Words:
    """``count`` zeroed 64-bit words in a private anonymous map, indexable."""

    __slots__ = ("_area", "words")

    def __init__(self, count: int) -> None:
        self._area = mmap.mmap(-1, 8 * count, **_PRIVATE)  # zero-filled by the kernel
        self.words = memoryview(self._area).cast("Q")

    def close(self) -> None:
        self.words.release()
        self._area.close()


class DigestSet:
    """Membership of nonzero 64-bit ints (0 marks an empty slot)."""

    def __init__(self) -> None:
        self._table = _Words(_MIN_SLOTS)
        self._slots = self._table.words
        self._mask = _MIN_SLOTS - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of memory the table holds (its map; pages never written are not resident)."""
        return 8 * len(self._slots)

    def __contains__(self, digest: int) -> bool:
        slots, mask = self._slots, self._mask
        slot = digest & mask
        while True:
            found = slots[slot]
            if found == digest:
                return True
            if not found:
                return False
            slot = (slot + 1) & mask

    def add(self, digest: int) -> bool:
        """Add ``digest`` (1 <= digest < 2**64); ``False`` if it was there already."""
        if not 0 < digest <= _MASK64:
            raise ValueError("digests are nonzero 64-bit unsigned ints")
        if 2 * (self._count + 1) > len(self._slots):
            self._resize(2 * len(self._slots))
        slots, mask = self._slots, self._mask
        slot = digest & mask
        while True:
            found = slots[slot]
            if found == digest:
                return False
            if not found:
                slots[slot] = digest
                self._count += 1
                return True
            slot = (slot + 1) & mask

    def discard(self, digest: int) -> bool:
        """Remove ``digest``; ``False`` if it was not there."""
        slots, mask = self._slots, self._mask
        hole = digest & mask
        while True:
            found = slots[hole]
            if not found:
                return False
            if found == digest:
                break
            hole = (hole + 1) & mask
        # Backward-shift deletion: move later members of the probe run into
        # the hole when their home slot lies at or before it (cyclically), so
        # every member stays reachable from its home without tombstones.
        slots[hole] = 0
        probe = hole
        while True:
            probe = (probe + 1) & mask
            found = slots[probe]
            if not found:
                break
            home = found & mask
            if (probe - home) & mask >= (probe - hole) & mask:
                slots[hole] = found
                slots[probe] = 0
                hole = probe
        self._count -= 1
        return True

    def _resize(self, size: int) -> None:
        old_table, old = self._table, self._slots
        table = _Words(size)
        slots, mask = table.words, size - 1
        for digest in old:
            if digest:
                slot = digest & mask
                while slots[slot]:
                    slot = (slot + 1) & mask
                slots[slot] = digest
        self._table, self._slots, self._mask = table, slots, mask
        old_table.close()


class DigestQueue:
    """First in, first out, of 64-bit ints, 8 bytes each (a ring that doubles when full)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._ring = _Words(max(1, capacity))
        self._words = self._ring.words
        self._head = 0  # index of the oldest item
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of memory the ring holds (its map; pages never written are not resident)."""
        return 8 * len(self._words)

    def append(self, digest: int) -> None:
        words = self._words
        size = len(words)
        if self._count == size:
            self._grow(2 * size)
            words, size = self._words, len(self._words)
        words[(self._head + self._count) % size] = digest
        self._count += 1

    def popleft(self) -> int:
        """Remove and return the oldest item; ``IndexError`` when empty."""
        if not self._count:
            raise IndexError("pop from an empty DigestQueue")
        digest: int = self._words[self._head]
        self._head = (self._head + 1) % len(self._words)
        self._count -= 1
        return digest

    def _grow(self, size: int) -> None:
        old_ring, old = self._ring, self._words
        ring = _Words(size)
        first = len(old) - self._head  # items from head to the end of the old ring
        ring.words[:first] = old[self._head :]
        ring.words[first : self._count] = old[: self._count - first]
        self._ring, self._words, self._head = ring, ring.words, 0
        old_ring.close()
