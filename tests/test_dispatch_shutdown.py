"""Shutdown within one time budget: every message left is logged by id, nothing is sent late."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cel_whatsapp import BackgroundDispatcher, GraphAPIError, Message
from cel_whatsapp.core.dispatch import shutdown_all
from cel_whatsapp.core.retry import Retrier, RetryPolicy
from cel_whatsapp.testing import FakeGraphAPI, envelope, text_message
from cel_whatsapp.testing.webhooks import change_value

from .conftest import MakeConnector, make_app, post_webhook
from .log_watch import watching

ROOT = Path(__file__).resolve().parent.parent
_IDS = re.compile(r"\(\d+-\d+ of \d+\): (.*)$")


def _ids(records: list[logging.LogRecord], level: int, prefix: str) -> list[str]:
    found: list[str] = []
    for record in records:
        text = record.getMessage()
        if record.levelno == level and text.startswith(prefix):
            match = _IDS.search(text)
            assert match is not None, text
            found += match.group(1).split()
    return found


def _batch(ids: list[str], leads: int) -> dict[str, Any]:
    return envelope(
        change_value(
            [
                text_message("hi", id=wamid, sender=f"1555{index % leads:07d}")
                for index, wamid in enumerate(ids)
            ]
        )
    )


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds blocked assistants until the test ends."""
    event = threading.Event()
    yield event
    event.set()


