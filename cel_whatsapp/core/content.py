"""What each WhatsApp message type carries: a schema per type's object.

A message of type ``image`` carries an ``image`` object, a ``location``
message a ``location`` object, and so on. Each type's schema loads that
object and its ``post_load`` builds the :class:`Content` the message gets:
its ``text``, ``attachments``, ``choice``, ``reaction`` and the keys added to
``metadata``. Only the message's own type is loaded, so a text message never
pays for the others.

Shapes follow Meta's per-type webhook references:
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/reference/messages
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load

from ..model import (
    MEDIA_KINDS,
    Attachment,
    Choice,
    ContactAttachment,
    ContactPhone,
    LocationAttachment,
    MediaAttachment,
    Reaction,
)

__all__ = ["Content", "parse_content"]


@dataclass(slots=True)
class Content:
    """The typed parts of one message, as its type's schema loaded them."""

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


def parse_content(message_type: str, message: Mapping[str, Any]) -> Content:
    """Load the content of one ``messages[]`` object of type ``message_type``.

    Returns an empty :class:`Content` for types without content
    (``request_welcome``) and for types nobody knows yet. Raises
    :class:`marshmallow.ValidationError` when the type's object is present
    but not shaped as Meta documents it.
    """
    schema = _SCHEMAS.get(message_type)
    if schema is None:
        return Content()
    # Each type's object sits under the key named after the type.
    obj = message.get(message_type)
    if obj is None:
        return Content(missing=message_type)
    if message_type == "contacts":
        if not isinstance(obj, list):
            raise ValidationError({"contacts": ["Not a valid list."]})
        return Content(attachments=tuple(schema.load(obj, many=True)))
    loaded: Content = schema.load(obj)
    return loaded


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE


class TextSchema(_Base):
    """``text``: a text message's body (loaded here only inside an ``edit``)."""

    body = fields.String(required=True)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        return Content(text=data["body"])


class MediaSchema(_Base):
    """``image``, ``audio``, ``video``, ``document`` and ``sticker`` objects.

    One instance per kind: the object does not say which kind it is.
    """

    id = fields.String(required=True)
    mime_type = fields.String(load_default=None)
    sha256 = fields.String(load_default=None)
    caption = fields.String(load_default=None)
    filename = fields.String(load_default=None)
    url = fields.String(load_default=None)
    voice = fields.Boolean(load_default=False)
    animated = fields.Boolean(load_default=False)

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        attachment = MediaAttachment(
            kind=self.kind,
            media_id=data["id"],
            mime_type=data["mime_type"],
            sha256=data["sha256"],
            caption=data["caption"],
            filename=data["filename"],
            url=data["url"],
            voice=data["voice"],
            animated=data["animated"],
        )
        return Content(text=data["caption"], attachments=(attachment,))


class LocationSchema(_Base):
    latitude = fields.Float(required=True)
    longitude = fields.Float(required=True)
    name = fields.String(load_default=None)
    address = fields.String(load_default=None)
    url = fields.String(load_default=None)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        return Content(attachments=(LocationAttachment(**data),))


class CardNameSchema(_Base):
    formatted_name = fields.String(load_default=None)


class CardPhoneSchema(_Base):
    phone = fields.String(load_default=None)
    wa_id = fields.String(load_default=None)
    type = fields.String(load_default=None)

    @post_load
    def make_phone(self, data: dict[str, Any], **kwargs: Any) -> ContactPhone:
        return ContactPhone(data["phone"], data["wa_id"], data["type"])


class CardEmailSchema(_Base):
    email = fields.String(load_default=None)


class ContactCardSchema(_Base):
    """One card of a ``contacts`` message, loaded to a :class:`ContactAttachment`."""

    name = fields.Nested(CardNameSchema, load_default=None)
    phones = fields.List(fields.Nested(CardPhoneSchema), load_default=list)
    emails = fields.List(fields.Nested(CardEmailSchema), load_default=list)

    @post_load(pass_original=True)
    def make_card(
        self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any
    ) -> ContactAttachment:
        name = data["name"]
        return ContactAttachment(
            name=name["formatted_name"] if name else None,
            phones=tuple(data["phones"]),
            emails=tuple(e["email"] for e in data["emails"] if e["email"]),
            raw=MappingProxyType(dict(original)),
        )


class ReplySchema(_Base):
    """``button_reply`` and ``list_reply``: the id and title we gave the button or row."""

    id = fields.String(required=True)
    title = fields.String(load_default=None)
    description = fields.String(load_default=None)

    @post_load
    def make_choice(self, data: dict[str, Any], **kwargs: Any) -> Choice:
        return Choice(data["id"], data["title"], data["description"])


class FlowReplySchema(_Base):
    """``nfm_reply``: a completed Flow; ``response_json`` is a JSON string."""

    name = fields.String(load_default=None)
    body = fields.String(load_default=None)
    response_json = fields.Raw(load_default=None)


