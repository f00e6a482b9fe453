"""What each WhatsApp message type carries, turned into model values.

One small function per type reads the type's own object (``image``,
``location``, ``interactive``...) and says what goes into :class:`Message`'s
``text``, ``attachments``, ``choice``, ``reaction`` and ``metadata``. Only the
message's own type is loaded, so a text message never pays for the others.

Shapes follow Meta's per-type webhook references:
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/reference/messages
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..model import (
    MEDIA_KINDS,
    Attachment,
    Choice,
    ContactAttachment,
    ContactPhone,
    LocationAttachment,
    MediaAttachment,
    Reaction,
    WebhookError,
)
from . import schemas


@dataclass(slots=True)
class Content:
    """The typed parts of one message; what :func:`parse_content` found."""

    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    choice: Choice | None = None
    reaction: Reaction | None = None
    #: Keys added to ``Message.metadata``.
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The name of the object that was absent (the message is still delivered, without it).
    missing: str | None = None
    #: The name of a part that was present but unusable, left out (the message is still
    #: delivered); the caller logs it, once per webhook.
    left_out: str | None = None


Parser = Callable[[str, Any], Content]


def parse_content(message_type: str, message: Mapping[str, Any]) -> Content:
    """Read the content of one ``messages[]`` object of type ``message_type``.

    Returns an empty :class:`Content` for types without content
    (``request_welcome``) and for types nobody knows yet. Raises
    :class:`marshmallow.ValidationError` when the type's object is present
    but not shaped as Meta documents it.
    """
    parser = _PARSERS.get(message_type)
    if parser is None:
        return Content()
    # Each type's object sits under the key named after the type.
    obj = message.get(message_type)
    if obj is None:
        return Content(missing=message_type)
    return parser(message_type, obj)


def webhook_error(loaded: Mapping[str, Any]) -> WebhookError:
    """A :class:`WebhookError` from an error object loaded with ``schemas.ERROR``."""
    data = loaded["error_data"]
    return WebhookError(
        code=loaded["code"],
        title=loaded["title"],
        message=loaded["message"],
        details=data["details"] if data else None,
    )


def _text(_: str, obj: Any) -> Content:
    return Content(text=schemas.TEXT.load(obj)["body"])


def _media(kind: str, obj: Any) -> Content:
    loaded = schemas.MEDIA.load(obj)
    attachment = MediaAttachment(
        kind=kind,
        media_id=loaded["id"],
        mime_type=loaded["mime_type"],
        sha256=loaded["sha256"],
        caption=loaded["caption"],
        filename=loaded["filename"],
        url=loaded["url"],
        voice=loaded["voice"],
        animated=loaded["animated"],
    )
    return Content(text=loaded["caption"], attachments=(attachment,))


def _location(_: str, obj: Any) -> Content:
    loaded = schemas.LOCATION.load(obj)
    return Content(
        attachments=(
            LocationAttachment(
                latitude=loaded["latitude"],
                longitude=loaded["longitude"],
                name=loaded["name"],
                address=loaded["address"],
                url=loaded["url"],
            ),
        )
    )


def _contacts(_: str, obj: Any) -> Content:
    if not isinstance(obj, list):
        raise schemas.ValidationError({"contacts": ["Not a valid list."]})
    cards = schemas.CONTACT_CARD.load(obj, many=True)
    attachments: list[Attachment] = []
    for raw_card, card in zip(obj, cards, strict=True):
        name = card["name"]
        attachments.append(
            ContactAttachment(
                name=name["formatted_name"] if name else None,
                phones=tuple(
                    ContactPhone(p["phone"], p["wa_id"], p["type"]) for p in card["phones"]
                ),
                emails=tuple(e["email"] for e in card["emails"] if e["email"]),
                raw=MappingProxyType(dict(raw_card)),
            )
        )
    return Content(attachments=tuple(attachments))


def _interactive(_: str, obj: Any) -> Content:
    loaded = schemas.INTERACTIVE.load(obj)
    kind = loaded["type"]
    metadata: dict[str, Any] = {"interactive_type": kind}
    if kind in ("button_reply", "list_reply"):
        reply = loaded[kind]
        if reply is None:
            return Content(metadata=metadata, missing=kind)
        choice = Choice(reply["id"], reply["title"], reply["description"])
        return Content(text=reply["title"], choice=choice, metadata=metadata)
    if kind == "nfm_reply":
        flow = loaded["nfm_reply"]
        if flow is None:
            return Content(metadata=metadata, missing=kind)
        response = _flow_response(flow["response_json"])
        metadata["flow_response"] = response
        metadata["flow_token"] = response.get("flow_token") if response is not None else None
        choice = Choice(flow["name"] or "flow", flow["body"], None)
        unusable = response is None and flow["response_json"] is not None
        return Content(
            text=flow["body"],
            choice=choice,
            metadata=metadata,
            left_out="nfm_reply.response_json" if unusable else None,
        )
    # An interactive reply of a kind we do not model (yet): delivered as is.
    return Content(metadata=metadata)


def _flow_response(value: Any) -> Mapping[str, Any] | None:
    """``nfm_reply.response_json`` decoded; ``None`` when it is not a JSON object."""
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            decoded = None
        if isinstance(decoded, dict):
            return MappingProxyType(decoded)
    return None


def _button(_: str, obj: Any) -> Content:
    loaded = schemas.BUTTON.load(obj)
    payload, text = loaded["payload"], loaded["text"]
    choice_id = payload if payload is not None else text
    choice = Choice(choice_id, text, None) if choice_id is not None else None
    return Content(text=text, choice=choice)


def _reaction(_: str, obj: Any) -> Content:
    loaded = schemas.REACTION.load(obj)
    # A removed reaction: Meta leaves "emoji" out, or (older payloads) sends "".
    return Content(reaction=Reaction(loaded["message_id"], loaded["emoji"] or None))


def _order(_: str, obj: Any) -> Content:
    loaded = schemas.ORDER.load(obj)
    items = tuple(MappingProxyType(item) for item in loaded["product_items"])
    return Content(
        text=loaded["text"],
        metadata={"catalog_id": loaded["catalog_id"], "product_items": items},
    )


def _system(_: str, obj: Any) -> Content:
    loaded = schemas.SYSTEM.load(obj)
    return Content(
        text=loaded["body"],
        metadata={
            "system_type": loaded["type"],
            "new_wa_id": loaded["wa_id"] or loaded["new_wa_id"],
            "new_user_id": loaded["user_id"],
        },
    )


def _unsupported(_: str, obj: Any) -> Content:
    return Content(metadata={"unsupported_type": schemas.UNSUPPORTED.load(obj)["type"]})


def _edit(_: str, obj: Any) -> Content:
    loaded = schemas.EDIT.load(obj)
    metadata: dict[str, Any] = {"original_message_id": loaded["original_message_id"]}
    inner = loaded["message"]
    inner_type = inner.get("type") if inner else None
    if not isinstance(inner_type, str) or inner_type in ("edit", "revoke"):
        return Content(metadata=metadata)
    metadata["edited_type"] = inner_type
    # The new version of the message, read like any message of its type.
    content = parse_content(inner_type, inner)
    content.metadata = {**content.metadata, **metadata}
    return content


def _revoke(_: str, obj: Any) -> Content:
    return Content(
        metadata={"original_message_id": schemas.REVOKE.load(obj)["original_message_id"]}
    )


_PARSERS: dict[str, Parser] = {
    "text": _text,
    **dict.fromkeys(MEDIA_KINDS, _media),
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
    "reaction": _reaction,
    "order": _order,
    "system": _system,
    "unsupported": _unsupported,
    "edit": _edit,
    "revoke": _revoke,
}
