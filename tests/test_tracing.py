"""OpenTelemetry traces: a webhook's spans, down to each Graph API call, across the pool.

With the OpenTelemetry SDK, an in-memory exporter, and OpenTelemetry's own
Flask and requests instrumentation (as a user would set them up), one
webhook answered on the background pool must give one trace: the webhook's
server span, and under it the connector's ``whatsapp.assistant`` and
``whatsapp.send`` spans and one client span per Graph API call.
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

from cel_whatsapp import BackgroundDispatcher, Message
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import MakeConnector, make_app, post_webhook

otel_trace = pytest.importorskip("opentelemetry.trace", reason='needs pip install -e ".[test]"')
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason='needs pip install -e ".[test]"')
flask_instrumentation = pytest.importorskip("opentelemetry.instrumentation.flask")
requests_instrumentation = pytest.importorskip("opentelemetry.instrumentation.requests")

from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

SpanKind = otel_trace.SpanKind
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def _exporter() -> InMemorySpanExporter:
    """The process's tracer provider (set once; OpenTelemetry allows no second one)."""
    provider = otel_trace.get_tracer_provider()
    if not isinstance(provider, sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        otel_trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def exporter(_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    yield _exporter
    _exporter.clear()


@pytest.fixture
def instrumented_requests() -> Iterator[None]:
    instrumentor = requests_instrumentation.RequestsInstrumentor()
    instrumentor.instrument()
    yield
    instrumentor.uninstrument()


@pytest.fixture
def dispatcher() -> Iterator[BackgroundDispatcher]:
    pool = BackgroundDispatcher()
    yield pool
    pool.shutdown(5)


def traced_app(connector: Any) -> Any:
    app = make_app(connector)
    flask_instrumentation.FlaskInstrumentor().instrument_app(app)
    return app


def ancestors(span: Any, by_id: dict[int, Any]) -> list[Any]:
    """The parent chain of ``span``, nearest first, as far as the finished spans go."""
    chain = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        span = by_id[parent.span_id]
        chain.append(span)
        parent = span.parent
    return chain


def test_a_background_answer_belongs_to_the_webhooks_trace(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    exporter: InMemorySpanExporter,
    instrumented_requests: None,
    dispatcher: BackgroundDispatcher,
) -> None:
    threads: list[str] = []

    def assistant(message: Message) -> str:
        threads.append(threading.current_thread().name)
        return f"You said: {message.text}"

    connector = make_connector(assistant, dispatch=dispatcher, read_receipts=True)
    client = traced_app(connector).test_client()
    assert post_webhook(client, text_webhook("hello")).status_code == 200
    assert connector.drain(10)
    assert graph.sent_texts() == ["You said: hello"]
    assert threads and threads[0] != threading.current_thread().name  # answered on the pool

    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    [webhook] = [span for span in spans if span.kind == SpanKind.SERVER]
    clients = [span for span in spans if span.kind == SpanKind.CLIENT]
    # One client span per Graph API call: the read receipt and the reply.
    assert len(clients) == len(graph.requests) == 2
    for span in clients:
        chain = ancestors(span, by_id)
        assert webhook in chain, [s.name for s in chain]
        assert chain[0].name == "whatsapp.send"
        assert span.context.trace_id == webhook.context.trace_id
    [answer] = [span for span in spans if span.name == "whatsapp.assistant"]
    assert ancestors(answer, by_id) == [webhook]
    sends = [span for span in spans if span.name == "whatsapp.send"]
    assert sorted(span.attributes["whatsapp.send.kind"] for span in sends) == [
        "read_receipt",
        "text",
    ]
    [reply] = [span for span in sends if span.attributes["whatsapp.send.kind"] == "text"]
    assert answer in ancestors(reply, by_id)


def test_a_failed_send_marks_its_spans_failed(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    exporter: InMemorySpanExporter,
    instrumented_requests: None,
) -> None:
    connector = make_connector(lambda message: "hi")
    client = traced_app(connector).test_client()
    graph.fail_next(status=400, code=131047, message="Re-engagement message")
    assert post_webhook(client, text_webhook("hello")).status_code == 200
    spans = exporter.get_finished_spans()
    [send] = [span for span in spans if span.name == "whatsapp.send"]
    assert not send.status.is_ok
    assert send.attributes["whatsapp.error.code"] == 131047
    assert [event.name for event in send.events] == ["exception"]
    [answer] = [span for span in spans if span.name == "whatsapp.assistant"]
    assert not answer.status.is_ok
    [webhook] = [span for span in spans if span.kind == SpanKind.SERVER]
    assert webhook.status.is_ok  # the webhook itself was answered 200


# A fresh interpreter answering one webhook on the background pool; ``status``
# and ``graph`` are left for the lines each test appends.
_ANSWER_ONE = """
import json, sys
from flask import Flask
from cel_whatsapp import WhatsappConnector
from cel_whatsapp.core import tracing
from cel_whatsapp.testing import FakeGraphAPI, encode, signed_headers, text_webhook
graph = FakeGraphAPI(token="t").start()
connector = WhatsappConnector("t", "1065403522", "v", app_secret="s", base_url=graph.base_url,
                              assistant=lambda message: "hi", dispatch="background")
app = Flask("tracing_check")
connector.init_app(app)
raw = encode(text_webhook("hello", phone_number_id="1065403522"))
status = app.test_client().post("/whatsapp", data=raw, headers=signed_headers(raw, "s")).status_code
connector.drain(10)
"""


def _run(script: str) -> Any:
    """Run ``script`` in a fresh interpreter; the JSON it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script + "graph.stop()\n"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def test_without_opentelemetry_everything_still_works() -> None:
    """Nothing is required at run time: the package works when opentelemetry is absent."""
    script = (
        'import sys\nsys.modules["opentelemetry"] = None  # import opentelemetry now fails\n'
        + _ANSWER_ONE
        + "print(json.dumps([tracing.enabled(), status, graph.sent_texts()]))\n"
    )
    assert _run(script) == [False, 200, ["hi"]]


def test_opentelemetry_is_not_imported_until_the_application_uses_it() -> None:
    """Installed but never set up: no span is made and no OpenTelemetry module is loaded."""
    script = _ANSWER_ONE + (
        "before = [tracing.enabled(), "
        'sorted(m for m in sys.modules if m.startswith("opentelemetry"))]\n'
        "import opentelemetry.trace  # the application starts using it\n"
        "print(json.dumps([before, tracing.enabled(), status, graph.sent_texts()]))\n"
    )
    assert _run(script) == [[False, []], True, 200, ["hi"]]
