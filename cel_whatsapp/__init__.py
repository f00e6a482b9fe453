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
from .model import Lead, Message
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
    "ConfigurationError",
    "Contact",
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
    "Message",
    "PayloadError",
    "React",
    "RedisStore",
    "Reply",
    "RetryPolicy",
    "Row",
    "Section",
    "SignatureError",
    "Sticker",
    "Store",
    "StreamMode",
    "Template",
    "Text",
    "Video",
    "WhatsappConnector",
    "__version__",
    "whatsapp_blueprint",
]
