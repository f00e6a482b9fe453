"""Deduplication: stores, and the webhook answering each message once."""

from __future__ import annotations

import logging
import threading
import time
import tracemalloc

import pytest

from cel_whatsapp import InMemoryStore, Message, RedisStore, Store
from cel_whatsapp.core.dedup import StoreError, message_key, safe_key, status_key
from cel_whatsapp.testing import FakeGraphAPI, envelope, text_message, text_webhook
from cel_whatsapp.testing.webhooks import change_value, status

from .conftest import MakeConnector, make_app, post_webhook


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_in_memory_claim_is_check_and_set() -> None:
    store = InMemoryStore()
    assert isinstance(store, Store)
    assert store.claim("a") is True
    assert store.claim("a") is False
    assert store.claim("b") is True
    store.release("a")
    assert store.claim("a") is True
    store.release("never-claimed")  # no error
    assert len(store) == 2


def test_in_memory_keys_expire_after_ttl() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=60, clock=clock)
    assert store.claim("k")
    clock.now += 59.9
    assert not store.claim("k")
    clock.now += 0.2
    assert store.claim("k")  # the first claim expired; this one is new


def test_in_memory_keys_expire_oldest_first_each_after_its_own_ttl() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=60, clock=clock)
    assert store.claim("first")
    clock.now += 30
    assert store.claim("second")
    clock.now += 30  # "first" is 60 s old: gone; "second" is 30 s old: kept
    assert len(store) == 1
    assert not store.claim("second")
    assert store.claim("first")
    clock.now += 30
    assert store.claim("second")
    assert not store.claim("first")


def test_in_memory_release_then_reclaim_outlives_the_released_claim() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=60, clock=clock)
    assert store.claim("k")
    store.release("k")
    clock.now += 30
    assert store.claim("k")  # the second claim lasts until 30 + 60
    clock.now += 40  # the released first claim expires here...
    assert not store.claim("k")  # ...without taking the live one with it
    assert len(store) == 1
    clock.now += 21
    assert store.claim("k")


def test_in_memory_full_store_skips_released_claims_when_evicting() -> None:
    store = InMemoryStore(max_entries=2)
    assert store.claim("a") and store.claim("b")
    store.release("a")
    assert store.claim("a")  # live: b, a (an older released copy of a is queued first)
    assert store.claim("c")  # full: b is forgotten, not the new a
    assert not store.claim("a")
    assert store.claim("b")


def test_in_memory_store_stays_bounded_however_many_claims_are_released() -> None:
    # Refused messages are released (the webhook answers 503); under
    # overload that may be every message for a long time.
    store = InMemoryStore(max_entries=100)
    for index in range(5_000):
        assert store.claim(f"key-{index}")
        if index % 2:
            store.release(f"key-{index}")
    assert len(store) <= 100
    # The claim order keeps the places of released claims until they reach its
    # front; it is rebuilt from the live claims before it passes twice the bound.
    assert len(store._messages.order) == len(store._messages.times) <= 2 * 100 + 64
    assert store.claim("key-4999")  # released: taken again
    assert not store.claim("key-4998")


def test_a_claim_taken_again_after_a_release_is_not_evicted_in_its_old_place() -> None:
    # A 503 gives the claim back and Meta's redelivery takes it again: the old
    # place of A is older than X's, but A is now the newest claim.
    store = InMemoryStore(ttl=100, max_entries=3)
    assert store.claim("B")
    assert store.claim("A")
    store.release("A")
    assert store.claim("X")
    assert store.claim("A")
    assert store.claim("D")  # full: B, the oldest, is forgotten
    assert store.claim("E")  # full: X is forgotten, not A
    assert not store.claim("A")
    assert not store.claim("D") and not store.claim("E")


def test_a_claim_taken_again_does_not_stop_the_purge_of_older_ones() -> None:
    clock = FakeClock()
    start = clock.now
    store = InMemoryStore(ttl=10, clock=clock)
    assert store.claim("B")
    clock.now = start + 0.5
    assert store.claim("K")
    store.release("K")
    for index in range(5):
        clock.now = start + 1 + index
        assert store.claim(f"x{index}")
    clock.now = start + 9
    assert store.claim("K")
    clock.now = start + 17  # all expired but the second K (until start + 19)
    assert len(store) == 1
    assert not store.claim("K")


def test_claims_released_and_taken_again_keep_the_order_bounded() -> None:
    # Released claims taken again (a 503, then Meta's redelivery) under a live
    # key that is never purged: the stale places cannot reach the front.
    store = InMemoryStore(max_entries=10)
    assert store.claim("live")
    for _ in range(1_000):
        store.release("again")
        assert store.claim("again")
    assert len(store) == 2
    assert len(store._messages.order) == len(store._messages.times) <= 2 * 10 + 64
    assert not store.claim("live") and not store.claim("again")


