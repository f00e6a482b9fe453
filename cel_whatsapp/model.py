"""The connector-neutral model: who wrote (:class:`Lead`) and what (:class:`Message`).

Plain frozen data; nothing here talks to the network. Field meanings follow
Meta's webhook reference for ``messages`` updates:
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/reference/messages

Besides messages a person wrote, WhatsApp reports what happened to the
messages *we* sent (:class:`StatusEvent`) and problems with the account or
app (:class:`WebhookError`) on the same webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

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


# -- what a message can carry ------------------------------------------------------
#
# The small value types below accept their fields by position, in the order
# shown, as well as by keyword.


#: The ``kind`` of a :class:`MediaAttachment`.
MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")


@dataclass(frozen=True, slots=True)
class MediaAttachment:
    """A photo, voice note, audio file, video, document or sticker.

    The bytes are not in the webhook: pass ``media_id`` (or the attachment
    itself) to :meth:`WhatsappConnector.download_media
    <cel_whatsapp.WhatsappConnector.download_media>`.
    """

    #: ``"image"``, ``"audio"``, ``"video"``, ``"document"`` or ``"sticker"``.
    kind: str
    #: WhatsApp's media id; valid for downloads for 7 days after the webhook.
    media_id: str
    mime_type: str | None = None
    #: SHA-256 of the file as Meta sent it (base64 in current webhooks).
    sha256: str | None = None
    caption: str | None = None
    #: The original file name (documents only).
    filename: str | None = None
    #: A short-lived download URL, when Meta includes one (rolled out from late 2025).
    url: str | None = None
    #: ``True`` for a voice note recorded in WhatsApp (audio only).
    voice: bool = False
    #: ``True`` for an animated sticker.
    animated: bool = False


@dataclass(frozen=True, slots=True)
class LocationAttachment:
    """A shared location. A shared *live* location carries only the coordinates."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ContactPhone(NamedTuple):
    """One phone number on a shared contact card: ``(phone, wa_id, type)``."""

    phone: str | None
    #: The number's WhatsApp id, when it is on WhatsApp.
    wa_id: str | None
    #: A free-form label such as ``"CELL"``, ``"HOME"`` or ``"WORK"``.
    type: str | None


@dataclass(frozen=True, slots=True)
class ContactAttachment:
    """One shared contact card (a ``contacts`` message carries one per card)."""

    #: The card's formatted name (``name.formatted_name``).
    name: str | None
    phones: tuple[ContactPhone, ...] = ()
    #: E-mail addresses, in the card's order.
    emails: tuple[str, ...] = ()
    #: The card exactly as received (addresses, birthday, org, urls...).
    raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


#: Anything in :attr:`Message.attachments`.
Attachment: TypeAlias = MediaAttachment | LocationAttachment | ContactAttachment


@dataclass(frozen=True, slots=True)
class Choice:
    """What the user picked: a reply button, a list row, a template quick reply, a Flow.

    ``id`` is the id you gave the button or row (a template button's
    ``payload``; a completed Flow's ``name``).
    """

    id: str
    title: str | None = None
    #: A list row's description.
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Reaction:
    """An emoji reaction the user put on one of our messages."""

    #: The id of the message reacted to.
    message_id: str
    #: The emoji, or ``None`` when the user removed their reaction.
    emoji: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookError:
    """An error object from a webhook (``value.errors[]``, ``statuses[].errors[]``...).

    See Meta's error codes:
    https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
    """

    code: int | None
    title: str | None = None
    message: str | None = None
    #: ``error_data.details``: a longer explanation, when given.
    details: str | None = None


#: The values of :attr:`StatusEvent.status`.
STATUSES = ("sent", "delivered", "read", "failed", "played")


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """What happened to a message we sent: sent, delivered, read, failed or played.

    https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/reference/messages/status
    """

    #: The wamid of *our* message.
    message_id: str
    #: ``"sent"``, ``"delivered"``, ``"read"``, ``"failed"`` or ``"played"`` (voice notes).
    status: str
    #: ``recipient_id``: the user's phone number (or group id); ``None`` when Meta left it empty.
    recipient: str | None = None
    #: The user's business-scoped user id, when the message was sent to it.
    recipient_user_id: str | None = None
    #: When it happened, timezone-aware UTC (always set when parsed from a webhook).
    timestamp: datetime | None = None
    #: Why a ``"failed"`` message failed.
    errors: tuple[WebhookError, ...] = ()
    #: ``pricing`` as sent (``billable``, ``pricing_model``, ``type``, ``category``), or ``None``.
    pricing: Mapping[str, Any] | None = None
    #: ``conversation`` as sent (``id``, ``origin``, ``expiration_timestamp``), or ``None``.
    conversation: Mapping[str, Any] | None = None
    #: The status object exactly as received (not compared, not shown in repr).
    raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False, repr=False)
    #: The ID of *our* business number that sent the message (``value.metadata``).
    phone_number_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One inbound WhatsApp message, as handed to the assistant.

    The docs have a table of which WhatsApp type fills which field
    (``docs/inbound.rst``).
    """

    #: WhatsApp's message id (``wamid....``).
    id: str
    lead: Lead
    #: The text a person typed (the body, a caption, a tapped button's title), or ``None``.
    text: str | None
    #: When WhatsApp received it, timezone-aware UTC.
    date: datetime
    #: WhatsApp's type string: ``"text"``, ``"image"``, ``"interactive"``...
    type: str
    #: Media, locations and contact cards, in the order received.
    attachments: tuple[Attachment, ...] = ()
    #: ``context.id``: the id of the message this one replies to.
    reply_to: str | None = None
    #: The button, list row, quick reply or Flow the user picked, or ``None``.
    choice: Choice | None = None
    #: For ``type == "reaction"``: the reaction, else ``None``.
    reaction: Reaction | None = None
    #: The user forwarded this message (from someone else).
    forwarded: bool = False
    #: The message has been forwarded many times (more than 5).
    frequently_forwarded: bool = False
    #: Extra facts by key (docs/inbound.rst lists them); the message as received is ``"raw"``.
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def raw(self) -> Mapping[str, Any]:
        """The message object exactly as WhatsApp sent it."""
        raw: Mapping[str, Any] = self.metadata.get("raw", _EMPTY)
        return raw


#: What ``@connector.on_update`` receives.
Update: TypeAlias = Message | StatusEvent
