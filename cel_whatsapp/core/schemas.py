"""marshmallow schemas that turn a webhook's JSON into the model objects.

Every schema excludes unknown fields (``unknown = EXCLUDE``), so fields Meta
adds later never break parsing, and declares only the fields the model uses.
The ``post_load`` hooks build the model: :class:`~cel_whatsapp.model.Message`
(with its :class:`~cel_whatsapp.model.Lead` and content),
:class:`~cel_whatsapp.model.StatusEvent` and
:class:`~cel_whatsapp.model.WebhookError`. The content of each message type
(attachments, choices, reactions...) has its own schemas in
:mod:`cel_whatsapp.core.content`, loaded only for the message's own type.

The envelope, entries, changes, ``value.metadata`` and ``value.contacts``
are plain JSON around the updates, which :mod:`cel_whatsapp.core.parsing`
walks with type checks; the updates in ``value``'s arrays (``messages``,
``statuses``, ``errors``...) are loaded here one at a time, so one malformed
message does not hide the rest of a batch of 1,000.

A message needs what its change holds besides the message itself: the
sender's profile from ``value.contacts`` and the business number from
``value.metadata``. Parsing hands that over in a :class:`MessageScope` set in
:data:`SCOPE` (a :class:`contextvars.ContextVar`, the way marshmallow 4
passes context to hooks), for the duration of a change.

Schemas are built once at import and shared: building one costs more than
loading a small payload with it, and marshmallow schemas are safe to share
between threads for ``load``.

Reference: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/reference/messages
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Protocol

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load

from ..model import Lead, Message, StatusEvent, WebhookError
from ._skips import field_names
from .checked import Checked, PlainString
from .content import Content, parse_content

__all__ = [
    "CONTEXT",
    "ECHO",
    "ERROR",
    "MESSAGE",
    "SCOPE",
    "STATUS",
    "MessageScope",
    "Schema",
    "ValidationError",
]

# Timestamps outside this window are not real WhatsApp timestamps (the upper
# bound is the year 9999, the largest a datetime holds).
_MAX_TIMESTAMP = 253_402_300_799


def unix_time(value: Any) -> datetime:
    """Seconds since the epoch, sent by Meta as a string, as an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValidationError("Not a valid Unix timestamp.")
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError("Not a valid Unix timestamp.") from exc
    if not 0 <= seconds <= _MAX_TIMESTAMP:
        raise ValidationError("Not a valid Unix timestamp.")
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


class Base(Schema):
    """Every schema here: unknown fields are left out, never an error."""

    class Meta:
        unknown = EXCLUDE


class MessageScope(Protocol):
    """What a message's or a status's ``post_load`` needs from the change it is in."""

    #: ``phone_number_id``, ``display_phone_number`` and ``waba_id`` of the change.
    base: Mapping[str, Any]

    def lead(self, phone: str | None, user_id: str | None) -> Lead | None:
        """The sender, completed from ``value.contacts``; ``None`` without any id."""

    def spend(self, message: Mapping[str, Any], message_type: str) -> None:
        """Count the lists inside one message against the POST's item budget."""

    def leave_out(self, kind: str, names: Sequence[str] = ()) -> None:
        """Note a part of the message that was unusable (one summary log line per POST)."""


#: The scope of the change being parsed; set by :mod:`cel_whatsapp.core.parsing`.
SCOPE: ContextVar[MessageScope] = ContextVar("cel_whatsapp_message_scope")


def _text(value: Any) -> dict[str, str]:
    """A text message's ``text`` object, checked as a nested schema with a ``body`` String would.

    A field with this check costs a fraction of a ``fields.Nested`` load, on
    the path of nearly every message (``python -m bench --only
    parse``). Errors name the field as the nested schema's would.
    """
    if not isinstance(value, (dict, Mapping)):
        raise ValidationError({"_schema": ["Invalid input type."]})
    body = value.get("body")
    if not isinstance(body, str):
        missing = "Missing data for required field."
        raise ValidationError({"body": [missing if body is None else "Not a valid string."]})
    return {"body": body}


# -- errors ------------------------------------------------------------------------


class ErrorDataSchema(Base):
    details = fields.String(load_default=None)


class ErrorSchema(Base):
    """An error object, in ``value.errors``, ``statuses[].errors`` and ``messages[].errors``."""

    code = fields.Integer(load_default=None)
    title = fields.String(load_default=None)
    message = fields.String(load_default=None)
    error_data = fields.Nested(ErrorDataSchema, load_default=None)

    @post_load
    def make_error(self, data: dict[str, Any], **kwargs: Any) -> WebhookError:
        details = data["error_data"]
        return WebhookError(
            code=data["code"],
            title=data["title"],
            message=data["message"],
            details=details["details"] if details else None,
        )


# -- messages ------------------------------------------------------------------------


class ContextSchema(Base):
    """``messages[].context``: the message this one replies to or was forwarded with."""

    id = fields.String(load_default=None)
    forwarded = fields.Boolean(load_default=False)
    frequently_forwarded = fields.Boolean(load_default=False)
    referred_product = fields.Dict(load_default=None)


class _MessageFields(Base):
    """What a user's message and an echo of the business's own message share."""

    # Checked fields: one call each (see cel_whatsapp.core.checked); these
    # load on every message.
    id = PlainString(required=True)
    timestamp = Checked(unix_time, required=True)
    type = PlainString(required=True)
    # The text of a text message is loaded with the message: the hot path
    # (``{"body": ...}``, see _text).
    text = Checked(_text, load_default=None)
    # ``context`` (most messages have none) is loaded by CONTEXT in
    # _build_message when present: a declared field costs every message.


