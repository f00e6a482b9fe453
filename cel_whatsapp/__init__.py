"""cel_whatsapp: put any assistant on WhatsApp from a Flask site.

Register one blueprint, write one callable, and it answers WhatsApp users
through Meta's WhatsApp Cloud API.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from .connector import WhatsappConnector, whatsapp_blueprint
from .dedup import InMemoryStore, RedisStore, Store
from .dispatch import BackgroundDispatcher, InlineDispatcher
from .errors import (
    CelWhatsappError,
    ConfigurationError,
    GraphAPIError,
    GraphTransportError,
    PayloadError,
)
from .media import MediaChecksumError, MediaDownloadError, MediaFile, MediaTooLargeError
from .model import (
    Choice,
    ContactAttachment,
    ContactPhone,
    Lead,
    LocationAttachment,
    MediaAttachment,
    Message,
    Reaction,
    StatusEvent,
    WebhookError,
)
from .replies import (
    Audio,
    Button,
    Buttons,
    Contact,
    Contacts,
    CtaUrl,
    Document,
    Image,
    ListMenu,
    Location,
    React,
    Reply,
    Row,
    Section,
    Sticker,
    Template,
    Text,
    Video,
)
from .retry import RetryPolicy
from .signature import SignatureError
from .streaming import StreamMode

try:
    __version__ = version("cel_whatsapp")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Audio",
    "BackgroundDispatcher",
    "Button",
    "Buttons",
    "CelWhatsappError",
    "Choice",
    "ConfigurationError",
    "Contact",
    "ContactAttachment",
    "ContactPhone",
    "Contacts",
    "CtaUrl",
    "Document",
    "GraphAPIError",
    "GraphTransportError",
    "Image",
    "InMemoryStore",
    "InlineDispatcher",
    "Lead",
    "ListMenu",
    "Location",
    "LocationAttachment",
    "MediaAttachment",
    "MediaChecksumError",
    "MediaDownloadError",
    "MediaFile",
    "MediaTooLargeError",
    "Message",
    "PayloadError",
    "React",
    "Reaction",
    "RedisStore",
    "Reply",
    "RetryPolicy",
    "Row",
    "Section",
    "SignatureError",
    "StatusEvent",
    "Sticker",
    "Store",
    "StreamMode",
    "Template",
    "Text",
    "Video",
    "WebhookError",
    "WhatsappConnector",
    "__version__",
    "whatsapp_blueprint",
]
