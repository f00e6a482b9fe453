"""Prometheus metrics of a connector, with the official ``prometheus_client`` (optional).

Off by default: ``WhatsappConnector(metrics=True)`` records into
``prometheus_client``'s default registry, ``metrics=CollectorRegistry()``
into that one (``pip install "cel_whatsapp[metrics]"``). When off, nothing
here is imported or called: every place that records checks for ``None``
first.

The series (see docs/operations.rst):

- ``whatsapp_webhooks_total{status}`` and ``whatsapp_webhook_seconds``: webhook
  POSTs by the HTTP status answered, and how long answering them took;
- ``whatsapp_messages_received_total{type}``: new (deduplicated) messages
  accepted for answering, by WhatsApp type; ``whatsapp_duplicates_total``:
  copies skipped;
- ``whatsapp_messages_sent_total{kind}``: sends accepted by Meta (messages by
  type, and ``read_receipt``); ``whatsapp_send_errors_total{code}``: sends
  that failed for good (after retries), by Meta's code; ``whatsapp_send_seconds``:
  how long each send took, retries and waits included;
- ``whatsapp_assistant_seconds``: time spent in the assistant for one message
  (its call and the production of each chunk; our sends in between are not
  counted); ``whatsapp_first_reply_seconds``: from the webhook handing a
  message over to Meta accepting the first message of its answer;
- ``whatsapp_dispatch_pending``: messages accepted and not yet answered.

Labels are bounded: a status is an HTTP status, a type or kind one of the
known names (else ``other``), a code one of at most :data:`MAX_CODES`
distinct values per process (else ``other``). No label ever holds a phone
number, a user id or a message id.

Under gunicorn with several workers, prometheus_client's multiprocess mode
adds the figures of every worker up: set ``PROMETHEUS_MULTIPROC_DIR`` before
the workers start, serve ``/metrics`` with :func:`serve_metrics` (on an
internal port, from gunicorn's master) and call :func:`mark_process_dead`
from gunicorn's ``child_exit`` hook (``sample_app/gunicorn.conf.py`` does all
three).
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, GraphAPIError, GraphRequestError, GraphTransportError
from .routing import PERSON_TYPES

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "MAX_CODES",
    "MESSAGE_TYPES",
    "MULTIPROC_DIR_VARIABLE",
    "SENT_KINDS",
    "Metrics",
    "clear_multiprocess_dir",
    "exposition_registry",
    "make_metrics",
    "mark_process_dead",
    "message_type_label",
    "serve_metrics",
]

#: The environment variable that turns prometheus_client's multiprocess mode on.
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

#: WhatsApp message types counted by name in ``whatsapp_messages_received_total``;
#: any other type (new ones, or made up by whoever posts) counts as ``other``.
MESSAGE_TYPES: frozenset[str] = PERSON_TYPES | {
    "reaction",
    "system",
    "request_welcome",
    "edit",
    "revoke",
    "unsupported",
    "unknown",
}

#: What ``whatsapp_messages_sent_total`` counts by name: the ``type`` of a message
#: sent, and ``read_receipt`` for marking a message read; anything else is ``other``.
SENT_KINDS: frozenset[str] = frozenset(
    {
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "template",
        "reaction",
        "read_receipt",
    }
)

#: Distinct ``code`` label values one process records; later new codes count as ``other``.
MAX_CODES = 50

OTHER = "other"
TRANSPORT = "transport"

# Bucket bounds, in seconds, for what each histogram times.
WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ASSISTANT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FIRST_REPLY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


def message_type_label(message_type: str) -> str:
    """A received message's ``type`` as a label: one of :data:`MESSAGE_TYPES`, else ``other``."""
    return message_type if message_type in MESSAGE_TYPES else OTHER


def sent_kind(payload: Mapping[str, Any]) -> str:
    """The ``kind`` label of a ``/messages`` payload: its type, or ``read_receipt``."""
    kind = payload.get("type")
    if kind is None and payload.get("status") == "read":
        return "read_receipt"
    if kind is None:
        return "text"  # Meta's default type
    return kind if kind in SENT_KINDS else OTHER


