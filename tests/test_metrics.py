"""Prometheus metrics: which series each kind of webhook moves, by exactly how much.

Every figure is read as a scraper reads it: the registry's exposition text,
parsed by prometheus_client's own parser. Each test records into a registry
of its own, against the fake Graph API over real sockets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from cel_whatsapp import (
    BackgroundDispatcher,
    ConfigurationError,
    GraphAPIError,
    GraphTransportError,
    Message,
    WhatsappConnector,
)
from cel_whatsapp.core import metrics as metrics_module
from cel_whatsapp.core.metrics import MAX_CODES, Metrics, error_code, make_metrics, sent_kind
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import MakeConnector, make_app, post_webhook
from .exposition import moved, parse, scrape, series

prometheus_client = pytest.importorskip(
    "prometheus_client", reason='needs prometheus_client: pip install -e ".[test]"'
)
CollectorRegistry = prometheus_client.CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def registry() -> Any:
    return CollectorRegistry()


@pytest.fixture
def stop_dispatchers() -> Iterator[list[BackgroundDispatcher]]:
    started: list[BackgroundDispatcher] = []
    yield started
    for dispatcher in started:
        dispatcher.shutdown(5)


def background(started: list[BackgroundDispatcher], **options: Any) -> BackgroundDispatcher:
    dispatcher = BackgroundDispatcher(**options)
    started.append(dispatcher)
    return dispatcher


def webhook_and_answer(
    client: FlaskClient, connector: WhatsappConnector, body: dict[str, Any], status: int = 200
) -> None:
    response = post_webhook(client, body)
    assert response.status_code == status, response.data
    assert connector.drain(10)


ROUND_TRIP = {
    series("whatsapp_webhooks_total", status="200"): 1,
    series("whatsapp_webhook_seconds_count"): 1,
    series("whatsapp_messages_received_total", type="text"): 1,
    series("whatsapp_messages_sent_total", kind="read_receipt"): 1,
    series("whatsapp_messages_sent_total", kind="text"): 1,
    series("whatsapp_send_seconds_count"): 2,
    series("whatsapp_assistant_seconds_count"): 1,
    series("whatsapp_first_reply_seconds_count"): 1,
}


def test_a_round_trip_moves_exactly_these_series(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    registry: Any,
    stop_dispatchers: list[BackgroundDispatcher],
) -> None:
    connector = make_connector(
        lambda message: f"You said: {message.text}",
        metrics=registry,
        read_receipts=True,
        dispatch=background(stop_dispatchers),
    )
    client = make_app(connector).test_client()
    before = scrape(registry)
    webhook_and_answer(client, connector, text_webhook("hello"))
    after = scrape(registry)
    assert moved(before, after) == ROUND_TRIP
    assert graph.sent_texts() == ["You said: hello"]
    # Every histogram that counted something also summed a time.
    for name in ("webhook", "send", "assistant", "first_reply"):
        assert after[series(f"whatsapp_{name}_seconds_sum")] > 0
    assert after[series("whatsapp_dispatch_pending")] == 0


def test_a_duplicate_moves_only_the_webhook_and_the_duplicates(
    make_connector: MakeConnector, graph: FakeGraphAPI, registry: Any
) -> None:
    connector = make_connector(lambda message: "hi", metrics=registry)
    client = make_app(connector).test_client()
    body = text_webhook("hello", id="wamid.DUPLICATE1")
    webhook_and_answer(client, connector, body)
    before = scrape(registry)
    webhook_and_answer(client, connector, body)
    assert moved(before, scrape(registry)) == {
        series("whatsapp_webhooks_total", status="200"): 1,
        series("whatsapp_webhook_seconds_count"): 1,
        series("whatsapp_duplicates_total"): 1,
    }
    assert graph.sent_texts() == ["hi"]


def test_a_131047_is_counted_by_its_code_and_gives_no_first_reply(
    make_connector: MakeConnector, graph: FakeGraphAPI, registry: Any
) -> None:
    errors: list[GraphAPIError] = []
    connector = make_connector(lambda message: "hi", metrics=registry, read_receipts=True)
    connector.on_send_error(lambda message, error: errors.append(error))
    client = make_app(connector).test_client()
    graph.fail_next(status=400, code=131047, message="Re-engagement message")
    before = scrape(registry)
    webhook_and_answer(client, connector, text_webhook("hello"))
    assert moved(before, scrape(registry)) == {
        series("whatsapp_webhooks_total", status="200"): 1,
        series("whatsapp_webhook_seconds_count"): 1,
        series("whatsapp_messages_received_total", type="text"): 1,
        series("whatsapp_messages_sent_total", kind="read_receipt"): 1,
        series("whatsapp_send_errors_total", code="131047"): 1,
        series("whatsapp_send_seconds_count"): 2,
        series("whatsapp_assistant_seconds_count"): 1,
    }
    assert [error.code for error in errors] == [131047]


def test_a_graph_503_retried_counts_one_send_and_no_error(
    make_connector: MakeConnector, graph: FakeGraphAPI, registry: Any
) -> None:
    connector = make_connector(lambda message: "hi", metrics=registry)
    client = make_app(connector).test_client()
    graph.fail_next(status=503, code=None)  # a proxy's 503, no Meta error object
    before = scrape(registry)
    webhook_and_answer(client, connector, text_webhook("hello"))
    assert moved(before, scrape(registry)) == {
        series("whatsapp_webhooks_total", status="200"): 1,
        series("whatsapp_webhook_seconds_count"): 1,
        series("whatsapp_messages_received_total", type="text"): 1,
        series("whatsapp_messages_sent_total", kind="text"): 1,
        series("whatsapp_send_seconds_count"): 1,
        series("whatsapp_assistant_seconds_count"): 1,
        series("whatsapp_first_reply_seconds_count"): 1,
    }
    assert len(graph.sent()) == 2  # the 503, then the reply


def test_a_graph_503_that_outlasts_the_retries_is_counted_by_its_status(
    make_connector: MakeConnector, graph: FakeGraphAPI, registry: Any
) -> None:
    connector = make_connector(lambda message: "hi", metrics=registry, retry_attempts=2)
    client = make_app(connector).test_client()
    graph.fail_next(status=503, code=None, times=2)
    before = scrape(registry)
    webhook_and_answer(client, connector, text_webhook("hello"))
    changes = moved(before, scrape(registry))
    assert changes[series("whatsapp_send_errors_total", code="http_503")] == 1
    assert series("whatsapp_messages_sent_total", kind="text") not in changes


def test_a_webhook_answered_503_is_counted_and_its_refused_message_is_not_received(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    registry: Any,
    stop_dispatchers: list[BackgroundDispatcher],
) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(message: Message) -> str:
        started.set()
        assert release.wait(10)
        return "done"

    dispatcher = background(stop_dispatchers, max_workers=1, max_pending=1, full_timeout=0)
    connector = make_connector(slow, metrics=registry, dispatch=dispatcher)
    client = make_app(connector).test_client()
    before = scrape(registry)
    assert post_webhook(client, text_webhook("first")).status_code == 200
    assert started.wait(5)
    # The first message is accepted and not answered yet: the pool is full.
    assert scrape(registry)[series("whatsapp_dispatch_pending")] == 1
    assert post_webhook(client, text_webhook("second")).status_code == 503
    assert moved(before, scrape(registry)) == {
        series("whatsapp_webhooks_total", status="200"): 1,
        series("whatsapp_webhooks_total", status="503"): 1,
        series("whatsapp_webhook_seconds_count"): 2,
        series("whatsapp_messages_received_total", type="text"): 1,
        series("whatsapp_dispatch_pending"): 1,
    }
    release.set()
    assert connector.drain(10)
    after = scrape(registry)
    assert after[series("whatsapp_dispatch_pending")] == 0
    assert after[series("whatsapp_messages_sent_total", kind="text")] == 1


def test_refused_posts_are_counted_by_status(make_connector: MakeConnector, registry: Any) -> None:
    connector = make_connector(lambda message: "hi", metrics=registry)
    client = make_app(connector).test_client()
    before = scrape(registry)
    assert post_webhook(client, text_webhook("x"), secret="wrong").status_code == 403
    assert post_webhook(client, b"not json").status_code == 400
    assert client.post("/whatsapp", data=b"{}", content_type="text/plain").status_code == 415
    assert moved(before, scrape(registry)) == {
        series("whatsapp_webhooks_total", status="403"): 1,
        series("whatsapp_webhooks_total", status="400"): 1,
        series("whatsapp_webhooks_total", status="415"): 1,
        series("whatsapp_webhook_seconds_count"): 3,
    }


def test_a_thousand_distinct_leads_create_no_new_series(
    make_connector: MakeConnector, graph: FakeGraphAPI, registry: Any
) -> None:
    # Pacing would hold replies to 1,000 users for seconds; it is not what is tested.
    connector = make_connector(
        lambda message: "hi", metrics=registry, read_receipts=True, delivery_rate_control=False
    )
    client = make_app(connector).test_client()
    webhook_and_answer(client, connector, text_webhook("first", sender="15550000000"))
    known = set(scrape(registry))
    for index in range(1, 1001):
        sender = f"1555{index:07d}"
        body = text_webhook(f"message {index}", sender=sender, user_id=f"US.{index:019d}")
        webhook_and_answer(client, connector, body)
    after = scrape(registry)
    assert set(after) == known
    assert after[series("whatsapp_messages_received_total", type="text")] == 1001
    assert after[series("whatsapp_messages_sent_total", kind="text")] == 1001
    # No label holds a phone number, a user id or a message id.
    text = prometheus_client.generate_latest(registry).decode()
    assert "1555" not in text and "US." not in text and "wamid" not in text


def test_made_up_message_types_and_error_codes_stay_bounded(
    make_connector: MakeConnector, graph: FakeGraphAPI, registry: Any
) -> None:
    connector = make_connector(
        lambda message: "hi",
        metrics=registry,
        assistant_types="all",
        retry_attempts=1,
        delivery_rate_control=False,  # every reply goes to one user
    )
    client = make_app(connector).test_client()
    for index in range(30):
        body = text_webhook("x")
        body["entry"][0]["changes"][0]["value"]["messages"][0]["type"] = f"madeup{index}"
        graph.fail_next(status=400, code=700_000 + index)
        webhook_and_answer(client, connector, body)
    samples = scrape(registry)
    assert samples[series("whatsapp_messages_received_total", type="other")] == 30
    assert not [key for key in samples if "madeup" in str(key)]
    # Each code is its own series, up to MAX_CODES per process; then "other".
    for index in range(MAX_CODES):
        graph.fail_next(status=400, code=800_000 + index)
        webhook_and_answer(client, connector, text_webhook("y"))
    codes = {
        dict(labels)["code"]
        for (name, labels), _ in scrape(registry).items()
        if name == "whatsapp_send_errors_total"
    }
    assert len(codes) == MAX_CODES + 1
    assert "other" in codes


def test_connectors_on_one_registry_share_its_series(
    make_connector: MakeConnector, graph: FakeGraphAPI, registry: Any
) -> None:
    first = make_connector(lambda message: "one", metrics=registry)
    second = make_connector(lambda message: "two", metrics=registry)
    assert first.metrics is second.metrics
    for connector in (first, second):
        client = make_app(connector).test_client()
        webhook_and_answer(client, connector, text_webhook("hello"))
    assert scrape(registry)[series("whatsapp_messages_sent_total", kind="text")] == 2


def test_metrics_true_uses_the_default_registry_once() -> None:
    assert make_metrics(True) is make_metrics(True) is make_metrics(prometheus_client.REGISTRY)
    assert make_metrics(False) is None and make_metrics(None) is None


def test_a_wrong_metrics_option_fails_at_once() -> None:
    with pytest.raises(ConfigurationError, match="CollectorRegistry"):
        WhatsappConnector(metrics="yes")  # type: ignore[arg-type]


def test_labels_of_sends_and_errors() -> None:
    assert sent_kind({"type": "interactive"}) == "interactive"
    assert sent_kind({"status": "read", "message_id": "wamid.X"}) == "read_receipt"
    assert sent_kind({"type": "made-up"}) == "other"
    assert error_code(GraphAPIError("x", code=190, http_status=401)) == "190"
    assert error_code(GraphAPIError("x", http_status=503)) == "http_503"
    assert error_code(GraphTransportError("refused", request_sent=False)) == "transport"
    assert error_code(GraphAPIError("not sent: shutting down")) == "transport"


def run_python(script: str, env: dict[str, str]) -> str:
    """Run ``script`` in a new interpreter (prometheus_client picks its mode at import)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_metrics_off_import_and_record_nothing() -> None:
    """Off by default, prometheus_client is not even imported."""
    script = """
import json, sys
from flask import Flask
from cel_whatsapp import WhatsappConnector
from cel_whatsapp.testing import encode, signed_headers, text_webhook
connector = WhatsappConnector("token", "1065403522", "verify", app_secret="s",
                              assistant=lambda message: None, dispatch="inline")
app = Flask("off")
connector.init_app(app)
raw = encode(text_webhook("hello", phone_number_id="1065403522"))
status = app.test_client().post("/whatsapp", data=raw, headers=signed_headers(raw, "s")).status_code
print(json.dumps([status, connector.metrics is None, "prometheus_client" in sys.modules]))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    assert json.loads(run_python(script, env)) == [200, True, False]


def test_a_dead_workers_gauge_stops_counting_and_its_counters_stay(tmp_path: Path) -> None:
    """mark_process_dead (gunicorn's child_exit) drops a dead worker's live gauge."""
    script = """
import sys
from cel_whatsapp.core.metrics import make_metrics
metrics = make_metrics(True)
metrics.pending_changed(3)
metrics.webhook(200, 0.01)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run_python(script, env)
    reader = f"""
import json
from cel_whatsapp.core.metrics import exposition_registry, mark_process_dead
from prometheus_client import generate_latest
before = generate_latest(exposition_registry()).decode()
for name in __import__("os").listdir({str(tmp_path)!r}):
    if name.startswith("gauge_livesum_"):
        mark_process_dead(int(name.split("_")[-1].split(".")[0]))
after = generate_latest(exposition_registry()).decode()
print(json.dumps([before, after]))
"""
    before, after = (parse(text) for text in json.loads(run_python(reader, env)))
    assert before[series("whatsapp_dispatch_pending")] == 3
    assert series("whatsapp_dispatch_pending") not in after
    assert after[series("whatsapp_webhooks_total", status="200")] == 1


def test_clear_multiprocess_dir_removes_only_prometheus_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("counter_12.db", "gauge_livesum_12.db", "histogram_7.db", "keep.db", "x.txt"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert metrics_module.clear_multiprocess_dir() == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.db", "x.txt"]


def test_a_metrics_object_records_what_it_is_told(registry: Any) -> None:
    metrics = Metrics(registry)
    metrics.webhook(999, 0.1)  # not an HTTP status
    metrics.messages_received(["text", "image", "no-such-type"])
    samples = scrape(registry)
    assert samples[series("whatsapp_webhooks_total", status="other")] == 1
    assert samples[series("whatsapp_messages_received_total", type="image")] == 1
    assert samples[series("whatsapp_messages_received_total", type="other")] == 1


class _Log:
    def info(self, *args: Any) -> None:
        pass


class _Server:
    log = _Log()


def test_the_gunicorn_hooks_do_nothing_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from cel_whatsapp import gunicorn_conf

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("METRICS_PORT", raising=False)
    gunicorn_conf.on_starting(_Server())
    gunicorn_conf.when_ready(_Server())
    gunicorn_conf.child_exit(_Server(), type("Worker", (), {"pid": 1})())
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_a_metrics_port_alone_gets_a_multiprocess_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cel_whatsapp import gunicorn_conf

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("METRICS_PORT", "9100")
    gunicorn_conf.on_starting(_Server())
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    try:
        assert directory.is_dir() and not list(directory.iterdir())
    finally:
        directory.rmdir()
