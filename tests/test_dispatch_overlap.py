"""Background dispatch hides the Graph API's latency: sends of different leads overlap.

The Graph API here holds every message send until the test lets it go, and
counts the sends in flight, all of them and per recipient. Overlap is proved
by those counters (N leads' sends held at the fake at once), never by timing.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cel_whatsapp import BackgroundDispatcher, Message, RedisStore
from cel_whatsapp.config import DEFAULT_MAX_WORKERS, MAX_WORKERS_LIMIT
from cel_whatsapp.testing import FakeGraphAPI, envelope, text_message
from cel_whatsapp.testing.fake_graph import RecordedRequest
from cel_whatsapp.testing.webhooks import change_value

from .conftest import TOKEN, MakeConnector, make_app, post_webhook

WAIT = 10.0  # seconds; only ever reached when a test fails


class HeldGraphAPI(FakeGraphAPI):
    """The fake Graph API, holding message sends until :meth:`release`.

    ``in_flight`` and ``peak`` count the sends received and not answered yet;
    ``peak_per_recipient`` the most in flight at once to any one user.
    """

    def __init__(self) -> None:
        super().__init__(token=TOKEN)
        # Every lead's thread connects at once: a listen backlog of 5
        # (socketserver's default) could drop connections.
        self._server.socket.listen(128)
        self.gate = threading.Event()
        self.changed = threading.Condition()
        self.in_flight = 0
        self.peak = 0
        self.by_recipient: Counter[str] = Counter()
        self.peak_per_recipient = 0

    def answer(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not request.is_message:
            return super().answer(request)
        recipient = str(request.json.get("to"))
        with self.changed:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.by_recipient[recipient] += 1
            self.peak_per_recipient = max(self.peak_per_recipient, self.by_recipient[recipient])
            self.changed.notify_all()
        try:
            assert self.gate.wait(WAIT), "the test never released the held sends"
            return super().answer(request)
        finally:
            with self.changed:
                self.in_flight -= 1
                self.by_recipient[recipient] -= 1
                self.changed.notify_all()

    def release(self) -> None:
        self.gate.set()

    def wait_in_flight(self, count: int) -> bool:
        """Wait until ``count`` sends are held at once."""
        with self.changed:
            return self.changed.wait_for(lambda: self.in_flight >= count, WAIT)


@pytest.fixture
def held() -> Iterator[HeldGraphAPI]:
    with HeldGraphAPI() as server:
        yield server
        server.release()


@pytest.fixture
def pools() -> Iterator[Callable[..., BackgroundDispatcher]]:
    made: list[BackgroundDispatcher] = []

    def make(**kwargs: Any) -> BackgroundDispatcher:
        made.append(BackgroundDispatcher(**kwargs))
        return made[-1]

    yield make
    for pool in made:
        pool.shutdown(5)


def _batch(messages: list[tuple[str, str]]) -> dict[str, Any]:
    """One POST holding (sender, text) messages, timestamps in list order."""
    items = [
        text_message(
            text, sender=sender, id=f"wamid.OV{index:04d}", timestamp=1_700_000_000 + index
        )
        for index, (sender, text) in enumerate(messages)
    ]
    return envelope(change_value(items))


def _sender(lead: int) -> str:
    return f"1555000{lead:04d}"


def test_sends_of_different_leads_are_in_flight_together(
    held: HeldGraphAPI,
    make_connector: MakeConnector,
    pools: Callable[..., BackgroundDispatcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    leads = 24  # more than urllib3's default pool of 10 connections
    pool = pools()  # the defaults
    connector = make_connector(
        lambda message: f"echo {message.text}", base_url=held.base_url, dispatch=pool
    )
    client = make_app(connector).test_client()
    with caplog.at_level(logging.WARNING):
        body = _batch([(_sender(lead), f"m{lead}") for lead in range(leads)])
        assert post_webhook(client, body).status_code == 200
        # Every lead's send is at the Graph API at once, none answered yet:
        # N answers take about one Graph API delay, not N of them.
        assert held.wait_in_flight(leads)
        # Threads start as answers need them, not max_workers up front.
        assert len(pool._threads) == leads < DEFAULT_MAX_WORKERS
        held.release()
        assert connector.drain(WAIT)
    assert sorted(held.sent_texts()) == sorted(f"echo m{lead}" for lead in range(leads))
    # The connector's session pools a connection per thread that may send at
    # once: none is thrown away after its send (urllib3 warns when it does).
    assert "Connection pool is full" not in caplog.text


def test_per_lead_order_is_kept_while_sends_overlap(
    held: HeldGraphAPI, make_connector: MakeConnector, pools: Callable[..., BackgroundDispatcher]
) -> None:
    leads, per_lead = 6, 4

    def two_sentences(message: Message) -> str:
        return f"{message.text} one. {message.text} two."

    connector = make_connector(two_sentences, base_url=held.base_url, dispatch=pools())
    client = make_app(connector).test_client()
    # Interleaved: lead 0's first message, lead 1's first... then the seconds.
    messages = [(_sender(lead), f"L{lead}M{n}") for n in range(per_lead) for lead in range(leads)]
    assert post_webhook(client, _batch(messages)).status_code == 200
    # One send per lead in flight: the leads overlap, each lead waits its turn.
    assert held.wait_in_flight(leads)
    assert held.peak_per_recipient == 1
    held.release()
    assert connector.drain(WAIT)
    assert held.peak_per_recipient == 1  # never two sends to one user at once
    by_lead: dict[str, list[str]] = {}
    for request in held.sent():
        by_lead.setdefault(request.json["to"], []).append(request.json["text"]["body"])
    for lead in range(leads):
        expected = [f"L{lead}M{n} {part}." for n in range(per_lead) for part in ("one", "two")]
        assert by_lead[_sender(lead)] == expected


def test_max_workers_bounds_the_sends_in_flight(
    held: HeldGraphAPI, make_connector: MakeConnector, pools: Callable[..., BackgroundDispatcher]
) -> None:
    pool = pools(max_workers=4)
    connector = make_connector(lambda m: "hi", base_url=held.base_url, dispatch=pool)
    client = make_app(connector).test_client()
    assert post_webhook(client, _batch([(_sender(n), "x") for n in range(10)])).status_code == 200
    assert held.wait_in_flight(4)
    assert pool.pending == 10
    held.release()
    assert connector.drain(WAIT)
    assert held.peak == 4 and len(pool._threads) == 4
    assert len(held.sent()) == 10


@pytest.mark.integration
def test_leads_overlap_with_cross_worker_ordering(
    held: HeldGraphAPI,
    make_connector: MakeConnector,
    pools: Callable[..., BackgroundDispatcher],
    redis_url: str,
    redis_client: Any,
) -> None:
    # With RedisStore a lead's turn is granted by the turn loop, which starts
    # the threads the granted answers need.
    workers = []
    for _ in range(2):
        connector = make_connector(
            lambda m: f"echo {m.text}",
            base_url=held.base_url,
            store=RedisStore.from_url(redis_url),
            dispatch=pools(),
        )
        workers.append((make_app(connector).test_client(), connector))
    leads = 12
    for lead in range(leads):
        client = workers[lead % 2][0]
        body = envelope(
            change_value([text_message(f"m{lead}", sender=_sender(lead), id=f"wamid.RV{lead}")])
        )
        assert post_webhook(client, body).status_code == 200
    assert held.wait_in_flight(leads)
    held.release()
    for _, connector in workers:
        assert connector.drain(WAIT)
    assert len(held.sent()) == leads


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_workers", 0),
        ("max_workers", MAX_WORKERS_LIMIT + 1),
        ("max_workers", 2.5),
        ("max_workers", True),
        ("max_workers", "8"),
        ("max_pending", 0),
        ("full_timeout", -1),
        ("full_timeout", float("nan")),
        ("lease_ttl", 0),
        ("shutdown_timeout", float("inf")),
        ("poll_interval", 0),
        ("slow_answer_after", -5),
    ],
)
def test_settings_out_of_range_are_refused_naming_the_setting(setting: str, value: Any) -> None:
    with pytest.raises(ValueError, match=setting):
        BackgroundDispatcher(**{setting: value})


def test_settings_in_range_are_taken() -> None:
    pool = BackgroundDispatcher(
        max_workers=MAX_WORKERS_LIMIT, full_timeout=0, shutdown_timeout=0, slow_answer_after=None
    )
    assert pool.max_workers == MAX_WORKERS_LIMIT
    assert BackgroundDispatcher().max_workers == DEFAULT_MAX_WORKERS
