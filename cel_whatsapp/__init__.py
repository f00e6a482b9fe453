"""cel_whatsapp: put any assistant on WhatsApp from a Flask site.

Register one blueprint, write one callable, and it answers WhatsApp users
through Meta's WhatsApp Cloud API.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import PackageNotFoundError, version

from .core.answering import MessageLogFilter, attach_to_package
from .core.budget import TooManyItemsError
from .core.dedup import InMemoryStore, RedisStore, Store, StoreError
from .core.dispatch import BackgroundDispatcher, InlineDispatcher
from .core.engine import WhatsappCore
from .core.graph import GraphClient
from .core.media import MediaChecksumError, MediaDownloadError, MediaFile, MediaTooLargeError
from .core.rates import RateControl
from .core.retry import RetryPolicy
from .core.settings import Settings
from .core.signature import SignatureError
from .core.streaming import StreamMode
from .errors import (
    AuthError,
    CelWhatsappError,
    ConfigurationError,
    GraphAPIError,
    GraphRequestError,
    GraphTransportError,
    OutsideWindowError,
    PayloadError,
    RateLimitError,
    RecipientError,
    TemplateError,
)
from .flask.connector import WhatsappConnector, whatsapp_blueprint
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

try:
    __version__ = version("cel_whatsapp")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())
# Every record of the package's loggers names the message being answered (if any).
attach_to_package(__name__, os.path.dirname(__file__))

__all__ = [
    "Audio",
    "AuthError",
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
    "GraphClient",
    "GraphRequestError",
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
    "MessageLogFilter",
    "OutsideWindowError",
    "PayloadError",
    "RateControl",
    "RateLimitError",
    "React",
    "Reaction",
    "RecipientError",
    "RedisStore",
    "Reply",
    "RetryPolicy",
    "Row",
    "Section",
    "Settings",
    "SignatureError",
    "StatusEvent",
    "Sticker",
    "Store",
    "StoreError",
    "StreamMode",
    "Template",
    "TemplateError",
    "Text",
    "TooManyItemsError",
    "Video",
    "WebhookError",
    "WhatsappConnector",
    "WhatsappCore",
    "__version__",
    "whatsapp_blueprint",
]
