"""Tools for testing bots built on cel_whatsapp without Meta.

:class:`FakeGraphAPI` is a real HTTP server playing the Cloud API; the
builders in :mod:`cel_whatsapp.testing.webhooks` make webhook bodies shaped
and signed like Meta's, one per kind of update; :class:`WhatsappTestClient`
posts them to an app and reads back what it sent. The pytest fixtures
``whatsapp`` and ``whatsapp_graph`` (:mod:`cel_whatsapp.testing.pytest_plugin`)
are registered automatically when the package is installed.
"""

from __future__ import annotations

from . import webhooks
from .client import WhatsappTestClient
from .fake_graph import FakeGraphAPI, RecordedRequest, any_request
from .webhooks import (
    audio_message,
    button_reply_message,
    contact_card,
    contacts_message,
    document_message,
    encode,
    envelope,
    error,
    errors_webhook,
    image_message,
    list_reply_message,
    location_message,
    nfm_reply_message,
    order_message,
    product_item,
    reaction_message,
    signed_headers,
    status,
    status_webhook,
    sticker_message,
    system_message,
    template_button_message,
    text_message,
    text_webhook,
    unsupported_message,
    video_message,
    webhook,
)

__all__ = [
    "FakeGraphAPI",
    "RecordedRequest",
    "WhatsappTestClient",
    "any_request",
    "audio_message",
    "button_reply_message",
    "contact_card",
    "contacts_message",
    "document_message",
    "encode",
    "envelope",
    "error",
    "errors_webhook",
    "image_message",
    "list_reply_message",
    "location_message",
    "nfm_reply_message",
    "order_message",
    "product_item",
    "reaction_message",
    "signed_headers",
    "status",
    "status_webhook",
    "sticker_message",
    "system_message",
    "template_button_message",
    "text_message",
    "text_webhook",
    "unsupported_message",
    "video_message",
    "webhook",
    "webhooks",
]
