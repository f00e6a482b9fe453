"""Tools for testing bots built on cel_whatsapp without Meta.

:class:`FakeGraphAPI` is a real HTTP server playing the Cloud API; the
functions in :mod:`cel_whatsapp.testing.webhooks` build webhook bodies shaped
and signed like Meta's.
"""

from __future__ import annotations

from . import webhooks
from .fake_graph import FakeGraphAPI, RecordedRequest
from .webhooks import encode, envelope, signed_headers, text_message, text_webhook

__all__ = [
    "FakeGraphAPI",
    "RecordedRequest",
    "encode",
    "envelope",
    "signed_headers",
    "text_message",
    "text_webhook",
    "webhooks",
]
