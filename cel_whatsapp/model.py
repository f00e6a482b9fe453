"""The connector-neutral model: who wrote (:class:`Lead`) and what (:class:`Message`).

Plain frozen data; nothing here talks to the network. Field meanings follow
Meta's webhook reference for ``messages`` updates:
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Lead:
    """The WhatsApp user who wrote a message.

    Since 2026 a user may hide their phone number behind a username; WhatsApp
    then sends only a business-scoped user id (BSUID, e.g.
    ``"US.13491208655302741918"``). ``id`` is the phone (``wa_id``) when known,
    else the BSUID.
    """

    id: str
    #: The sender's WhatsApp phone number (``wa_id``), digits only, or ``None``.
    phone: str | None = None
    #: The business-scoped user id (``user_id`` / ``from_user_id``), or ``None``.
    user_id: str | None = None
    #: The WhatsApp profile name, when the user shares one.
    name: str | None = None
    #: The ID of *our* business number that received the message.
    phone_number_id: str = ""
    connector: str = "whatsapp"

    @property
    def recipient(self) -> dict[str, str]:
        """The addressing part of a send payload: ``{"to": wa_id}`` or ``{"recipient": bsuid}``."""
        if self.phone:
            return {"to": self.phone}
        return {"recipient": self.user_id or self.id}


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One inbound WhatsApp message, as handed to the assistant."""

    #: WhatsApp's message id (``wamid....``).
    id: str
    lead: Lead
    #: The text a person typed (the body, a caption, a tapped button's title), or ``None``.
    text: str | None
    #: When WhatsApp received it, timezone-aware UTC.
    date: datetime
    #: WhatsApp's type string: ``"text"``, ``"image"``, ``"interactive"``...
    type: str
    attachments: tuple[Any, ...] = ()
    #: ``context.id``: the id of the message this one replies to.
    reply_to: str | None = None
    #: Extra facts by key; the message object exactly as received is under ``"raw"``.
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def raw(self) -> Mapping[str, Any]:
        """The message object exactly as WhatsApp sent it."""
        raw: Mapping[str, Any] = self.metadata.get("raw", _EMPTY)
        return raw
