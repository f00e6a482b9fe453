"""Delivery rate control: token buckets per business number and per user, and pauses."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from cel_whatsapp.core.rates import LocalPacer, RateControl, RedisPacer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def take_all(pacer: Any, number: str, recipient: str, limit: int = 10_000) -> int:
    """How many tokens can be taken right now."""
    taken = 0
    while taken < limit and pacer.try_acquire(number, recipient) == 0:
        taken += 1
    return taken


def test_rate_control_defaults_are_metas_figures() -> None:
    control = RateControl()
    assert control.messages_per_second == 80
    assert control.number_capacity == 80
    assert control.pair_interval == 6
    assert control.pair_burst == 45
    # Meta's advice after 131056: wait 4**X units, X counting the failures in a row.
    assert [control.pair_pause(n) for n in (1, 2, 3)] == [6, 24, 96]
    assert control.pair_pause(10) == control.max_pair_pause


@pytest.mark.parametrize(
    "options",
    [
        {"messages_per_second": 0},
        {"burst": 0.5},
        {"pair_interval": 0},
        {"pair_burst": 0},
        {"pause_after_throughput_error": -1},
    ],
)
def test_rate_control_refuses_impossible_figures(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RateControl"):
        RateControl(**options)


def test_a_number_sends_its_burst_then_at_its_rate() -> None:
    clock = Clock()
    pacer = LocalPacer(RateControl(messages_per_second=10), clock=clock)
    # Different users, so only the number's bucket counts.
    sent = sum(pacer.try_acquire("N", f"user{i}") == 0 for i in range(50))
    assert sent == 10
    wait = pacer.try_acquire("N", "someone")
    assert wait == pytest.approx(0.1)
    clock.advance(0.5)
    assert sum(pacer.try_acquire("N", f"late{i}") == 0 for i in range(50)) == 5


def test_numbers_have_their_own_buckets() -> None:
    pacer = LocalPacer(RateControl(messages_per_second=3), clock=Clock())
    assert sum(pacer.try_acquire("A", f"u{i}") == 0 for i in range(10)) == 3
    assert sum(pacer.try_acquire("B", f"u{i}") == 0 for i in range(10)) == 3


def test_one_user_gets_a_burst_then_one_message_per_interval() -> None:
    clock = Clock()
    pacer = LocalPacer(RateControl(pair_burst=4, pair_interval=6), clock=clock)
    assert take_all(pacer, "N", "alice") == 4
    assert pacer.try_acquire("N", "alice") == pytest.approx(6)
    # Another user is not held back by alice's pair limit.
    assert pacer.try_acquire("N", "bob") == 0
    clock.advance(6)
    assert take_all(pacer, "N", "alice") == 1


def test_a_short_streamed_answer_goes_out_at_once() -> None:
    # Default figures: the few sentences of one answer never wait.
    pacer = LocalPacer(clock=Clock())
    assert [pacer.try_acquire("N", "alice") for _ in range(5)] == [0.0] * 5


def test_a_paused_number_waits_for_every_user() -> None:
    clock = Clock()
    pacer = LocalPacer(clock=clock)
    pacer.pause_number("N", 2.0)
    assert pacer.try_acquire("N", "alice") == pytest.approx(2.0)
    assert pacer.try_acquire("N", "bob") == pytest.approx(2.0)
    assert pacer.try_acquire("OTHER", "alice") == 0
    clock.advance(2.0)
    assert pacer.try_acquire("N", "alice") == 0


def test_pair_pauses_grow_four_times_per_strike_and_honour_retry_after() -> None:
    clock = Clock()
    pacer = LocalPacer(RateControl(pair_interval=1.0), clock=clock)
    assert pacer.pause_pair("N", "alice", None) == 1.0
    assert pacer.paused_for("N", "alice") == pytest.approx(1.0)
    assert pacer.paused_for("N", "bob") == 0
    clock.advance(1.0)
    assert pacer.pause_pair("N", "alice", None) == 4.0
    clock.advance(4.0)
    assert pacer.pause_pair("N", "alice", 30.0) == 30.0
    # Long after the last pause, the strikes start again from one.
    clock.advance(30.0 + RateControl().max_pair_pause)
    assert pacer.pause_pair("N", "alice", None) == 1.0


def test_pair_buckets_are_forgotten_oldest_first_past_the_cap() -> None:
    pacer = LocalPacer(RateControl(pair_burst=1), max_pairs=2, clock=Clock())
    for user in ("a", "b", "c"):
        assert pacer.try_acquire("N", user) == 0
    # "a" was forgotten (a full bucket again); "c" is still remembered as empty.
    assert pacer.try_acquire("N", "a") == 0
    assert pacer.try_acquire("N", "c") > 0


def test_pairs_that_refilled_are_forgotten_as_later_sends_go_by() -> None:
    # Memory follows the users written to lately, not every user since start.
    clock = Clock()
    control = RateControl(messages_per_second=1e6, pair_burst=2, pair_interval=6.0)
    pacer = LocalPacer(control, max_pairs=1000, clock=clock)
    for user in range(100):
        assert pacer.try_acquire("N", f"u{user}") == 0
    assert len(pacer._pairs) == 100  # each took a token: none is full again yet
    clock.advance(5.9)
    pacer.try_acquire("N", "fresh")
    assert len(pacer._pairs) == 101  # not refilled yet: kept
    clock.advance(0.2)  # the first 100 are full again
    for user in range(60):
        assert pacer.try_acquire("N", f"new{user}") == 0
    # Each send dropped up to two full ones, the least recently used first.
    assert len(pacer._pairs) == 101 + 60 - 100
    # A pair that was forgotten starts full, as if never sent to: its burst holds.
    assert pacer.try_acquire("N", "u0") == 0
    assert pacer.try_acquire("N", "u0") == 0
    assert pacer.try_acquire("N", "u0") > 0


def test_a_pacer_that_keeps_no_pairs_sends_without_error() -> None:
    control = RateControl(messages_per_second=1e6, pair_burst=1)
    pacer = LocalPacer(control, max_pairs=0, clock=Clock())
    assert pacer.try_acquire("N", "a") == 0
    assert pacer.try_acquire("N", "a") == 0  # nothing kept, so no pair is paced
    assert len(pacer._pairs) == 0


def test_threads_never_take_more_than_the_bucket_holds() -> None:
    pacer = LocalPacer(RateControl(messages_per_second=1, burst=100), clock=Clock())
    taken: list[int] = []
    start = threading.Barrier(8)

    def grab() -> None:
        start.wait()
        taken.append(take_all(pacer, "N", f"user{threading.get_ident()}", limit=1000))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(taken) == 100


@pytest.mark.integration
def test_redis_buckets_are_shared_by_every_client(redis_client: Any, redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    control = RateControl(messages_per_second=20, pair_burst=1000)
    pacers = [RedisPacer(redis.Redis.from_url(redis_url), control, prefix="t:") for _ in range(2)]
    taken = [0, 0]

    def grab(index: int) -> None:
        for i in range(100):
            if pacers[index].try_acquire("N", f"u{index}-{i}") == 0:
                taken[index] += 1

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One bucket of 20 for both, plus what refilled while they asked (a few ms).
    assert 20 <= sum(taken) <= 22
    assert 0 < pacers[0].try_acquire("N", "late") <= 0.05 + 0.01


@pytest.mark.integration
def test_redis_pauses_reach_every_client(redis_client: Any, redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    one = RedisPacer(redis.Redis.from_url(redis_url), prefix="t:")
    other = RedisPacer(redis.Redis.from_url(redis_url), prefix="t:")
    one.pause_number("N", 2.0)
    assert 1.9 < other.try_acquire("N", "alice") <= 2.0
    assert other.try_acquire("M", "alice") == 0
    assert one.pause_pair("M", "bob", None) == 6.0
    assert one.pause_pair("M", "bob", None) == 24.0
    assert 23.9 < other.paused_for("M", "bob") <= 24.0
    assert other.paused_for("M", "carol") == 0


@pytest.mark.integration
def test_redis_pair_bucket_allows_the_burst_then_paces(redis_client: Any, redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    pacer = RedisPacer(redis.Redis.from_url(redis_url), RateControl(pair_burst=3), prefix="t:")
    assert take_all(pacer, "N", "alice") == 3
    assert 5.9 < pacer.try_acquire("N", "alice") <= 6.0
    # Keys expire once their bucket would be full again: nothing lingers for idle users.
    ttl = redis_client.pttl("t:rate:N:pair:alice:bucket")
    assert 0 < ttl <= 3 * 6000 + 1000
    assert pacer.try_acquire("N", "bob") == 0


@pytest.mark.integration
def test_while_redis_is_down_sends_are_paced_in_process(
    redis_client: Any, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    redis = pytest.importorskip("redis")
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    pacer = RedisPacer(
        dead, RateControl(pair_burst=2), prefix="t:", errors=(redis.RedisError, OSError)
    )
    with caplog.at_level("WARNING", logger="cel_whatsapp"):
        assert take_all(pacer, "N", "alice") == 2
        pacer.pause_number("N", 1.0)
        assert pacer.paused_for("N", "bob") > 0
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("before", "after", "sent", "more", "then_wait"),
    [
        # A pair's interval raised just after a full burst: nothing more at once.
        ({"pair_interval": 6.0}, {"pair_interval": 60.0}, 45, 0, 60.0),
        # ...and lowered: the next message after the new interval, not the old backlog.
        ({"pair_interval": 60.0}, {"pair_interval": 6.0}, 45, 0, 6.0),
        # A smaller pair burst caps the level left (40 of 45) at the new 10.
        ({"pair_burst": 45}, {"pair_burst": 10}, 5, 10, 6.0),
    ],
)
def test_a_control_changed_at_run_time_keeps_each_buckets_level(
    before: dict[str, Any], after: dict[str, Any], sent: int, more: int, then_wait: float
) -> None:
    clock = Clock()
    pacer = LocalPacer(RateControl(messages_per_second=1e6, **before), clock=clock)
    for _ in range(sent):
        assert pacer.try_acquire("N", "u") == 0
    pacer.control = RateControl(messages_per_second=1e6, **after)
    allowed = 0
    while pacer.try_acquire("N", "u") == 0:
        allowed += 1
    assert allowed == more
    assert pacer.try_acquire("N", "u") == pytest.approx(then_wait, abs=1e-3)


def test_a_number_slowed_down_after_its_burst_sends_nothing_more_at_once() -> None:
    clock = Clock()
    pacer = LocalPacer(RateControl(messages_per_second=80), clock=clock)
    for index in range(80):
        assert pacer.try_acquire("N", f"u{index}") == 0
    pacer.control = RateControl(messages_per_second=20, burst=80)
    assert pacer.try_acquire("N", "late") == pytest.approx(0.05)


def test_a_long_backlog_on_a_clock_far_from_zero_sends_no_more_than_the_rate() -> None:
    # time.monotonic() counts from boot: a year of uptime is about 3e7 s, where
    # adding 1/1000 s to a float rounds the same way each time. Each retry comes
    # exactly when the pacer said, as the retrier waits.
    clock = Clock()
    start = clock.now = 3e7
    pacer = LocalPacer(RateControl(messages_per_second=1000.0), clock=clock)
    sent = 0
    while sent < 100_000:
        wait = pacer.try_acquire("N", f"u{sent}")
        if wait == 0:
            sent += 1
        else:
            later = clock.now + wait
            clock.now = later if later > clock.now else math.nextafter(clock.now, math.inf)
    assert sent <= 1000 + (clock.now - start) * 1000 + 1e-6
