"""marshmallow schemas for the webhook payloads WhatsApp sends.

Every schema excludes unknown fields, so fields Meta adds later never break
parsing. Schemas are built once at import and reused: building one costs more
than loading a small payload with it.

Reference: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

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

    Messages and statuses stay raw dicts here: each is loaded on its own, so
    one malformed message does not hide the rest of a batch.
    """

    messaging_product = fields.String(load_default=None)
    metadata = fields.Nested(MetadataSchema, load_default=None)
    contacts = fields.List(fields.Nested(ContactSchema), load_default=list)
    messages = fields.List(fields.Raw(), load_default=list)
    statuses = fields.List(fields.Raw(), load_default=list)
    errors = fields.List(fields.Raw(), load_default=list)


class ChangeSchema(_Base):
    field = fields.String(required=True)
    value = fields.Dict(load_default=dict)


class EntrySchema(_Base):
    id = fields.String(load_default=None)
    changes = fields.List(fields.Raw(), load_default=list)


class EnvelopeSchema(_Base):
    """The body of a webhook POST: ``{"object": ..., "entry": [...]}``."""

    object = fields.String(load_default=None)
    entry = fields.List(fields.Raw(), required=True)


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


#: Built once; marshmallow schemas are safe to share between threads for ``load``.
ENVELOPE = EnvelopeSchema()
ENTRY = EntrySchema()
CHANGE = ChangeSchema()
VALUE = ValueSchema()
MESSAGE = MessageSchema()

__all__ = [
    "CHANGE",
    "ENTRY",
    "ENVELOPE",
    "MESSAGE",
    "VALUE",
    "ValidationError",
]
