"""Turn a decoded webhook body into model objects.

Meta batches up to 1000 updates per POST, across several entries and
changes; every one is visited. A body that is not a webhook envelope raises
:class:`~cel_whatsapp.errors.PayloadError` (the view answers 400). Inside a
valid envelope, a malformed entry, change or message is logged and skipped
so the rest of the batch still gets answered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import schemas
from .errors import PayloadError
from .model import Lead, Message

logger = logging.getLogger(__name__)

MESSAGES_FIELD = "messages"


@dataclass(slots=True)
class ParsedWebhook:
    """What one webhook POST held, for this business number."""

    messages: list[Message] = field(default_factory=list)
    #: Changes acknowledged but not for us (another field or another number).
    ignored: int = 0
    #: Entries, changes or messages skipped because they were malformed.
    skipped: int = 0


def _field_names(err: schemas.ValidationError) -> str:
    """Name the offending fields without echoing their (private) values."""
    messages = err.messages
    if isinstance(messages, Mapping):
        return ", ".join(sorted(str(k) for k in messages))
    return "body"


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
        try:
            entry = schemas.ENTRY.load(raw_entry)
        except schemas.ValidationError as err:
            logger.warning("skipping malformed entry[%d] (%s)", entry_index, _field_names(err))
            result.skipped += 1
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
        if change["field"] != MESSAGES_FIELD:
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

    contacts = value["contacts"]
    for index, raw_message in enumerate(value["messages"]):
        message_where = f"{where}.value.messages[{index}]"
        try:
            loaded = schemas.MESSAGE.load(raw_message)
        except schemas.ValidationError as err:
            logger.warning("skipping malformed %s (%s)", message_where, _field_names(err))
            result.skipped += 1
            continue
        lead = _lead_for(loaded, contacts, metadata["phone_number_id"])
        if lead is None:
            logger.warning(
                "skipping %s: no sender id (neither 'from' nor 'from_user_id')", message_where
            )
            result.skipped += 1
            continue
        result.messages.append(_message(loaded, raw_message, lead, metadata, waba_id))


def _lead_for(
    loaded: Mapping[str, Any], contacts: list[dict[str, Any]], phone_number_id: str
) -> Lead | None:
    phone = loaded["from_"]
    user_id = loaded["from_user_id"]
    contact: Mapping[str, Any] | None = None
    for candidate in contacts:
        if (phone and candidate["wa_id"] == phone) or (user_id and candidate["user_id"] == user_id):
            contact = candidate
            break
    if contact is None and len(contacts) == 1:
        contact = contacts[0]
    name = None
    if contact is not None:
        phone = phone or contact["wa_id"]
        user_id = user_id or contact["user_id"]
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
    metadata: Mapping[str, Any],
    waba_id: str | None,
) -> Message:
    text_obj = loaded["text"]
    context = loaded["context"]
    extra: dict[str, Any] = {
        "raw": raw,
        "phone_number_id": metadata["phone_number_id"],
        "display_phone_number": metadata["display_phone_number"],
        "waba_id": waba_id,
    }
    return Message(
        id=loaded["id"],
        lead=lead,
        text=text_obj["body"] if text_obj else None,
        date=loaded["timestamp"],
        type=loaded["type"],
        reply_to=context["id"] if context else None,
        metadata=MappingProxyType(extra),
    )
