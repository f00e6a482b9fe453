"""Per-lead order across workers: queues and leases in a real redis-server.

Two connectors with their own dispatchers and their own Redis connections
stand in for two gunicorn workers (the gunicorn test in test_load.py does the
same with real processes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from cel_whatsapp import BackgroundDispatcher, Lead, Message, RedisStore
from cel_whatsapp.core.dispatch import lead_key
from cel_whatsapp.testing import FakeGraphAPI, text_webhook
from cel_whatsapp.testing.webhooks import DEFAULT_PHONE_NUMBER_ID

from .conftest import MakeConnector, make_app, post_webhook

pytestmark = pytest.mark.integration

SENDER = "16315550000"
#: The lead's key in Redis, as the dispatcher computes it.
LEAD = lead_key(
    Message(
        id="wamid.ANY",
        lead=Lead(id=SENDER, phone_number_id=DEFAULT_PHONE_NUMBER_ID),
        text=None,
        date=datetime.now(timezone.utc),
        type="text",
    )
)


class Recorder:
    """Records when each answer starts and ends, across threads."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, text: str) -> None:
        with self.lock:
            self.events.append((kind, text, time.monotonic()))

    def starts(self) -> list[str]:
        return [text for kind, text, _ in self.events if kind == "start"]

    def assert_never_overlapping(self) -> None:
        kinds = [kind for kind, _, _ in self.events]
        assert kinds == ["start", "end"] * (len(kinds) // 2), self.events


Workers = Callable[..., list[tuple[FlaskClient, Any]]]


@pytest.fixture
def workers(redis_url: str, redis_client: Any, make_connector: MakeConnector) -> Iterator[Workers]:
    made: list[BackgroundDispatcher] = []

    def make(assistant: Any, count: int = 2, **options: Any) -> list[tuple[FlaskClient, Any]]:
        result = []
        for _ in range(count):
            pool = BackgroundDispatcher(**options)
            made.append(pool)
            connector = make_connector(
                assistant, store=RedisStore.from_url(redis_url), dispatch=pool
            )
            result.append((make_app(connector).test_client(), connector))
        return result

    yield make
    for pool in made:
        pool.shutdown(10)


def _drain(pairs: list[tuple[FlaskClient, Any]], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    for _, connector in pairs:
        assert connector.drain(max(0.1, deadline - time.monotonic()))


def test_one_lead_across_two_workers_in_timestamp_order(
    workers: Workers, graph: FakeGraphAPI
) -> None:
    record = Recorder()
    gate = threading.Event()

    def assistant(message: Message) -> str:
        text = message.text or ""
        if message.lead.id != SENDER:
            return text  # the witness below
        record("start", text)
        if text == "t5":
            gate.wait(10)  # the rest queue up, in both workers, while this runs
        else:
            time.sleep(0.3 if text in ("t1", "t3") else 0.02)  # slow ones tempt reordering
        record("end", text)
        return text

    (a, _), (b, _) = pairs = workers(assistant, max_workers=4)
    post_webhook(a, text_webhook("t5", sender=SENDER, timestamp=1_700_000_005))
    assert graph.wait_for(lambda g: "t5" in record.starts(), 5)
    for client, text, ts in ((b, "t3", 3), (a, "t4", 4), (b, "t1", 1), (a, "t2", 2)):
        assert (
            post_webhook(
                client, text_webhook(text, sender=SENDER, timestamp=1_700_000_000 + ts)
            ).status_code
            == 200
        )
    # Worker b asks Redis about all its waiting leads in one round: once a
    # message of another lead, queued after t3 and t1, is answered there, b
    # has asked about this lead too, and was told to wait. (Worker a holds
    # t2 and t4 behind t5 without asking.)
    post_webhook(b, text_webhook("witness", sender="15550001111"))
    assert graph.wait_for(lambda g: "witness" in g.sent_texts(), 5)
    assert record.starts() == ["t5"]
    gate.set()
    _drain(pairs)
    assert record.starts() == ["t5", "t1", "t2", "t3", "t4"]
    record.assert_never_overlapping()
    to_lead = [r.json["text"]["body"] for r in graph.sent() if r.json["to"] == SENDER]
    assert to_lead == ["t5", "t1", "t2", "t3", "t4"]


def test_other_leads_are_not_held_up_by_a_busy_lead(workers: Workers, graph: FakeGraphAPI) -> None:
    gate = threading.Event()

    def assistant(message: Message) -> str:
        if message.lead.id == SENDER:
            gate.wait(10)
        return message.lead.id

    (a, _), (b, _) = pairs = workers(assistant)
    post_webhook(a, text_webhook("slow", sender=SENDER))
    post_webhook(b, text_webhook("slow too", sender=SENDER))
    post_webhook(b, text_webhook("quick", sender="15550001111"))
    assert graph.wait_for(lambda g: g.sent_texts() == ["15550001111"], 5)
    gate.set()
    _drain(pairs)
    assert graph.sent_texts() == ["15550001111", SENDER, SENDER]


def test_queue_entry_of_a_dead_worker_is_skipped(
    workers: Workers, graph: FakeGraphAPI, redis_client: Any
) -> None:
    # A worker died (no heartbeat) with a message of this lead queued first.
    redis_client.zadd(
        f"cel_whatsapp:queue:{LEAD}", {"00000000000000000001|dead-worker-1|wamid.LOST": 1}
    )
    [(client, connector)] = workers(lambda m: "answered", count=1)
    started = time.monotonic()
    post_webhook(client, text_webhook("hello", sender=SENDER))
    assert connector.drain(5)
    assert graph.sent_texts() == ["answered"]
    assert time.monotonic() - started < 2
    assert redis_client.zcard(f"cel_whatsapp:queue:{LEAD}") == 0


def test_lease_of_a_worker_killed_mid_answer_expires(
    workers: Workers, graph: FakeGraphAPI, redis_client: Any
) -> None:
    # A worker took the lead's lease and was SIGKILLed: nobody renews it.
    redis_client.set(f"cel_whatsapp:lease:{LEAD}", b"dead-worker-2", px=1000)
    [(client, connector)] = workers(lambda m: "after the lease", count=1)
    started = time.monotonic()
    post_webhook(client, text_webhook("hello", sender=SENDER))
    assert connector.drain(10)
    waited = time.monotonic() - started
    assert graph.sent_texts() == ["after the lease"]
    assert 0.7 <= waited < 5, waited


def test_live_holder_keeps_its_lease_past_the_ttl(workers: Workers, graph: FakeGraphAPI) -> None:
    record = Recorder()

    def assistant(message: Message) -> str:
        record("start", message.text or "")
        if message.text == "long":
            time.sleep(2.5)  # longer than the 1 s lease: renewals must keep it
        record("end", message.text or "")
        return message.text or ""

    (a, _), (b, _) = pairs = workers(assistant, lease_ttl=1.0)
    post_webhook(a, text_webhook("long", sender=SENDER, timestamp=1_700_000_001))
    assert graph.wait_for(lambda g: record.starts() == ["long"], 5)
    post_webhook(b, text_webhook("next", sender=SENDER, timestamp=1_700_000_002))
    _drain(pairs)
    record.assert_never_overlapping()
    assert record.starts() == ["long", "next"]


def test_redis_lost_while_waiting_answers_anyway(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from .components import redis_server

    gate = threading.Event()

    def assistant(message: Message) -> str:
        if message.text == "first":
            gate.wait(10)
        return message.text or ""

    pool = BackgroundDispatcher(lease_ttl=1.0)
    try:
        with redis_server(tmp_path) as url:
            store = RedisStore.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
            connector = make_connector(assistant, store=store, dispatch=pool)
            client = make_app(connector).test_client()
            post_webhook(client, text_webhook("first", sender=SENDER, timestamp=1_700_000_001))
            post_webhook(client, text_webhook("second", sender=SENDER, timestamp=1_700_000_002))
        # redis-server is gone now; both messages were accepted with 200.
        with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
            gate.set()
            assert connector.drain(15)
        assert graph.sent_texts() == ["first", "second"]
        assert "without cross-worker ordering" in caplog.text
    finally:
        pool.shutdown(5)
