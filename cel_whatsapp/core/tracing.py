"""OpenTelemetry spans of the connector, when ``opentelemetry-api`` is importable.

Nothing here is required at run time. Without ``opentelemetry-api`` every
function is a no-op. With it, and a tracer provider set up by the
application (the SDK and an exporter), the connector adds two spans of its
own: ``whatsapp.assistant`` (the answer to one message: the assistant's run,
with the sends it leads to inside) and ``whatsapp.send`` (one message or
read receipt sent, retries included). Flask's and requests' instrumentation
add the webhook's server span and one client span per Graph API call (every
call goes through ``Session.send``, which requests' instrumentation wraps).

Answers run on the background pool's threads after the webhook's 200: the
webhook's context is taken along (:func:`current_context`, :func:`carried`),
so their spans, and the Graph API calls' client spans, belong to the
webhook's trace. Only OpenTelemetry's public API is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - the package works without it
    otel_context = None  # type: ignore[assignment]
    otel_trace = None  # type: ignore[assignment]

__all__ = ["ASSISTANT_SPAN", "ENABLED", "SEND_SPAN", "carried", "current_context", "failed", "span"]

#: Whether ``opentelemetry-api`` could be imported (spans are made only then).
ENABLED = otel_trace is not None

ASSISTANT_SPAN = "whatsapp.assistant"
SEND_SPAN = "whatsapp.send"

_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()
_tracer: Any = None


def _get_tracer() -> Any:
    global _tracer
    if _tracer is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            own_version: str | None = version("cel_whatsapp")
        except PackageNotFoundError:
            own_version = None
        # A proxy until the application sets a provider, then that provider's tracer.
        _tracer = otel_trace.get_tracer("cel_whatsapp", own_version)
    return _tracer


def span(name: str, attributes: Mapping[str, str | int] | None = None) -> Any:
    """A context manager: a span named ``name``, current inside it; yields the span.

    Without ``opentelemetry-api`` it yields ``None`` and costs nothing. An
    exception leaving it is recorded on the span, which is marked failed.
    """
    if otel_trace is None:
        return _NO_SPAN
    return _get_tracer().start_as_current_span(name, attributes=attributes)


def failed(current: Any, error: BaseException, **attributes: str | int) -> None:
    """Mark ``current`` (a span from :func:`span`, or ``None``) failed with ``error``."""
    if current is None or otel_trace is None:
        return
    for key, value in attributes.items():
        current.set_attribute(key, value)
    current.record_exception(error)
    current.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, type(error).__name__))


def current_context() -> Any:
    """The OpenTelemetry context in force here, to take to another thread; ``None``
    when there is nothing to take (no span is current, or no opentelemetry-api)."""
    if otel_context is None:
        return None
    context = otel_context.get_current()
    return context if context else None


@contextlib.contextmanager
def carried(context: Any) -> Iterator[None]:
    """Run the body in ``context`` (from :func:`current_context`; ``None``: as is)."""
    if context is None or otel_context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)
