"""OpenTelemetry spans of the connector, once the application uses OpenTelemetry.

Nothing here is required at run time, and nothing of OpenTelemetry is
imported here: spans are made once the application has imported
``opentelemetry.trace`` itself (as it must to set a tracer provider, and as
OpenTelemetry's instrumentation and ``opentelemetry-instrument`` do). Until
then every function is a no-op, so a worker that has ``opentelemetry-api``
installed but never sets it up does not pay its memory. With a tracer
provider set up by the application (the SDK and an exporter), the connector
adds two spans of its own: ``whatsapp.assistant`` (the answer to one message:
the assistant's run, with the sends it leads to inside) and ``whatsapp.send``
(one message or read receipt sent, retries included). Flask's and requests'
instrumentation add the webhook's server span and one client span per Graph
API call (every call goes through ``Session.send``, which requests'
instrumentation wraps).

Answers run on the background pool's threads after the webhook's 200: the
webhook's context is taken along (:func:`current_context`, :func:`carried`),
so their spans, and the Graph API calls' client spans, belong to the
webhook's trace. Only OpenTelemetry's public API is used.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "ASSISTANT_SPAN",
    "SEND_SPAN",
    "carried",
    "current_context",
    "enabled",
    "failed",
    "span",
]

ASSISTANT_SPAN = "whatsapp.assistant"
SEND_SPAN = "whatsapp.send"

_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()
_tracer: Any = None


def _trace_api() -> Any:
    """``opentelemetry.trace`` once something in the process has imported it, else ``None``."""
    return sys.modules.get("opentelemetry.trace")


def _context_api() -> Any:
    """``opentelemetry.context`` (imported with ``opentelemetry.trace``), else ``None``."""
    modules = sys.modules
    if modules.get("opentelemetry.trace") is None:
        return None
    return modules.get("opentelemetry.context")


def enabled() -> bool:
    """Whether spans are made: the application has imported ``opentelemetry.trace``."""
    # Asked on every message and send: sys.modules directly, not _trace_api().
    return sys.modules.get("opentelemetry.trace") is not None


def _get_tracer() -> Any:
    global _tracer
    if _tracer is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            own_version: str | None = version("cel_whatsapp")
        except PackageNotFoundError:
            own_version = None
        # A proxy until the application sets a provider, then that provider's tracer.
        _tracer = _trace_api().get_tracer("cel_whatsapp", own_version)
    return _tracer


def span(name: str, attributes: Mapping[str, str | int] | None = None) -> Any:
    """A context manager: a span named ``name``, current inside it; yields the span.

    Until the application uses OpenTelemetry it yields ``None`` and costs
    nothing. An exception leaving it is recorded on the span, which is marked
    failed.
    """
    if sys.modules.get("opentelemetry.trace") is None:
        return _NO_SPAN
    return _get_tracer().start_as_current_span(name, attributes=attributes)


def failed(current: Any, error: BaseException, **attributes: str | int) -> None:
    """Mark ``current`` (a span from :func:`span`, or ``None``) failed with ``error``."""
    trace_api = _trace_api()
    if current is None or trace_api is None:
        return
    for key, value in attributes.items():
        current.set_attribute(key, value)
    current.record_exception(error)
    current.set_status(trace_api.Status(trace_api.StatusCode.ERROR, type(error).__name__))


def current_context() -> Any:
    """The OpenTelemetry context in force here, to take to another thread; ``None``
    when there is nothing to take (no span is current, or OpenTelemetry unused)."""
    context_api = _context_api()
    if context_api is None:
        return None
    context = context_api.get_current()
    return context if context else None


@contextlib.contextmanager
def carried(context: Any) -> Iterator[None]:
    """Run the body in ``context`` (from :func:`current_context`; ``None``: as is)."""
    context_api = _context_api()
    if context is None or context_api is None:
        yield
        return
    token = context_api.attach(context)
    try:
        yield
    finally:
        context_api.detach(token)
