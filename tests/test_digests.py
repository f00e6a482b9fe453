"""The compact digest set and queue behind InMemoryStore, against Python's own set and deque."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cel_whatsapp.core._digests import DigestQueue, DigestSet

# Digests that share their low bits land in the same home slot (or next to
# it, across the end of the table): long probe runs, wrap-around, and
# deletions in the middle of a run.
_CROWDED = st.integers(min_value=0, max_value=40).map(lambda n: (1023 - n % 4) | (n << 20))
_ANY = st.integers(min_value=1, max_value=2**64 - 1)
_OPS = st.lists(
    st.tuples(st.sampled_from(["add", "add", "discard", "contains"]), _CROWDED | _CROWDED | _ANY),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_digest_set_behaves_like_a_set(ops: list[tuple[str, int]]) -> None:
    table = DigestSet()
    model: set[int] = set()
    for op, digest in ops:
        if op == "add":
            assert table.add(digest) is (digest not in model)
            model.add(digest)
        elif op == "discard":
            assert table.discard(digest) is (digest in model)
            model.discard(digest)
        else:
            assert (digest in table) is (digest in model)
        assert len(table) == len(model)
    assert all(digest in table for digest in model)


def test_digest_set_grows_and_keeps_every_member() -> None:
    table = DigestSet()
    members = [(i * 0x9E3779B97F4A7C15) % 2**64 or 1 for i in range(5000)]
    for digest in members:
        assert table.add(digest)
    assert len(table) == 5000
    assert all(digest in table for digest in members)
    for digest in members[::2]:
        assert table.discard(digest)
    assert all((digest in table) is (index % 2 == 1) for index, digest in enumerate(members))


def test_wrap_around_run_survives_deleting_its_start() -> None:
    table = DigestSet()
    last = 1023  # the last slot of the first table: a run wraps to slot 0
    crowd = [last | (n << 32) for n in range(1, 6)]
    for digest in crowd:
        table.add(digest)
    table.discard(crowd[0])
    assert [digest in table for digest in crowd] == [False, True, True, True, True]


def test_a_member_moves_back_into_its_own_home_slot() -> None:
    table = DigestSet()
    first, second = 1020 | (3 << 20), 1020 | (7 << 20)  # same home slot
    table.add(first)
    table.add(second)
    table.discard(first)
    assert second in table and first not in table


@pytest.mark.parametrize("digest", [0, -1, 2**64])
def test_digest_set_refuses_what_it_cannot_hold(digest: int) -> None:
    with pytest.raises((ValueError, OverflowError)):
        DigestSet().add(digest)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.just(None), _ANY), max_size=12_000))
def test_digest_queue_is_first_in_first_out(ops: list[int | None]) -> None:
    queue = DigestQueue()
    model: deque[int] = deque()
    for op in ops:
        if op is None:
            if model:
                assert queue.popleft() == model.popleft()
            else:
                with pytest.raises(IndexError):
                    queue.popleft()
        else:
            queue.append(op)
            model.append(op)
        assert len(queue) == len(model)


def test_digest_queue_wraps_around_and_grows_in_order() -> None:
    queue = DigestQueue(capacity=4)
    for digest in (1, 2, 3):
        queue.append(digest)
    assert [queue.popleft(), queue.popleft()] == [1, 2]
    for digest in (4, 5, 6, 7, 8, 9):  # wraps past the end, then doubles twice
        queue.append(digest)
    assert queue.nbytes == 8 * 8
    assert [queue.popleft() for _ in range(len(queue))] == [3, 4, 5, 6, 7, 8, 9]


def test_digests_cost_a_few_bytes_each() -> None:
    members = [(i * 0x9E3779B97F4A7C15) % 2**64 or 1 for i in range(50_000)]
    table, queue = DigestSet(), DigestQueue()
    for digest in members:
        table.add(digest)
        queue.append(digest)
    # The maps are the whole cost (tracemalloc does not see them): a table
    # at most half full, a ring at most twice the items.
    assert (table.nbytes + queue.nbytes) / 50_000 < 40  # a set of ints and a deque take ~80-120
