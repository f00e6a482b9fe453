"""Stuck assistants: slow answers are reported, and so is a pool with every thread stuck."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest

from cel_whatsapp import BackgroundDispatcher, Lead, Message
from cel_whatsapp.testing import FakeGraphAPI, text_webhook
from cel_whatsapp.testing.webhooks import DEFAULT_PHONE_NUMBER_ID

from .conftest import MakeConnector, make_app, post_webhook

SLOW = 0.05


def wait_until(
    caplog: pytest.LogCaptureFixture,
    predicate: Callable[[list[logging.LogRecord]], bool],
    timeout: float = 10.0,
) -> list[logging.LogRecord]:
    """Poll the captured records until ``predicate`` holds; fail at ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = list(caplog.records)
        if predicate(records):
            return records
        time.sleep(0.01)
    raise AssertionError(f"not logged within {timeout}s: {caplog.text[-2000:]}")


def slow_reports(records: list[logging.LogRecord], wamid: str) -> list[logging.LogRecord]:
    return [
        r for r in records if "has been running for" in r.getMessage() and wamid in r.getMessage()
    ]


def pool_full(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if "worker threads are busy" in r.getMessage()]


@pytest.fixture
def gate() -> Iterator[dict[str, threading.Event]]:
    """One event per message text; every one is set when the test ends."""
    events: dict[str, threading.Event] = {}
    yield events
    for event in events.values():
        event.set()


@pytest.fixture
def stuck_connector(
    make_connector: MakeConnector, gate: dict[str, threading.Event]
) -> Iterator[Callable[[BackgroundDispatcher], Callable[[str, str], None]]]:
    """Returns ``post(text, wamid)`` for a connector whose assistant waits on ``gate[text]``."""
    pools: list[BackgroundDispatcher] = []

    def build(pool: BackgroundDispatcher) -> Callable[[str, str], None]:
        pools.append(pool)

        def assistant(message: Message) -> str:
            gate.setdefault(message.text or "", threading.Event()).wait(30)
            return "done"

        client = make_app(make_connector(assistant, dispatch=pool)).test_client()

        def post(text: str, wamid: str, sender: str = "16315551181") -> None:
            gate.setdefault(text, threading.Event())
            body = text_webhook(text, id=wamid, sender=sender)
            assert post_webhook(client, body).status_code == 200

        return post

    yield build
    for event in gate.values():
        event.set()
    for pool in pools:
        pool.shutdown(5)


def test_a_slow_answer_is_reported_with_its_message_id_and_again_as_it_doubles(
    stuck_connector: Callable[[BackgroundDispatcher], Callable[..., None]],
    gate: dict[str, threading.Event],
    graph: FakeGraphAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    post = stuck_connector(BackgroundDispatcher(max_workers=2, slow_answer_after=SLOW))
    with caplog.at_level(logging.INFO, logger="cel_whatsapp"):
        post("stuck", "wamid.STUCK", sender="15557654321")
        records = wait_until(caplog, lambda r: len(slow_reports(r, "wamid.STUCK")) >= 2)
        first = slow_reports(records, "wamid.STUCK")[0]
        assert first.levelno == logging.WARNING
        assert DEFAULT_PHONE_NUMBER_ID in first.getMessage()  # the business number id
        gate["stuck"].set()
        records = wait_until(
            caplog, lambda r: any("answered after all" in x.getMessage() for x in r)
        )
    assert graph.wait_for(lambda g: g.sent_texts() == ["done"])
    # The user's phone number is personal data: never in the log.
    assert all("15557654321" not in record.getMessage() for record in caplog.records)


def test_a_pool_with_every_thread_stuck_is_an_error_logged_once(
    stuck_connector: Callable[[BackgroundDispatcher], Callable[..., None]],
    gate: dict[str, threading.Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    post = stuck_connector(BackgroundDispatcher(max_workers=2, slow_answer_after=SLOW))
    with caplog.at_level(logging.INFO, logger="cel_whatsapp"):
        post("one", "wamid.ONE", sender="111")
        post("two", "wamid.TWO", sender="222")
        post("three", "wamid.THREE", sender="333")  # queued behind the stuck two
        records = wait_until(caplog, lambda r: bool(pool_full(r)))
        [error] = pool_full(records)
        assert error.levelno == logging.ERROR
        assert "3 accepted message(s) pending" in error.getMessage()
        # Later checks (more slow reports of both answers) do not repeat it.
        before = len(slow_reports(records, "wamid.ONE"))
        records = wait_until(caplog, lambda r: len(slow_reports(r, "wamid.ONE")) >= before + 2)
        assert len(pool_full(records)) == 1
        # A thread comes free: said once; the next time every thread is stuck is new.
        gate["one"].set()
        records = wait_until(
            caplog, lambda r: any("free worker thread" in x.getMessage() for x in r)
        )
        records = wait_until(caplog, lambda r: len(pool_full(r)) == 2)  # "three" got stuck too
        assert "2 accepted message(s) pending" in pool_full(records)[1].getMessage()


def test_slow_answer_reports_can_be_turned_off(
    stuck_connector: Callable[[BackgroundDispatcher], Callable[..., None]],
    gate: dict[str, threading.Event],
    graph: FakeGraphAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = BackgroundDispatcher(max_workers=1, slow_answer_after=None, name="unwatched")
    post = stuck_connector(pool)
    with caplog.at_level(logging.INFO, logger="cel_whatsapp"):
        post("late", "wamid.LATE")
        assert pool.drain(0) is False  # still answering
        gate["late"].set()
        assert pool.drain(10)
    assert not any(t.name == "unwatched-watch" for t in threading.enumerate())
    assert slow_reports(caplog.records, "wamid.LATE") == []
    with pytest.raises(ValueError, match="slow_answer_after"):
        BackgroundDispatcher(slow_answer_after=0)


def test_reports_come_at_the_threshold_then_each_time_the_running_time_doubles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from cel_whatsapp.core._watch import AnswerWatch

    now = [100.0]
    watch = AnswerWatch(
        threads=2, slow_after=10.0, pending=lambda: 2, max_pending=9, name="w", clock=lambda: now[0]
    )
    message = Message(
        id="wamid.W",
        lead=Lead(id="15550001111", phone_number_id="42"),
        text="hi",
        date=datetime.now(timezone.utc),
        type="text",
    )
    watch.begin(0, message)
    reported = []
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        for elapsed in range(200):
            now[0] = 100.0 + elapsed
            before = len(caplog.records)
            next_check = watch.check(10.0)
            if len(caplog.records) > before:
                reported.append(elapsed)
            assert 0 < next_check <= 10.0
    assert reported == [10, 20, 40, 80, 160]
    assert watch.running() == [message]
    assert pool_full(caplog.records) == []  # one thread of two: not full
    watch.end(0)
    assert watch.running() == []
