"""marshmallow schemas for the webhook payloads WhatsApp sends.

Every schema excludes unknown fields, so fields Meta adds later never break
parsing. Schemas are built once at import and reused: building one costs more
than loading a small payload with it. Their ``load`` first tries a loader
compiled from the same fields (see :mod:`cel_whatsapp.core._loaders`), which skips
marshmallow's per-load bookkeeping and hands anything unusual back to
marshmallow.

Reference: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/reference/messages
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from ._loaders import Loader, Unsure, compile_many, compile_schema, same_as_compiled

# Timestamps outside this window are not real WhatsApp timestamps (the upper
# bound is the year 9999, the largest a datetime holds).
_MAX_TIMESTAMP = 253_402_300_799


class UnixTime(fields.Field):  # type: ignore[type-arg,unused-ignore]  # generic only in marshmallow 4
    """Seconds since the epoch, sent by Meta as a string, loaded as an aware UTC datetime."""

    default_error_messages = {"invalid": "Not a valid Unix timestamp."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        try:
            seconds = int(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.make_error("invalid") from exc
        if not 0 <= seconds <= _MAX_TIMESTAMP:
            raise self.make_error("invalid")
        return datetime.fromtimestamp(seconds, tz=timezone.utc)


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE

    # Performance (bench/, scenario 4): a plain ``load(data)`` goes through the
    # loader compiled once from this schema's fields, about 10x cheaper than
    # marshmallow's; anything the compiled loader is unsure of (or a call with
    # options) runs marshmallow's own ``load``, so results and errors are the same.
    @same_as_compiled
    def load(self, data: Any, *, many: Any = None, partial: Any = None, unknown: Any = None) -> Any:
        """``Schema.load``, fast for the well-formed payloads Meta sends."""
        if partial is None and unknown is None:
            single, several = self._fast_loaders()
            fast = several if many else single
            if fast is not None:
                try:
                    return fast(data)
                except Unsure:
                    # Unusual input: marshmallow's own load gives the result or the error.
                    return super().load(data, many=many)
        return super().load(data, many=many, partial=partial, unknown=unknown)

    def _fast_loaders(self) -> tuple[Loader | None, Callable[[Any], list[Any]] | None]:
        """The compiled loaders for one item and for ``many=True`` (``None``: none)."""
        try:
            loaders: tuple[Loader | None, Callable[[Any], list[Any]] | None]
            loaders = self.__dict__["_cel_fast_loaders"]
        except KeyError:
            # Compiled once per schema instance; a race only compiles twice.
            single = compile_schema(self)
            several = compile_many(self, single) if single is not None else None
            loaders = self.__dict__["_cel_fast_loaders"] = (single, several)
        return loaders


class MetadataSchema(_Base):
    """``value.metadata``: which business number the update is for."""

    display_phone_number = fields.String(load_default=None)
    phone_number_id = fields.String(required=True)


class ProfileSchema(_Base):
    name = fields.String(load_default=None)


class ContactSchema(_Base):
    """``value.contacts[]``: the sender's profile and identifiers."""

    wa_id = fields.String(load_default=None)
    user_id = fields.String(load_default=None)
    profile = fields.Nested(ProfileSchema, load_default=None)


class ValueSchema(_Base):
    """``entry[].changes[].value`` of a ``messages`` change.

    The arrays stay raw here and are checked one by one while parsing, so a
    malformed ``errors`` or ``contacts`` array, or one malformed message,
    does not hide the rest of a batch.
    """

    messaging_product = fields.String(load_default=None)
    metadata = fields.Nested(MetadataSchema, load_default=None)
    contacts = fields.Raw(load_default=None)
    messages = fields.Raw(load_default=None)
    statuses = fields.Raw(load_default=None)
    errors = fields.Raw(load_default=None)
    #: Messages the business sent from the WhatsApp Business app (``smb_message_echoes``).
    message_echoes = fields.Raw(load_default=None)


class ChangeSchema(_Base):
    field = fields.String(required=True)
    value = fields.Dict(load_default=dict)