def test_a_claim_costs_under_100_bytes() -> None:
    # The figure docs/reliability.rst and InMemoryStore's docstring give: a wamid key of
    # 78 characters kept as a 120-bit int digest, its places and a share of an expiry
    # (about 86 bytes; 142 with 16-byte digests and an expiry each, 240 while the keys
    # themselves were kept).
    wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZC{:012X}MTE4RTUA"
    store = InMemoryStore()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(20_000):
            store.claim(message_key("106540352242922", wamid.format(index)))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(store) == 20_000
    assert grown / 20_000 < 100


def test_claims_close_together_share_the_first_ones_expiry() -> None:
    clock = FakeClock()
    start = clock.now
    store = InMemoryStore(ttl=10_000, clock=clock)  # expiries shared within 1 s
    assert store.claim("a")
    clock.now = start + 0.5
    assert store.claim("b")  # shares a's expiry: lives 0.5 s less than the TTL
    clock.now = start + 1.2
    assert store.claim("c")  # past the second: an expiry of its own
    clock.now = start + 9_999.9
    assert len(store) == 3
    clock.now = start + 10_000
    assert len(store) == 1  # a and b, together
    assert store.claim("a") and store.claim("b")
    assert not store.claim("c")
    clock.now = start + 10_001.2
    assert store.claim("c")


def test_stale_places_of_a_key_released_many_times_are_all_dropped() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=100, max_entries=1_000, clock=clock)
    for _ in range(5):
        assert store.claim("k")
        store.release("k")
        clock.now += 1
    assert store.claim("k")  # the live claim, behind five stale places
    assert store.claim("other")
    clock.now += 100  # every place has expired
    assert len(store) == 0
    partition = store._messages
    assert not partition.order and not partition.times and not partition.stale


def test_a_clock_stepping_back_never_shortens_a_claim() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=100, clock=clock)
    assert store.claim("a")  # expires at 1100
    clock.now -= 50
    assert store.claim("b")  # expires at 1050, though claimed after "a"
    clock.now = 1099.9
    assert not store.claim("a")
    assert store.claim("b")  # expired behind a live key: claimed again
    assert not store.claim("b")
    clock.now = 1100
    assert store.claim("a")


def test_default_ttl_is_meta_redelivery_window() -> None:
    assert InMemoryStore().ttl == 7 * 24 * 3600


def test_in_memory_is_bounded_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryStore(max_entries=3)
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        for key in "abcde":
            assert store.claim(key)
    assert len(store) == 3
    assert store.claim("a")  # the oldest were forgotten first
    assert not store.claim("e")
    assert caplog.text.count("InMemoryStore is full") == 1


def test_a_flood_of_statuses_never_pushes_a_message_id_out() -> None:
    # Every reply yields sent, delivered and read statuses: far more status
    # claims than message claims, which must not evict the message ids.
    store = InMemoryStore(max_entries=10)
    message = message_key("1", "wamid.ASKED")
    assert store.claim(message)
    for index in range(30):  # three times the bound of message ids
        assert store.claim(status_key("1", f"wamid.OUT{index}", "delivered"))
    assert store.claim(message) is False  # Meta's redelivery is still recognised
    assert len(store) == 1 + 30


def test_statuses_have_their_own_bound_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryStore(max_entries=5, max_status_entries=2)
    keys = [status_key("1", f"wamid.OUT{index}", "read") for index in range(3)]
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        assert all(store.claim(key) for key in keys)
        assert store.claim(message_key("1", "wamid.IN"))
    assert store.claim(keys[0])  # the oldest status was forgotten...
    assert not store.claim(keys[2])  # ...not the newest
    [record] = [r for r in caplog.records if "InMemoryStore is full" in r.getMessage()]
    assert "max_status_entries" in record.getMessage()
    store.release(keys[2])
    assert store.claim(keys[2])  # release finds the status partition too
    assert "max_status_entries=2" in repr(store)


def test_in_memory_claim_is_atomic_across_threads() -> None:
    store = InMemoryStore()
    barrier = threading.Barrier(16)
    wins: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        for index in range(200):
            won = store.claim(f"key-{index}")
            with lock:
                wins.append(won)

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 200
    assert len(wins) == 16 * 200


class _SlowKey(str):
    """A key whose hashing lets other threads run: between a claim's lookup and its write."""

    __slots__ = ()

    def __hash__(self) -> int:
        time.sleep(0.001)
        return str.__hash__(self)


def test_concurrent_claims_of_one_id_have_exactly_one_winner() -> None:
    store = InMemoryStore()
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def race() -> None:
        barrier.wait()
        for name in ("msg:1:wamid.A", "status:1:wamid.B:read"):
            if store.claim(_SlowKey(name)):
                wins.append(name)  # list.append is atomic

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == ["msg:1:wamid.A", "status:1:wamid.B:read"]