class InteractiveSchema(_Base):
    """``interactive``: a tapped reply button, a chosen list row or a completed Flow."""

    type = fields.String(load_default=None)
    button_reply = fields.Nested(ReplySchema, load_default=None)
    list_reply = fields.Nested(ReplySchema, load_default=None)
    nfm_reply = fields.Nested(FlowReplySchema, load_default=None)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        kind = data["type"]
        metadata: dict[str, Any] = {"interactive_type": kind}
        if kind in ("button_reply", "list_reply"):
            choice: Choice | None = data[kind]
            if choice is None:
                return Content(metadata=metadata, missing=kind)
            return Content(text=choice.title, choice=choice, metadata=metadata)
        if kind == "nfm_reply":
            flow = data["nfm_reply"]
            if flow is None:
                return Content(metadata=metadata, missing=kind)
            response = _flow_response(flow["response_json"])
            metadata["flow_response"] = response
            metadata["flow_token"] = response.get("flow_token") if response is not None else None
            unusable = response is None and flow["response_json"] is not None
            return Content(
                text=flow["body"],
                choice=Choice(flow["name"] or "flow", flow["body"], None),
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


class ButtonSchema(_Base):
    """A tapped quick-reply button of a template message."""

    payload = fields.String(load_default=None)
    text = fields.String(load_default=None)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        payload, text = data["payload"], data["text"]
        choice_id = payload if payload is not None else text
        choice = Choice(choice_id, text, None) if choice_id is not None else None
        return Content(text=text, choice=choice)


class ReactionSchema(_Base):
    message_id = fields.String(required=True)
    #: Omitted (or ``""``) when the user removed their reaction.
    emoji = fields.String(load_default=None)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        # A removed reaction: Meta leaves "emoji" out, or (older payloads) sends "".
        return Content(reaction=Reaction(data["message_id"], data["emoji"] or None))


class ProductItemSchema(_Base):
    product_retailer_id = fields.String(load_default=None)
    quantity = fields.Integer(load_default=None)
    item_price = fields.Float(load_default=None)
    currency = fields.String(load_default=None)

    @post_load
    def make_item(self, data: dict[str, Any], **kwargs: Any) -> Mapping[str, Any]:
        return MappingProxyType(data)


class OrderSchema(_Base):
    catalog_id = fields.String(load_default=None)
    text = fields.String(load_default=None)
    product_items = fields.List(fields.Nested(ProductItemSchema), load_default=list)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        return Content(
            text=data["text"],
            metadata={
                "catalog_id": data["catalog_id"],
                "product_items": tuple(data["product_items"]),
            },
        )


class SystemSchema(_Base):
    """``user_changed_number``, ``user_changed_user_id`` and other system notices."""

    body = fields.String(load_default=None)
    type = fields.String(load_default=None)
    wa_id = fields.String(load_default=None)
    #: Older payloads named the new number ``new_wa_id``.
    new_wa_id = fields.String(load_default=None)
    user_id = fields.String(load_default=None)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        return Content(
            text=data["body"],
            metadata={
                "system_type": data["type"],
                "new_wa_id": data["wa_id"] or data["new_wa_id"],
                "new_user_id": data["user_id"],
            },
        )


class UnsupportedSchema(_Base):
    type = fields.String(load_default=None)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        return Content(metadata={"unsupported_type": data["type"]})


class EditSchema(_Base):
    """An edit (WhatsApp Business app numbers): the new version of an earlier message."""

    original_message_id = fields.String(load_default=None)
    message = fields.Dict(load_default=None)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        metadata: dict[str, Any] = {"original_message_id": data["original_message_id"]}
        inner = data["message"]
        inner_type = inner.get("type") if inner else None
        if not isinstance(inner_type, str) or inner_type in ("edit", "revoke"):
            return Content(metadata=metadata)
        metadata["edited_type"] = inner_type
        # The new version of the message, read like any message of its type.
        try:
            content = parse_content(inner_type, inner)
        except ValidationError as err:
            raise ValidationError({"message": {inner_type: err.messages}}) from err
        content.metadata = {**content.metadata, **metadata}
        return content


class RevokeSchema(_Base):
    """A deleted message (WhatsApp Business app numbers)."""

    original_message_id = fields.String(load_default=None)

    @post_load
    def make_content(self, data: dict[str, Any], **kwargs: Any) -> Content:
        return Content(metadata={"original_message_id": data["original_message_id"]})


#: The schema for each message type's object, built once.
_SCHEMAS: dict[str, Schema] = {
    "text": TextSchema(),
    **{kind: MediaSchema(kind) for kind in MEDIA_KINDS},
    "location": LocationSchema(),
    "contacts": ContactCardSchema(),
    "interactive": InteractiveSchema(),
    "button": ButtonSchema(),
    "reaction": ReactionSchema(),
    "order": OrderSchema(),
    "system": SystemSchema(),
    "unsupported": UnsupportedSchema(),
    "edit": EditSchema(),
    "revoke": RevokeSchema(),
}