class EntrySchema(_Base):
    id = fields.String(load_default=None)
    # Items may be null: each is checked on its own, so a null skips itself only.
    changes = fields.List(fields.Raw(allow_none=True), load_default=list)


class EnvelopeSchema(_Base):
    """The body of a webhook POST: ``{"object": ..., "entry": [...]}``."""

    object = fields.String(load_default=None)
    entry = fields.List(fields.Raw(allow_none=True), required=True)


class TextSchema(_Base):
    body = fields.String(required=True)


class ContextSchema(_Base):
    """``messages[].context``: the message this one replies to or was forwarded with."""

    id = fields.String(load_default=None)
    from_ = fields.String(data_key="from", load_default=None)
    forwarded = fields.Boolean(load_default=False)
    frequently_forwarded = fields.Boolean(load_default=False)
    referred_product = fields.Dict(load_default=None)


class MessageSchema(_Base):
    """``value.messages[]``: one inbound message, common fields and text."""

    id = fields.String(required=True)
    from_ = fields.String(data_key="from", load_default=None)
    from_user_id = fields.String(load_default=None)
    timestamp = UnixTime(required=True)
    type = fields.String(required=True)
    text = fields.Nested(TextSchema, load_default=None)
    context = fields.Nested(ContextSchema, load_default=None)


class EchoSchema(_Base):
    """``value.message_echoes[]``: a message the business itself sent (not a user's)."""

    id = fields.String(required=True)
    from_ = fields.String(data_key="from", load_default=None)
    to = fields.String(load_default=None)
    to_user_id = fields.String(load_default=None)
    timestamp = UnixTime(required=True)
    type = fields.String(required=True)
    text = fields.Nested(TextSchema, load_default=None)
    context = fields.Nested(ContextSchema, load_default=None)


# -- the content of each message type ---------------------------------------------
# Loaded only for the message's own type, so a text message never pays for them.


class MediaSchema(_Base):
    """``image``, ``audio``, ``video``, ``document`` and ``sticker`` objects."""

    id = fields.String(required=True)
    mime_type = fields.String(load_default=None)
    sha256 = fields.String(load_default=None)
    caption = fields.String(load_default=None)
    filename = fields.String(load_default=None)
    url = fields.String(load_default=None)
    voice = fields.Boolean(load_default=False)
    animated = fields.Boolean(load_default=False)


class LocationSchema(_Base):
    latitude = fields.Float(required=True)
    longitude = fields.Float(required=True)
    name = fields.String(load_default=None)
    address = fields.String(load_default=None)
    url = fields.String(load_default=None)


class CardNameSchema(_Base):
    formatted_name = fields.String(load_default=None)
    first_name = fields.String(load_default=None)
    last_name = fields.String(load_default=None)


class CardPhoneSchema(_Base):
    phone = fields.String(load_default=None)
    wa_id = fields.String(load_default=None)
    type = fields.String(load_default=None)


class CardEmailSchema(_Base):
    email = fields.String(load_default=None)
    type = fields.String(load_default=None)


class ContactCardSchema(_Base):
    """One card of a ``contacts`` message."""

    name = fields.Nested(CardNameSchema, load_default=None)
    phones = fields.List(fields.Nested(CardPhoneSchema), load_default=list)
    emails = fields.List(fields.Nested(CardEmailSchema), load_default=list)


class ReplySchema(_Base):
    """``button_reply`` and ``list_reply``: the id and title we gave the button or row."""

    id = fields.String(required=True)
    title = fields.String(load_default=None)
    description = fields.String(load_default=None)


class FlowReplySchema(_Base):
    """``nfm_reply``: a completed Flow; ``response_json`` is a JSON string."""

    name = fields.String(load_default=None)
    body = fields.String(load_default=None)
    response_json = fields.Raw(load_default=None)


class InteractiveSchema(_Base):
    type = fields.String(load_default=None)
    button_reply = fields.Nested(ReplySchema, load_default=None)
    list_reply = fields.Nested(ReplySchema, load_default=None)
    nfm_reply = fields.Nested(FlowReplySchema, load_default=None)


