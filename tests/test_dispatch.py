"""Background dispatch: 200 at once, per-lead order, parallel leads, full pool, drain."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from cel_whatsapp import BackgroundDispatcher, InlineDispatcher, Message, WhatsappConnector
from cel_whatsapp.core.dispatch import Handler, make_dispatcher
from cel_whatsapp.testing import FakeGraphAPI, envelope, text_message, text_webhook
from cel_whatsapp.testing.webhooks import change_value

from .conftest import MakeConnector, make_app, post_webhook
from .log_watch import watching

MakeDispatcher = Callable[..., BackgroundDispatcher]


@pytest.fixture
def dispatcher() -> Iterator[MakeDispatcher]:
    """Build background dispatchers; every one is shut down after the test."""
    made: list[BackgroundDispatcher] = []

    def make(**kwargs: Any) -> BackgroundDispatcher:
        made.append(BackgroundDispatcher(**kwargs))
        return made[-1]

    yield make
    for item in made:
        item.shutdown(5)


def test_default_dispatch_is_background() -> None:
    connector = WhatsappConnector("t", "1", "v")
    assert isinstance(connector.dispatcher, BackgroundDispatcher)
    assert isinstance(
        WhatsappConnector("t", "1", "v", dispatch="inline").dispatcher, InlineDispatcher
    )
    custom = BackgroundDispatcher(max_workers=2)
    assert WhatsappConnector("t", "1", "v", dispatch=custom).dispatcher is custom
    with pytest.raises(ValueError, match="dispatch must be"):
        make_dispatcher("threads")


def test_webhook_answers_200_before_the_assistant_finishes(
    make_connector: MakeConnector, graph: FakeGraphAPI, dispatcher: MakeDispatcher
) -> None:
    release = threading.Event()

    def slow(message: Message) -> str:
        release.wait(10)
        return "done"

    connector = make_connector(slow, dispatch=dispatcher())
    client = make_app(connector).test_client()
    started = time.monotonic()
    assert post_webhook(client, text_webhook("hi")).status_code == 200
    assert time.monotonic() - started < 5  # the assistant is still blocked
    assert graph.sent() == []
    assert connector.drain(0) is False  # still pending
    release.set()
    assert connector.drain(5) is True
    assert graph.sent_texts() == ["done"]


def test_one_lead_in_timestamp_then_arrival_order_never_overlapping(
    make_connector: MakeConnector, graph: FakeGraphAPI, dispatcher: MakeDispatcher
) -> None:
    log: list[tuple[str, str]] = []
    lock = threading.Lock()
    gate = threading.Event()
    other_lead_answered = threading.Event()

    def assistant(message: Message) -> str:
        if message.lead.id == "222":
            other_lead_answered.set()
            return "other"
        gate.wait(10)  # let the whole batch queue up first
        with lock:
            log.append(("start", message.text or ""))
        # While this answer runs, the pool's other thread is free and takes
        # work in the order it was handed out. The other lead's message came
        # after this lead's: a second message of this lead handed out now
        # would take that thread first and wait here too, two starts in a row.
        other_lead_answered.wait(10)
        with lock:
            log.append(("end", message.text or ""))
        return message.text or ""

    connector = make_connector(assistant, dispatch=dispatcher(max_workers=2))
    client = make_app(connector).test_client()
    batch = [
        text_message("t3", timestamp=1_700_000_003),
        text_message("t1-first", timestamp=1_700_000_001),
        text_message("t2", timestamp=1_700_000_002),
        text_message("t1-second", timestamp=1_700_000_001),
    ]
    assert post_webhook(client, envelope(change_value(batch[:2]))).status_code == 200
    assert post_webhook(client, envelope(change_value(batch[2:]))).status_code == 200
    assert post_webhook(client, text_webhook("witness", sender="222")).status_code == 200
    gate.set()
    assert connector.drain(10)
    # The first batch's earliest message starts at once; the rest follow by
    # (timestamp, arrival), whichever POST brought them.
    order = [text for kind, text in log if kind == "start"]
    assert order == ["t1-first", "t1-second", "t2", "t3"]
    for index in range(0, len(log), 2):  # strictly start, end, start, end...
        assert log[index][0] == "start" and log[index + 1] == ("end", log[index][1])
    assert [r.json["text"]["body"] for r in graph.sent() if r.json["to"] != "222"] == order


def test_different_leads_run_in_parallel(
    make_connector: MakeConnector, graph: FakeGraphAPI, dispatcher: MakeDispatcher
) -> None:
    barrier = threading.Barrier(3, timeout=5)

    def assistant(message: Message) -> str:
        barrier.wait()  # passes only if three leads are answered at the same time
        return "together"

    connector = make_connector(assistant, dispatch=dispatcher(max_workers=3))
    client = make_app(connector).test_client()
    senders = ["111", "222", "333"]
    body = envelope(change_value([text_message("x", sender=s) for s in senders]))
    assert post_webhook(client, body).status_code == 200
    assert connector.drain(10)
    assert sorted(r.json["to"] for r in graph.sent()) == senders


def test_full_pool_refuses_with_503_and_redelivery_is_answered(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    dispatcher: MakeDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    calls: list[str] = []

    def assistant(message: Message) -> str:
        calls.append(message.id)
        release.wait(10)
        return message.id

    pool = dispatcher(max_workers=1, max_pending=2, full_timeout=0)
    connector = make_connector(assistant, dispatch=pool)
    client = make_app(connector).test_client()
    first = text_webhook("a", id="wamid.1", sender="111")
    second = text_webhook("b", id="wamid.2", sender="222")
    third = envelope(
        change_value(
            [
                text_message("c", id="wamid.3", sender="333"),
                text_message("d", id="wamid.4", sender="444"),
            ]
        )
    )
    assert post_webhook(client, first).status_code == 200
    assert post_webhook(client, second).status_code == 200
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        refused = post_webhook(client, third)
    assert refused.status_code == 503
    assert "refused" in caplog.text
    release.set()
    assert connector.drain(10)
    # Meta delivers the refused batch again: both messages are answered, once.
    assert post_webhook(client, third).status_code == 200
    assert post_webhook(client, third).status_code == 200
    assert connector.drain(10)
    assert sorted(calls) == ["wamid.1", "wamid.2", "wamid.3", "wamid.4"]
    assert sorted(graph.sent_texts()) == ["wamid.1", "wamid.2", "wamid.3", "wamid.4"]


class _SignallingDispatcher(BackgroundDispatcher):
    """Sets ``submitting`` each time the webhook hands it messages."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.submitting = threading.Event()

    def submit(self, messages: Sequence[Message], handle: Handler | None = None) -> list[Message]:
        self.submitting.set()
        return super().submit(messages, handle)