def test_invalid_store_settings() -> None:
    with pytest.raises(ValueError):
        InMemoryStore(ttl=0)
    with pytest.raises(ValueError):
        InMemoryStore(max_entries=0)
    with pytest.raises(ValueError):
        RedisStore(object(), ttl=0)


def test_keys_are_bounded_whatever_the_id() -> None:
    assert safe_key("wamid.HBgL") == "wamid.HBgL"
    for hostile in ("x" * 10_000, "wamid.\u202eevil", "\ud800", "a\nb", "é"):
        key = safe_key(hostile)
        assert key.startswith("sha256:") and len(key) == 7 + 64
    assert message_key("123", "wamid.A") == "msg:123:wamid.A"
    assert status_key("123", "wamid.A", "read") != status_key("123", "wamid.A", "delivered")


def _counting_client(make_connector: MakeConnector, **kwargs: object):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def assistant(message: Message) -> str:
        calls.append(message.id)
        return f"re: {message.text}"

    connector = make_connector(assistant, **kwargs)
    return make_app(connector).test_client(), calls, connector


def test_redelivered_webhook_is_answered_once(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, calls, _ = _counting_client(make_connector)
    body = text_webhook("hello", id="wamid.ONCE")
    for _ in range(3):
        assert post_webhook(client, body).status_code == 200
    assert calls == ["wamid.ONCE"]
    assert graph.sent_texts() == ["re: hello"]


def test_duplicate_inside_one_batch_is_answered_once(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, calls, _ = _counting_client(make_connector)
    message = text_message("twice", id="wamid.DUP")
    other = text_message("other", id="wamid.OTHER")
    body = envelope(change_value([message, other]), change_value([message]))
    assert post_webhook(client, body).status_code == 200
    assert calls == ["wamid.DUP", "wamid.OTHER"]


def test_partly_new_redelivery_answers_only_the_new_message(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, calls, _ = _counting_client(make_connector)
    first = text_message("first", id="wamid.1")
    second = text_message("second", id="wamid.2")
    post_webhook(client, envelope(change_value([first])))
    post_webhook(client, envelope(change_value([first, second])))
    assert calls == ["wamid.1", "wamid.2"]


def test_a_status_flood_between_redeliveries_does_not_answer_twice(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    # Replies produce sent, delivered and read statuses for every message
    # sent; in one shared budget they evicted the ids of messages answered.
    store = InMemoryStore(max_entries=20)
    client, calls, _ = _counting_client(make_connector, store=store)
    body = text_webhook("hello", id="wamid.ASKED")
    assert post_webhook(client, body).status_code == 200
    statuses = [
        status(f"wamid.OUT{index}", name)
        for index in range(20)
        for name in ("sent", "delivered", "read")
    ]
    assert post_webhook(client, envelope(change_value(statuses=statuses))).status_code == 200
    assert post_webhook(client, body).status_code == 200  # Meta delivers it again
    assert calls == ["wamid.ASKED"]
    assert graph.sent_texts() == ["re: hello"]


def test_same_store_shared_by_two_connectors_answers_once(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    store = InMemoryStore()
    client_a, calls_a, _ = _counting_client(make_connector, store=store)
    client_b, calls_b, _ = _counting_client(make_connector, store=store)
    body = text_webhook("hi", id="wamid.SHARED")
    post_webhook(client_a, body)
    post_webhook(client_b, body)
    assert calls_a + calls_b == ["wamid.SHARED"]


class FlakyStore:
    """A store whose backend fails after ``good`` claims (stands in for a Redis outage)."""

    def __init__(self, good: int) -> None:
        self.inner = InMemoryStore()
        self.good = good
        self.released: list[str] = []

    def claim(self, key: str) -> bool:
        if self.good <= 0:
            raise StoreError("could not reach the store")
        self.good -= 1
        return self.inner.claim(key)

    def release(self, key: str) -> None:
        self.released.append(key)
        self.inner.release(key)


def test_store_outage_answers_503_and_gives_back_claims(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(good=1)
    client, calls, _ = _counting_client(make_connector, store=store)
    body = envelope(
        change_value([text_message("a", id="wamid.A"), text_message("b", id="wamid.B")])
    )
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        response = post_webhook(client, body)
    assert response.status_code == 503
    assert response.get_json() == {"error": "temporarily unable to accept updates"}
    assert calls == []
    assert store.released == [message_key("106540352242922", "wamid.A")]
    assert "503" in caplog.text
    store.good = 10  # the store is back: Meta's redelivery is answered whole
    assert post_webhook(client, body).status_code == 200
    assert calls == ["wamid.A", "wamid.B"]


def test_redis_store_from_url_needs_no_server_until_used() -> None:
    pytest.importorskip("redis")
    store = RedisStore.from_url("redis://:hunter2-password@127.0.0.1:1/0", ttl=10)
    assert "hunter2" not in repr(store)
    with pytest.raises(StoreError):
        store.claim("x")  # nothing listens on port 1