def test_every_message_left_is_logged_by_id_in_bounded_records(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    gate: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    started: list[str] = []
    all_threads_busy = threading.Event()

    def stuck(message: Message) -> str:
        started.append(message.id)
        if len(started) >= 3:
            all_threads_busy.set()
        gate.wait(30)
        return "too late"

    pool = BackgroundDispatcher(max_workers=3, max_pending=2000)
    connector = make_connector(stuck, dispatch=pool)
    client = make_app(connector).test_client()
    ids = [f"wamid.Q{index:04d}" for index in range(1000)]
    assert post_webhook(client, _batch(ids, leads=400)).status_code == 200
    assert all_threads_busy.wait(10)
    with caplog.at_level(logging.INFO, logger="cel_whatsapp"):
        assert pool.shutdown(0) is False  # no time left: everything is logged as left
    records = caplog.records
    in_progress = _ids(records, logging.ERROR, "shutdown: not answered, in progress")
    queued = _ids(records, logging.ERROR, "shutdown: not answered, queued")
    assert sorted(in_progress) == sorted(started) and len(in_progress) == 3
    assert sorted(in_progress + queued) == ids
    # At the start, the same ids at INFO: a kill before the end still leaves them.
    announced = _ids(records, logging.INFO, "shutting down: in progress") + _ids(
        records, logging.INFO, "shutting down: queued"
    )
    assert sorted(announced) == ids
    # Bounded records: 100 ids each, one summary line.
    assert all(
        len(_IDS.search(r.getMessage()).group(1).split()) <= 100
        for r in records
        if _IDS.search(r.getMessage())
    )  # type: ignore[union-attr]
    [summary] = [r for r in records if "were not answered within" in r.getMessage()]
    assert "1000 accepted message(s)" in summary.getMessage()
    # Released now, the stuck answers send nothing: the shutdown gave them up.
    gate.set()
    for thread in pool._threads:
        thread.join(10)
    assert graph.sent() == []
    assert sorted(started) == sorted(in_progress)  # no queued message was started


def test_retry_waits_end_at_the_deadline_and_queued_messages_never_start(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # Graph API trouble: every send fails with a transient error, retried
    # with backoffs far longer than the shutdown budget.
    graph.fail_next(status=500, code=131000, times=1000)
    pool = BackgroundDispatcher(max_workers=1)
    connector = make_connector(lambda m: "answer", dispatch=pool)
    connector.retry = RetryPolicy(attempts=10, total_time=600, base_delay=60, max_delay=60)
    client = make_app(connector).test_client()
    ids = [f"wamid.R{index}" for index in range(5)]
    with watching() as log:
        assert post_webhook(client, _batch(ids, leads=1)).status_code == 200
        log.wait_for("attempt 2 of 10 in")  # the first send failed; a 30-60 s backoff begins
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        assert pool.shutdown(0) is False
        for thread in pool._threads:
            thread.join(10)  # ends: its 60 s backoff was cut short
        assert not any(thread.is_alive() for thread in pool._threads)
    assert len(graph.requests) == 1  # one try of the first message; the rest never started
    assert "waiting was stopped" in caplog.text
    assert sorted(_ids(caplog.records, logging.ERROR, "shutdown: not answered")) == ids


def test_shutdown_all_shares_one_deadline_and_logs_every_dispatcher(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    gate: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pools = [BackgroundDispatcher(max_workers=1, name=f"pool{n}") for n in range(3)]
    expected: list[str] = []
    for number, pool in enumerate(pools):
        connector = make_connector(lambda m: gate.wait(30) and "late", dispatch=pool)
        client = make_app(connector).test_client()
        ids = [f"wamid.P{number}-{index}" for index in range(3)]
        assert post_webhook(client, _batch(ids, leads=1)).status_code == 200
        expected += ids
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        assert shutdown_all(0.2) is False  # the budget runs out: that is the case under test
    # Before, the first dispatcher's drain and joins used the whole budget
    # and the others got none; the ids were never logged.
    assert sorted(_ids(caplog.records, logging.ERROR, "shutdown: not answered")) == sorted(expected)
    assert all(pool.pending == 3 for pool in pools)
    assert shutdown_all(0.5) is False  # again (atexit after worker_exit): nothing waits
    summaries = [r for r in caplog.records if "were not answered within" in r.getMessage()]
    assert len(summaries) == 3


def test_stop_waiting_on_ends_a_backoff_and_refuses_new_requests() -> None:
    from cel_whatsapp.core.retry import stop_waiting_on

    def sleep(seconds: float) -> None:
        raise AssertionError("a wait under stop_waiting_on must wait on the event")

    calls: list[int] = []

    def send() -> str:
        calls.append(1)
        raise GraphAPIError("temporarily unavailable", code=131016)

    retrier = Retrier(RetryPolicy(attempts=5, base_delay=600, max_delay=600), sleep=sleep)
    stop = threading.Event()
    stop.set()
    with stop_waiting_on(stop):
        with pytest.raises(GraphAPIError, match="not sent"):
            retrier.call(send)
        assert calls == []  # stopped already: not even one try
    stop.clear()
    threading.Timer(0.05, stop.set).start()
    with stop_waiting_on(stop), pytest.raises(GraphAPIError, match="temporarily unavailable"):
        retrier.call(send)  # would wait 300-600 s before the second try
    assert calls == [1]


# -- the gunicorn hooks ------------------------------------------------------------


def _load_gunicorn_conf() -> ModuleType:
    # A fresh copy of the module: the hooks keep per-process state.
    spec = importlib.util.spec_from_file_location(
        "fresh_gunicorn_conf", ROOT / "cel_whatsapp" / "gunicorn_conf.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gunicorn_budget_counts_from_the_sigterm_not_from_worker_exit() -> None:
    conf = _load_gunicorn_conf()
    seen: list[int] = []
    previous: Callable[..., Any] = signal.signal(
        signal.SIGTERM, lambda signum, frame: seen.append(signum)
    )
    try:
        conf.post_worker_init(worker=None)
        os.kill(os.getpid(), signal.SIGTERM)  # handled in the main thread, at once
        assert seen == [signal.SIGTERM]  # gunicorn's own handler still runs
        term = conf._stop_signal["term"]
    finally:
        signal.signal(signal.SIGTERM, previous)
    # worker_exit 10 s after the SIGTERM (a long request in hand): 30 - 10 - margin.
    assert conf.shutdown_budget(term + 10, 30, 30) == pytest.approx(20 - conf.EXIT_MARGIN)
    assert conf.shutdown_budget(term + 40, 30, 30) == 0.0
    # On a reload the kill comes after `timeout` without a heartbeat, if shorter.
    assert conf.shutdown_budget(term, 30, 10) == pytest.approx(10 - conf.EXIT_MARGIN)
    conf.worker_int(worker=None)  # SIGINT / SIGQUIT: gunicorn's quick shutdown
    assert conf.shutdown_budget(term, 30, 30) == 0.0