def test_full_pool_waits_for_room_before_refusing(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    release = threading.Event()
    pool = _SignallingDispatcher(max_workers=1, max_pending=1, full_timeout=10)
    connector = make_connector(lambda m: release.wait(10) and "ok", dispatch=pool)
    client = make_app(connector).test_client()
    try:
        assert post_webhook(client, text_webhook("a", sender="1")).status_code == 200
        pool.submitting.clear()
        second: list[int] = []
        poster = threading.Thread(
            target=lambda: second.append(
                post_webhook(client, text_webhook("b", sender="2")).status_code
            )
        )
        poster.start()
        # "b" reaches the dispatcher while "a" fills it; room comes only now.
        assert pool.submitting.wait(10)
        release.set()
        poster.join(10)
        assert second == [200]  # waited, then accepted
        assert connector.drain(5)
        assert graph.sent_texts() == ["ok", "ok"]
    finally:
        release.set()
        pool.shutdown(5)


def test_failing_assistant_is_logged_gets_fallback_and_worker_carries_on(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    dispatcher: MakeDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def assistant(message: Message) -> str:
        if message.text == "boom":
            raise KeyError("model config")
        return "fine"

    connector = make_connector(
        assistant,
        dispatch=dispatcher(max_workers=1),
        fallback_text="Sorry, something went wrong. Please try again.",
    )
    client = make_app(connector).test_client()
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        post_webhook(client, text_webhook("boom", id="wamid.BOOM"))
        post_webhook(client, text_webhook("next"))
        assert connector.drain(5)
    assert graph.sent_texts() == ["Sorry, something went wrong. Please try again.", "fine"]
    [record] = [r for r in caplog.records if r.exc_info]
    assert "wamid.BOOM" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "boom" not in caplog.text.replace("wamid.BOOM", "")  # the text is never logged


def test_fallback_text_is_validated() -> None:
    from cel_whatsapp import ConfigurationError

    with pytest.raises(ConfigurationError):
        WhatsappConnector("t", "1", "v", fallback_text="   ")
    with pytest.raises(ConfigurationError):
        WhatsappConnector("t", "1", "v", fallback_text="x" * 4097)


def test_shutdown_finishes_accepted_and_refuses_new(
    make_connector: MakeConnector, graph: FakeGraphAPI, dispatcher: MakeDispatcher
) -> None:
    release = threading.Event()
    pool = dispatcher(max_workers=2)
    connector = make_connector(lambda m: release.wait(10) and f"re {m.text}", dispatch=pool)
    client = make_app(connector).test_client()
    for index in range(4):
        post_webhook(client, text_webhook(str(index), sender="555"))
    finished: list[bool] = []
    with watching() as log:
        stopper = threading.Thread(target=lambda: finished.append(pool.shutdown(10)))
        stopper.start()
        # The shutdown has begun with all four still to answer; they go on now.
        log.wait_for("shutting down: finishing 4 accepted message(s)")
        release.set()
        stopper.join(10)
    assert finished == [True]
    assert graph.sent_texts() == ["re 0", "re 1", "re 2", "re 3"]
    assert post_webhook(client, text_webhook("late")).status_code == 503
    assert pool.pending == 0


def test_shutdown_reports_what_it_could_not_finish(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    dispatcher: MakeDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    pool = dispatcher(max_workers=1)
    connector = make_connector(lambda m: release.wait(10) and "late", dispatch=pool)
    client = make_app(connector).test_client()
    post_webhook(client, text_webhook("a", sender="1"))
    post_webhook(client, text_webhook("b", sender="1"))
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        assert pool.shutdown(0) is False  # no time to answer: nothing to wait for
    assert "2 accepted message(s) were not answered" in caplog.text
    release.set()


def test_inline_answers_a_batch_in_timestamp_order(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    connector = make_connector(lambda m: m.text)
    client = make_app(connector).test_client()
    batch = [
        text_message("second", timestamp=1_700_000_002),
        text_message("first", timestamp=1_700_000_001),
    ]
    post_webhook(client, envelope(change_value(batch)))
    assert graph.sent_texts() == ["first", "second"]
    assert connector.drain(0) is True


def test_drain_with_nothing_pending_is_immediate(dispatcher: MakeDispatcher) -> None:
    assert dispatcher().drain(0) is True


def test_invalid_pool_sizes() -> None:
    with pytest.raises(ValueError):
        BackgroundDispatcher(max_workers=0)
    with pytest.raises(ValueError):
        BackgroundDispatcher(max_pending=0)