class ButtonSchema(_Base):
    """A tapped quick-reply button of a template message."""

    payload = fields.String(load_default=None)
    text = fields.String(load_default=None)


class ReactionSchema(_Base):
    message_id = fields.String(required=True)
    #: Omitted (or ``""``) when the user removed their reaction.
    emoji = fields.String(load_default=None)


class ProductItemSchema(_Base):
    product_retailer_id = fields.String(load_default=None)
    quantity = fields.Integer(load_default=None)
    item_price = fields.Float(load_default=None)
    currency = fields.String(load_default=None)


class OrderSchema(_Base):
    catalog_id = fields.String(load_default=None)
    text = fields.String(load_default=None)
    product_items = fields.List(fields.Nested(ProductItemSchema), load_default=list)


class SystemSchema(_Base):
    """``user_changed_number``, ``user_changed_user_id`` and other system notices."""

    body = fields.String(load_default=None)
    type = fields.String(load_default=None)
    wa_id = fields.String(load_default=None)
    #: Older payloads named the new number ``new_wa_id``.
    new_wa_id = fields.String(load_default=None)
    user_id = fields.String(load_default=None)


class UnsupportedSchema(_Base):
    type = fields.String(load_default=None)


class EditSchema(_Base):
    """An edit (WhatsApp Business app numbers): the new version of an earlier message."""

    original_message_id = fields.String(load_default=None)
    message = fields.Dict(load_default=None)


class RevokeSchema(_Base):
    """A deleted message (WhatsApp Business app numbers)."""

    original_message_id = fields.String(load_default=None)


class ErrorDataSchema(_Base):
    details = fields.String(load_default=None)


class ErrorSchema(_Base):
    """An error object: in ``value.errors``, ``statuses[].errors`` and ``messages[].errors``."""

    code = fields.Integer(load_default=None)
    title = fields.String(load_default=None)
    message = fields.String(load_default=None)
    error_data = fields.Nested(ErrorDataSchema, load_default=None)


class StatusSchema(_Base):
    """``value.statuses[]``: what happened to a message we sent."""

    id = fields.String(required=True)
    status = fields.String(required=True)
    timestamp = UnixTime(required=True)
    recipient_id = fields.String(load_default=None)
    recipient_user_id = fields.String(load_default=None)
    errors = fields.List(fields.Nested(ErrorSchema), load_default=list)
    pricing = fields.Dict(load_default=None)
    conversation = fields.Dict(load_default=None)


#: Built once; marshmallow schemas are safe to share between threads for ``load``.
ENVELOPE = EnvelopeSchema()
ENTRY = EntrySchema()
CHANGE = ChangeSchema()
VALUE = ValueSchema()
CONTACT = ContactSchema()
MESSAGE = MessageSchema()
ECHO = EchoSchema()
MEDIA = MediaSchema()
LOCATION = LocationSchema()
CONTACT_CARD = ContactCardSchema()
INTERACTIVE = InteractiveSchema()
BUTTON = ButtonSchema()
REACTION = ReactionSchema()
ORDER = OrderSchema()
SYSTEM = SystemSchema()
UNSUPPORTED = UnsupportedSchema()
EDIT = EditSchema()
REVOKE = RevokeSchema()
TEXT = TextSchema()
ERROR = ErrorSchema()
STATUS = StatusSchema()

__all__ = [
    "BUTTON",
    "CHANGE",
    "CONTACT",
    "CONTACT_CARD",
    "ECHO",
    "EDIT",
    "ENTRY",
    "ENVELOPE",
    "ERROR",
    "INTERACTIVE",
    "LOCATION",
    "MEDIA",
    "MESSAGE",
    "ORDER",
    "REACTION",
    "REVOKE",
    "STATUS",
    "SYSTEM",
    "TEXT",
    "UNSUPPORTED",
    "VALUE",
    "ValidationError",
]
