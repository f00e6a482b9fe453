"""cel_whatsapp: put any assistant on WhatsApp from a Flask site.

Register one blueprint, write one callable, and it answers WhatsApp users
through Meta's WhatsApp Cloud API.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .core.budget import TooManyItemsError
from .core.dedup import InMemoryStore, RedisStore, Store, StoreError
from .core.dispatch import BackgroundDispatcher, InlineDispatcher
from .core.engine import WhatsappCore
from .core.graph import GraphClient
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

if TYPE_CHECKING:
    __version__: str

    from .core.media import MediaChecksumError, MediaDownloadError, MediaFile, MediaTooLargeError
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

# Loaded on first use (PEP 562), so that a worker answering with plain text
# never loads the reply types or the media downloader: name -> module.
_LAZY = {
    **dict.fromkeys(
        ("MediaChecksumError", "MediaDownloadError", "MediaFile", "MediaTooLargeError"), "core.media"
    ),
    **dict.fromkeys(
        (
            "Audio", "Button", "Buttons", "Contact", "Contacts", "CtaUrl", "Document",
            "Image", "ListMenu", "Location", "React", "Reply", "Row", "Section",
            "Sticker", "Template", "Text", "Video",
        ),
        "replies",
    ),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name == "__version__":
        # Read from the installed metadata on demand (as Flask does): scanning
        # the distributions costs every process memory and start-up time.
        try:
            value: Any = version("cel_whatsapp")
        except PackageNotFoundError:  # a source tree that was not installed
            value = "0+unknown"
    else:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})


logging.getLogger(__name__).addHandler(logging.NullHandler())

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
    "OutsideWindowError",
    "PayloadError",
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