class MessageSchema(_MessageFields):
    """``value.messages[]``: one inbound message, loaded to a :class:`Message`."""

    from_ = PlainString(data_key="from", load_default=None)
    from_user_id = PlainString(load_default=None)

    @post_load(pass_original=True)
    def make_message(
        self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any
    ) -> Message:
        scope = SCOPE.get()
        # Meta sends "" for a phone number it may not share (BSUID-only users).
        lead = scope.lead(data["from_"] or None, data["from_user_id"] or None)
        if lead is None:
            raise ValidationError({"from": ["No sender."], "from_user_id": ["No sender."]})
        return _build_message(data, original, lead, scope.base, scope)


class EchoSchema(_MessageFields):
    """``value.message_echoes[]``: a message the business itself sent, to ``to``."""

    to = PlainString(load_default=None)
    to_user_id = PlainString(load_default=None)

    @post_load(pass_original=True)
    def make_echo(
        self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any
    ) -> Message:
        scope = SCOPE.get()
        phone, user_id = data["to"] or None, data["to_user_id"] or None
        lead_id = phone or user_id
        if not lead_id:
            raise ValidationError({"to": ["No recipient."], "to_user_id": ["No recipient."]})
        base = scope.base
        lead = Lead(
            id=lead_id, phone=phone, user_id=user_id, phone_number_id=base["phone_number_id"]
        )
        return _build_message(data, original, lead, {**base, "echo": True}, scope)


def _context(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The message's ``context`` loaded by :data:`CONTEXT`, or ``None`` when it has none."""
    value = raw.get("context")
    if value is None:
        return None
    try:
        context: dict[str, Any] = CONTEXT.load(value)
    except ValidationError as err:
        raise ValidationError({"context": err.messages}) from err
    return context


def _build_message(
    data: Mapping[str, Any],
    raw: Mapping[str, Any],
    lead: Lead,
    base: Mapping[str, Any],
    scope: MessageScope,
) -> Message:
    """The :class:`Message` of a loaded message or echo; its type's content loaded here."""
    message_type = data["type"]
    scope.spend(raw, message_type)
    context = _context(raw)
    extra: dict[str, Any] = {"raw": raw, **base}
    content: Content | None = None
    if message_type == "text":
        text_obj = data["text"]
        text = text_obj["body"] if text_obj else None
        if text_obj is None:
            scope.leave_out("'text' message without its 'text' object")
    else:
        try:
            content = parse_content(message_type, raw)
        except ValidationError as err:
            # Named after the type's object: "image.id" in the skip summary.
            raise ValidationError({message_type: err.messages}) from err
        if content.missing:
            scope.leave_out(f"{message_type!r} message without its {content.missing!r} object")
        if content.left_out:
            scope.leave_out(f"{message_type!r} message's {content.left_out}")
        text = content.text
        extra.update(content.metadata)

    if context is not None and context["referred_product"] is not None:
        extra["referred_product"] = MappingProxyType(context["referred_product"])
    referral = raw.get("referral")
    if referral is not None and isinstance(referral, (dict, Mapping)):
        extra["referral"] = MappingProxyType(dict(referral))
    raw_errors = raw.get("errors")
    if raw_errors:
        try:
            errors: tuple[WebhookError, ...] = tuple(ERROR.load(raw_errors, many=True))
        except ValidationError as err:
            scope.leave_out("message's errors", field_names(err.messages))
        else:
            if errors:
                extra["errors"] = errors
                extra["error_code"] = errors[0].code

    return Message(
        id=data["id"],
        lead=lead,
        text=text,
        date=data["timestamp"],
        type=message_type,
        attachments=content.attachments if content else (),
        reply_to=context["id"] if context else None,
        choice=content.choice if content else None,
        reaction=content.reaction if content else None,
        forwarded=bool(context and context["forwarded"]),
        frequently_forwarded=bool(context and context["frequently_forwarded"]),
        metadata=MappingProxyType(extra),
    )


# -- statuses ------------------------------------------------------------------------


class StatusSchema(Base):
    """``value.statuses[]``: what happened to a message we sent."""

    id = PlainString(required=True)
    status = PlainString(required=True)
    timestamp = Checked(unix_time, required=True)
    recipient_id = PlainString(load_default=None)
    recipient_user_id = PlainString(load_default=None)
    errors = fields.List(fields.Nested(ErrorSchema), load_default=list)
    pricing = fields.Dict(load_default=None)
    conversation = fields.Dict(load_default=None)

    @post_load(pass_original=True)
    def make_status(
        self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any
    ) -> StatusEvent:
        pricing, conversation = data["pricing"], data["conversation"]
        return StatusEvent(
            message_id=data["id"],
            status=data["status"],
            recipient=data["recipient_id"] or None,
            recipient_user_id=data["recipient_user_id"] or None,
            timestamp=data["timestamp"],
            errors=tuple(data["errors"]),
            pricing=MappingProxyType(pricing) if pricing is not None else None,
            conversation=MappingProxyType(conversation) if conversation is not None else None,
            raw=MappingProxyType(original),
            phone_number_id=SCOPE.get().base["phone_number_id"],
        )


CONTEXT = ContextSchema()
MESSAGE = MessageSchema()
ECHO = EchoSchema()
ERROR = ErrorSchema()
STATUS = StatusSchema()