def error_code(error: GraphAPIError) -> str:
    """The ``code`` label of a failed send, before the distinct-values cap.

    Meta's numeric code; ``http_<status>`` for an HTTP error answer without
    one (a proxy's 503 page); ``transport`` when no answer came at all, or the
    request was never made.
    """
    code = error.code
    if code is not None:
        return str(code) if 0 <= code < 10_000_000 else OTHER
    status = error.http_status
    if isinstance(error, (GraphTransportError, GraphRequestError)) or status is None:
        return TRANSPORT
    return f"http_{status}" if 100 <= status <= 599 else OTHER


class Metrics:
    """The connector's series, registered once in one ``CollectorRegistry``.

    Build it with :func:`make_metrics`, which shares one per registry (a
    registry refuses the same series twice). Methods record; each costs a
    dictionary lookup and a ``prometheus_client`` call or two.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        registry = REGISTRY if registry is None else registry
        self._lock = threading.Lock()
        self.webhooks = Counter(
            "whatsapp_webhooks",
            "Webhook POSTs, by the HTTP status answered.",
            ["status"],
            registry=registry,
        )
        self.webhook_seconds = Histogram(
            "whatsapp_webhook_seconds",
            "Time to answer a webhook POST.",
            buckets=WEBHOOK_BUCKETS,
            registry=registry,
        )
        self.received = Counter(
            "whatsapp_messages_received",
            "New (deduplicated) messages accepted for answering, by WhatsApp type.",
            ["type"],
            registry=registry,
        )
        self.duplicates = Counter(
            "whatsapp_duplicates",
            "Copies of messages already handled, skipped.",
            registry=registry,
        )
        self.sent = Counter(
            "whatsapp_messages_sent",
            "Sends accepted by Meta: messages by type, and read receipts.",
            ["kind"],
            registry=registry,
        )
        self.send_errors = Counter(
            "whatsapp_send_errors",
            "Sends that failed for good (after retries), by Meta's error code.",
            ["code"],
            registry=registry,
        )
        self.send_seconds = Histogram(
            "whatsapp_send_seconds",
            "Time to send one message or read receipt, retries and waits included.",
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self.assistant_seconds = Histogram(
            "whatsapp_assistant_seconds",
            "Time spent in the assistant for one message (its sends excluded).",
            buckets=ASSISTANT_BUCKETS,
            registry=registry,
        )
        self.first_reply_seconds = Histogram(
            "whatsapp_first_reply_seconds",
            "From the webhook handing a message over to Meta accepting its first reply.",
            buckets=FIRST_REPLY_BUCKETS,
            registry=registry,
        )
        # livesum: under multiprocess mode, the sum over the workers alive.
        self.pending = Gauge(
            "whatsapp_dispatch_pending",
            "Messages accepted and not yet answered.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Labelled children by (family, label), looked up once (labels() takes a lock).
        self._children: dict[tuple[str, str], Any] = {}
        self._families = {
            "webhooks": self.webhooks,
            "received": self.received,
            "sent": self.sent,
            "errors": self.send_errors,
        }
        self._codes: set[str] = set()

    def __repr__(self) -> str:
        return "Metrics()"

    def _child(self, family: str, label: str) -> Any:
        """The child of ``family`` for ``label``, a value already bounded by the caller."""
        child = self._children.get((family, label))
        if child is None:
            with self._lock:
                if family == "errors" and label not in self._codes:
                    if len(self._codes) >= MAX_CODES:
                        label = OTHER
                    self._codes.add(label)
                child = self._children.get((family, label))
                if child is None:
                    child = self._families[family].labels(label)
                    self._children[(family, label)] = child
        return child

    # -- recording ---------------------------------------------------------------

    def webhook(self, status: int, seconds: float) -> None:
        """A webhook POST answered ``status`` after ``seconds``."""
        label = str(status) if 100 <= status <= 599 else OTHER
        self._child("webhooks", label).inc()
        self.webhook_seconds.observe(seconds)

    def messages_received(self, types: list[str]) -> None:
        """New messages accepted for answering, by their WhatsApp ``type``."""
        for message_type in types:
            self._child("received", message_type_label(message_type)).inc()

    def duplicates_skipped(self, count: int) -> None:
        self.duplicates.inc(count)

    def message_sent(self, kind: str, seconds: float) -> None:
        """Meta accepted a send of ``kind`` (see :func:`sent_kind`) after ``seconds``."""
        self._child("sent", kind if kind in SENT_KINDS else OTHER).inc()
        self.send_seconds.observe(seconds)

    def send_failed(self, error: GraphAPIError, seconds: float) -> None:
        """A send failed for good with ``error`` after ``seconds``."""
        self._child("errors", error_code(error)).inc()
        self.send_seconds.observe(seconds)

    def assistant_ran(self, seconds: float) -> None:
        self.assistant_seconds.observe(seconds)

    def first_reply(self, seconds: float) -> None:
        self.first_reply_seconds.observe(seconds)

    def pending_changed(self, delta: int) -> None:
        """``delta`` more (or fewer) messages accepted and not yet answered."""
        self.pending.inc(delta)


# One Metrics per registry: a connector built twice (tests, several
# connectors in one site) records into the same series.
_shared: weakref.WeakKeyDictionary[Any, Metrics] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def make_metrics(option: object) -> Metrics | None:
    """The :class:`Metrics` for a connector's ``metrics=`` option.

    ``False`` or ``None``: off (``None``). ``True``: prometheus_client's default
    registry. A ``CollectorRegistry``: that registry. A :class:`Metrics`: itself.
    """
    if option is None or option is False:
        return None
    if isinstance(option, Metrics):
        return option
    try:
        from prometheus_client import REGISTRY, CollectorRegistry
    except ImportError:
        raise ConfigurationError(
            'metrics= needs prometheus_client: pip install "cel_whatsapp[metrics]"'
        ) from None
    if option is True:
        registry = REGISTRY
    elif isinstance(option, CollectorRegistry):
        registry = option
    else:
        raise ConfigurationError(
            "metrics must be True, False or a prometheus_client.CollectorRegistry, "
            f"not {type(option).__name__}"
        )
    with _shared_lock:
        metrics = _shared.get(registry)
        if metrics is None:
            metrics = _shared[registry] = Metrics(registry)
        return metrics


# -- serving, and prometheus_client's multiprocess mode -----------------------------

# The files prometheus_client writes in the multiprocess directory.
_MULTIPROCESS_FILE = re.compile(r"(counter|gauge_[a-z]+|histogram|summary)_\d+\.db")


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when multiprocess mode is on, else ``None``."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def exposition_registry() -> CollectorRegistry:
    """What ``/metrics`` should expose: every worker's figures added up in
    multiprocess mode, else prometheus_client's default registry."""
    from prometheus_client import REGISTRY, CollectorRegistry

    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` on ``addr:port`` from a thread of this process.

    Keep it off the public webhook: the default ``addr`` is the loopback
    interface; give an internal address for a scraper on another host.
    Under gunicorn, call it from the master's ``when_ready`` hook with
    ``PROMETHEUS_MULTIPROC_DIR`` set: it then adds up every worker's files.
    """
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr, registry=exposition_registry())


def mark_process_dead(pid: int) -> None:
    """Tell prometheus_client that worker ``pid`` is gone (gunicorn's ``child_exit`` hook).

    Its live gauges (``whatsapp_dispatch_pending``) stop counting; its
    counters and histograms keep adding up. Does nothing outside
    multiprocess mode.
    """
    directory = multiprocess_dir()
    if directory is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def clear_multiprocess_dir() -> int:
    """Remove the files a previous run left in ``PROMETHEUS_MULTIPROC_DIR``; return how many.

    prometheus_client wants the directory wiped before the workers start
    (gunicorn's ``on_starting`` hook); only files named as it names them are
    removed, so a wrongly set variable cannot cost anything else.
    """
    directory = multiprocess_dir()
    if directory is None or not os.path.isdir(directory):
        return 0
    removed = 0
    for name in os.listdir(directory):
        if _MULTIPROCESS_FILE.fullmatch(name):
            os.remove(os.path.join(directory, name))
            removed += 1
    return removed
