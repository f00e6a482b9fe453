"""Turn a decoded webhook body into model objects.

Meta batches up to 1000 updates per POST, across several entries and
changes; every one is visited. A body that is not a webhook envelope raises
:class:`~cel_whatsapp.errors.PayloadError` (the view answers 400). Inside a
valid envelope, a malformed entry, change, message or status is logged and
skipped so the rest of the batch is still handled.

A message whose type-specific object is missing (an ``image`` message
without ``image``) is still delivered, without that content; one whose
object is present but not shaped as Meta documents it is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from marshmallow import Schema

from ..errors import PayloadError
from ..model import Lead, Message, StatusEvent, WebhookError
from . import schemas
from ._content import Content, parse_content, webhook_error

logger = logging.getLogger(__name__)

MESSAGES_FIELD = "messages"
#: Messages sent from the WhatsApp Business app on a number shared with the API.
ECHOES_FIELD = "smb_message_echoes"
_FIELDS = frozenset({MESSAGES_FIELD, ECHOES_FIELD})


@dataclass(slots=True)
class ParsedWebhook:
    """What one webhook POST held, for this business number."""

    #: Messages of every type (echoes included, marked ``metadata["echo"]``), in order.
    messages: list[Message] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    #: ``value.errors``: problems with the app or account, not tied to one message.
    errors: list[WebhookError] = field(default_factory=list)
    #: Changes acknowledged but not for us (another field or another number).
    ignored: int = 0
    #: Entries, changes, messages, statuses or errors skipped because they were malformed.
    skipped: int = 0


def _field_names(err: schemas.ValidationError) -> str:
    """Name the offending fields without echoing their (private) values."""
    messages = err.messages
    if isinstance(messages, Mapping):
        return ", ".join(sorted(str(k) for k in messages))
    return "body"


def _load_or_skip(
    schema: Schema, raw: Any, where: str, result: ParsedWebhook
) -> dict[str, Any] | None:
    """``schema.load(raw)``, or ``None`` after logging and counting a malformed item."""
    try:
        loaded: dict[str, Any] = schema.load(raw)
    except schemas.ValidationError as err:
        logger.warning("skipping malformed %s (%s)", where, _field_names(err))
        result.skipped += 1
        return None
    return loaded


def parse_webhook(data: Any, *, phone_number_id: str | None) -> ParsedWebhook:
    """Parse a decoded webhook body.

    ``phone_number_id`` selects the business number whose updates are kept;
    ``None`` keeps all of them.
    """
    if not isinstance(data, Mapping):
        raise PayloadError("the body must be a JSON object with an 'entry' list")
    try:
        envelope = schemas.ENVELOPE.load(data)
    except schemas.ValidationError as err:
        raise PayloadError(
            "not a WhatsApp webhook envelope (expected an 'entry' list)",
            where=_field_names(err),
        ) from err

    result = ParsedWebhook()
    for entry_index, raw_entry in enumerate(envelope["entry"]):
        entry = _load_or_skip(schemas.ENTRY, raw_entry, f"entry[{entry_index}]", result)
        if entry is None:
            continue
        for change_index, raw_change in enumerate(entry["changes"]):
            where = f"entry[{entry_index}].changes[{change_index}]"
            _parse_change(raw_change, entry.get("id"), where, phone_number_id, result)
    return result


def _parse_change(
    raw_change: Mapping[str, Any],
    waba_id: str | None,
    where: str,
    phone_number_id: str | None,
    result: ParsedWebhook,
) -> None:
    try:
        change = schemas.CHANGE.load(raw_change)
        if change["field"] not in _FIELDS:
            logger.debug("ignoring %s: field %r", where, change["field"])
            result.ignored += 1
            return
        value = schemas.VALUE.load(change["value"])
    except schemas.ValidationError as err:
        logger.warning("skipping malformed %s (%s)", where, _field_names(err))
        result.skipped += 1
        return

    metadata = value["metadata"]
    if metadata is None:
        logger.warning("skipping %s: no value.metadata", where)
        result.skipped += 1
        return
    if phone_number_id is not None and metadata["phone_number_id"] != phone_number_id:
        logger.debug("ignoring %s: for another phone number id", where)
        result.ignored += 1
        return

    base = {
        "phone_number_id": metadata["phone_number_id"],
        "display_phone_number": metadata["display_phone_number"],
        "waba_id": waba_id,
    }
    where = f"{where}.value"
    arrays = {key: _array(value, key, where, result) for key in _ARRAYS}
    for index, raw_error in enumerate(arrays["errors"]):
        _parse_error(raw_error, f"{where}.errors[{index}]", result)
    contacts = _load_contacts(arrays["contacts"]) if arrays["contacts"] else []
    for index, raw_message in enumerate(arrays["messages"]):
        _parse_message(raw_message, contacts, base, f"{where}.messages[{index}]", result)
    for index, raw_echo in enumerate(arrays["message_echoes"]):
        _parse_echo(raw_echo, base, f"{where}.message_echoes[{index}]", result)
    for index, raw_status in enumerate(arrays["statuses"]):
        _parse_status(raw_status, f"{where}.statuses[{index}]", result)


_ARRAYS = ("errors", "contacts", "messages", "message_echoes", "statuses")


def _array(value: Mapping[str, Any], key: str, where: str, result: ParsedWebhook) -> list[Any]:
    """``value[key]`` as a list: absent or ``null`` is empty; anything else is skipped."""
    items = value[key]
    if items is None:
        return []
    if isinstance(items, list):
        return items
    logger.warning("skipping %s.%s: not a list", where, key)
    result.skipped += 1
    return []


def _load_contacts(raw_contacts: list[Any]) -> list[dict[str, Any]]:
    """``value.contacts``, dropping malformed entries instead of the whole change."""
    try:
        loaded: list[dict[str, Any]] = schemas.CONTACT.load(raw_contacts, many=True)
    except schemas.ValidationError:
        return _load_contacts_one_by_one(raw_contacts)
    return loaded


def _load_contacts_one_by_one(raw_contacts: list[Any]) -> list[dict[str, Any]]:
    contacts = []
    for raw in raw_contacts:
        try:
            contacts.append(schemas.CONTACT.load(raw))
        except schemas.ValidationError as err:
            logger.debug("ignoring a malformed value.contacts entry (%s)", _field_names(err))
    return contacts


def _parse_message(
    raw: Any,
    contacts: list[dict[str, Any]],
    base: Mapping[str, Any],
    where: str,
    result: ParsedWebhook,
) -> None:
    loaded = _load_or_skip(schemas.MESSAGE, raw, where, result)
    if loaded is None:
        return
    lead = _lead_for(loaded, contacts, base["phone_number_id"])
    if lead is None:
        logger.warning("skipping %s: no sender id (neither 'from' nor 'from_user_id')", where)
        result.skipped += 1
        return
    message = _message(loaded, raw, lead, base, where)
    if message is None:
        result.skipped += 1
    else:
        result.messages.append(message)


def _parse_echo(raw: Any, base: Mapping[str, Any], where: str, result: ParsedWebhook) -> None:
    loaded = _load_or_skip(schemas.ECHO, raw, where, result)
    if loaded is None:
        return
    phone, user_id = loaded["to"] or None, loaded["to_user_id"] or None
    lead_id = phone or user_id
    if not lead_id:
        logger.warning("skipping %s: no recipient ('to')", where)
        result.skipped += 1
        return
    lead = Lead(id=lead_id, phone=phone, user_id=user_id, phone_number_id=base["phone_number_id"])
    message = _message(loaded, raw, lead, {**base, "echo": True}, where)
    if message is None:
        result.skipped += 1
    else:
        result.messages.append(message)


def _lead_for(
    loaded: Mapping[str, Any], contacts: list[dict[str, Any]], phone_number_id: str
) -> Lead | None:
    # Meta sends "" for a phone number it may not share (BSUID-only users).
    phone = loaded["from_"] or None
    user_id = loaded["from_user_id"] or None
    contact: Mapping[str, Any] | None = None
    for candidate in contacts:
        if (phone and candidate["wa_id"] == phone) or (user_id and candidate["user_id"] == user_id):
            contact = candidate
            break
    if contact is None and len(contacts) == 1:
        contact = contacts[0]
    name = None
    if contact is not None:
        phone = phone or contact["wa_id"] or None
        user_id = user_id or contact["user_id"] or None
        profile = contact["profile"]
        name = profile["name"] if profile else None
    lead_id = phone or user_id
    if not lead_id:
        return None
    return Lead(
        id=lead_id,
        phone=phone,
        user_id=user_id,
        name=name,
        phone_number_id=phone_number_id,
    )


def _message(
    loaded: Mapping[str, Any],
    raw: Mapping[str, Any],
    lead: Lead,
    base: Mapping[str, Any],
    where: str,
) -> Message | None:
    """Build the :class:`Message`; ``None`` (logged) when its content is malformed."""
    message_type = loaded["type"]
    extra: dict[str, Any] = {"raw": raw, **base}
    content: Content | None = None
    if message_type == "text":
        # The hot path: the body was loaded with the message.
        text_obj = loaded["text"]
        text = text_obj["body"] if text_obj else None
        if text_obj is None:
            logger.warning("%s: a text message without 'text'; delivered without it", where)
    else:
        try:
            content = parse_content(message_type, raw)
        except schemas.ValidationError as err:
            logger.warning(
                "skipping %s: malformed %r content (%s)", where, message_type, _field_names(err)
            )
            return None
        if content.missing:
            logger.warning(
                "%s: a %r message without its %r object; delivered without it",
                where,
                message_type,
                content.missing,
            )
        text = content.text
        extra.update(content.metadata)

    context = loaded["context"]
    if context is not None and context["referred_product"] is not None:
        extra["referred_product"] = MappingProxyType(context["referred_product"])
    referral = raw.get("referral")
    if isinstance(referral, Mapping):
        extra["referral"] = MappingProxyType(dict(referral))
    raw_errors = raw.get("errors")
    if raw_errors:
        errors = _message_errors(raw_errors, where)
        if errors:
            extra["errors"] = errors
            extra["error_code"] = errors[0].code

    return Message(
        id=loaded["id"],
        lead=lead,
        text=text,
        date=loaded["timestamp"],
        type=message_type,
        attachments=content.attachments if content else (),
        reply_to=context["id"] if context else None,
        choice=content.choice if content else None,
        reaction=content.reaction if content else None,
        forwarded=bool(context and context["forwarded"]),
        frequently_forwarded=bool(context and context["frequently_forwarded"]),
        metadata=MappingProxyType(extra),
    )


def _message_errors(raw_errors: Any, where: str) -> tuple[WebhookError, ...]:
    try:
        loaded = schemas.ERROR.load(raw_errors, many=True)
    except schemas.ValidationError as err:
        logger.warning("%s: malformed 'errors' left out (%s)", where, _field_names(err))
        return ()
    return tuple(webhook_error(e) for e in loaded)


def _parse_status(raw: Any, where: str, result: ParsedWebhook) -> None:
    loaded = _load_or_skip(schemas.STATUS, raw, where, result)
    if loaded is None:
        return
    pricing, conversation = loaded["pricing"], loaded["conversation"]
    result.statuses.append(
        StatusEvent(
            message_id=loaded["id"],
            status=loaded["status"],
            recipient=loaded["recipient_id"] or None,
            recipient_user_id=loaded["recipient_user_id"] or None,
            timestamp=loaded["timestamp"],
            errors=tuple(webhook_error(e) for e in loaded["errors"]),
            pricing=MappingProxyType(pricing) if pricing is not None else None,
            conversation=MappingProxyType(conversation) if conversation is not None else None,
            raw=MappingProxyType(raw),
        )
    )


def _parse_error(raw: Any, where: str, result: ParsedWebhook) -> None:
    loaded = _load_or_skip(schemas.ERROR, raw, where, result)
    if loaded is None:
        return
    result.errors.append(webhook_error(loaded))
