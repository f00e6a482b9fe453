"""A compact set of 64-bit digests that also remembers the order they came in.

:class:`~cel_whatsapp.dedup.InMemoryStore` remembers up to 100,000 message ids
per process for 7 days. As Python objects (a ``set`` of ints and a ``deque``
for the order) that is about 86 bytes per id, most of it the int objects and
the set's spare slots. Here the digests are plain 8-byte words in two
``array('Q')``: an open-addressing hash table (linear probing, at most half
full, deletion by backward shift so no tombstones pile up) and a FIFO queue.
About 24 bytes per id at the largest table size and never more than ~40: a
full default store is ~2.8 MiB instead of ~8.

Not thread-safe: the store calls it under its own lock.
"""

from __future__ import annotations

from array import array

__all__ = ["DigestQueue", "DigestSet"]

_MIN_SLOTS = 1024  # a power of two
_MASK64 = (1 << 64) - 1


class DigestSet:
    """Membership of nonzero 64-bit ints (0 marks an empty slot)."""

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * _MIN_SLOTS))
        self._mask = _MIN_SLOTS - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

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
        old = self._slots
        self._slots = array("Q", bytes(8 * size))
        self._mask = size - 1
        slots, mask = self._slots, self._mask
        for digest in old:
            if digest:
                slot = digest & mask
                while slots[slot]:
                    slot = (slot + 1) & mask
                slots[slot] = digest


class DigestQueue:
    """First in, first out, of 64-bit ints, 8 bytes each."""

    def __init__(self) -> None:
        self._items = array("Q")
        self._head = 0

    def __len__(self) -> int:
        return len(self._items) - self._head

    def append(self, digest: int) -> None:
        self._items.append(digest)

    def popleft(self) -> int:
        """Remove and return the oldest item; ``IndexError`` when empty."""
        head = self._head
        if head >= len(self._items):
            raise IndexError("pop from an empty DigestQueue")
        digest = self._items[head]
        head += 1
        if head >= 4096 and 2 * head >= len(self._items):
            # Drop the consumed front in one move once it is half the array
            # (amortised O(1) per item, and the memory is given back).
            del self._items[:head]
            head = 0
        self._head = head
        return digest
