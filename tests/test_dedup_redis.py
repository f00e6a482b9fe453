"""RedisStore against a real redis-server started by the tests."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cel_whatsapp import Message, RedisStore, Store
from cel_whatsapp.core.dedup import StoreError
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import MakeConnector, make_app, post_webhook

pytestmark = pytest.mark.integration


def test_claim_is_set_nx_with_ttl(redis_url: str, redis_client: Any) -> None:
    store = RedisStore.from_url(redis_url, ttl=3600, prefix="t:")
    assert isinstance(store, Store)
    assert store.claim("msg:1:wamid.A") is True
    assert store.claim("msg:1:wamid.A") is False
    assert redis_client.get("t:dedup:msg:1:wamid.A") == b"1"
    assert 3590 <= redis_client.ttl("t:dedup:msg:1:wamid.A") <= 3600
    store.release("msg:1:wamid.A")
    assert redis_client.exists("t:dedup:msg:1:wamid.A") == 0
    assert store.claim("msg:1:wamid.A") is True


def test_default_ttl_is_seven_days(redis_client: Any) -> None:
    store = RedisStore(redis_client)
    store.claim("k")
    assert redis_client.ttl("cel_whatsapp:dedup:k") == 7 * 24 * 3600


def test_concurrent_claims_from_many_clients_one_winner(redis_url: str, redis_client: Any) -> None:
    stores = [RedisStore.from_url(redis_url) for _ in range(8)]  # separate connection pools
    barrier = threading.Barrier(len(stores))
    wins: list[int] = []
    lock = threading.Lock()

    def race(store: RedisStore) -> None:
        barrier.wait()
        won = sum(store.claim(f"k{index}") for index in range(100))
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=race, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(wins) == 100


def test_webhook_redelivered_through_two_apps_sharing_redis(
    redis_url: str, redis_client: Any, make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    calls: list[str] = []

    def assistant(message: Message) -> str:
        calls.append(message.id)
        return "once"

    clients = [
        make_app(make_connector(assistant, store=RedisStore.from_url(redis_url))).test_client()
        for _ in range(2)
    ]
    body = text_webhook("hi", id="wamid.REDIS")
    for client in clients * 2:
        assert post_webhook(client, body).status_code == 200
    assert calls == ["wamid.REDIS"]
    assert graph.sent_texts() == ["once"]


def test_redis_down_gives_503_not_500(
    redis_url: str, make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    from .components import free_port

    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    client = make_app(make_connector(lambda m: "x", store=store)).test_client()
    response = post_webhook(client, text_webhook("hi"))
    assert response.status_code == 503
    assert graph.requests == []
    with pytest.raises(StoreError):
        store.release("anything")


def test_missing_component_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from .components import require

    monkeypatch.delenv("CEL_WHATSAPP_REQUIRE_COMPONENTS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require("no-such-server-binary", "for this check")
    monkeypatch.setenv("CEL_WHATSAPP_REQUIRE_COMPONENTS", "1")
    with pytest.raises(pytest.fail.Exception, match="forbids skipping"):
        require("no-such-server-binary", "for this check")
