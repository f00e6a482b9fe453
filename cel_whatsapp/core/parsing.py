"""Turn a decoded webhook body into model objects.

Meta batches up to 1000 updates per POST, across several entries and
changes; every one is visited. A body that is not a webhook envelope raises
:class:`~cel_whatsapp.errors.PayloadError` (the view answers 400), and one
holding more items than ``max_items`` raises its subclass
:class:`~cel_whatsapp.core.budget.TooManyItemsError` (413) before any item is parsed
(see :mod:`cel_whatsapp.core.budget`). Inside a valid envelope, a malformed
entry, change, message or status is skipped so the rest of the batch is
still handled; what was skipped is logged in one summary line per body
(see :mod:`cel_whatsapp.core._skips`), never one line per item.

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

from ..config import DEFAULT_MAX_ITEMS_PER_POST
from ..errors import PayloadError
from ..model import Lead, Message, StatusEvent, WebhookError
from . import schemas
from ._content import Content, parse_content, webhook_error
from ._skips import SkipLog, field_names
from .budget import VALUE_ARRAYS, ItemBudget

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


class _Batch:
    """The state of parsing one body: the result, the item budget, what was skipped."""

    __slots__ = ("budget", "log", "phone_number_id", "result")

    def __init__(self, phone_number_id: str | None, max_items: int | None) -> None:
        self.phone_number_id = phone_number_id
        self.result = ParsedWebhook()
        # None: a body too small to hold too many items is not counted.
        self.budget = ItemBudget(max_items) if max_items is not None else None
        #: Made on the first skip: most bodies have none.
        self.log: SkipLog | None = None

    def skip(self, kind: str, where: str, names: list[str] | tuple[str, ...] = ()) -> None:
        """An item was malformed: count it and note it for the summary line."""
        self.result.skipped += 1
        if self.log is None:
            self.log = SkipLog()
        self.log.skip(kind, where, names)

    def leave_out(self, kind: str, where: str, names: list[str] | tuple[str, ...] = ()) -> None:
        """A part of a kept item was unusable: note it for the summary line."""
        if self.log is None:
            self.log = SkipLog()
        self.log.leave_out(kind, where, names)

    def load_or_skip(
        self, schema: Schema, raw: Any, kind: str, where: str
    ) -> dict[str, Any] | None:
        """``schema.load(raw)``, or ``None`` after recording a malformed item."""
        try:
            loaded: dict[str, Any] = schema.load(raw)
        except schemas.ValidationError as err:
            self.skip(kind, where, field_names(err.messages))
            return None
        return loaded


def parse_webhook(
    data: Any,
    *,
    phone_number_id: str | None,
    max_items: int | None = DEFAULT_MAX_ITEMS_PER_POST,
) -> ParsedWebhook:
    """Parse a decoded webhook body.

    ``phone_number_id`` selects the business number whose updates are kept;
    ``None`` keeps all of them. A body holding more than ``max_items`` items
    (see :mod:`cel_whatsapp.core.budget`) raises
    :class:`~cel_whatsapp.core.budget.TooManyItemsError`; its entries, changes and
    updates are counted before any of them is parsed. ``max_items=None``
    counts nothing: for a body known to be small enough.
    """
    if not isinstance(data, Mapping):
        raise PayloadError("the body must be a JSON object with an 'entry' list")
    batch = _Batch(phone_number_id, max_items)
    if batch.budget is not None:
        batch.budget.spend_envelope(data)
    try:
        envelope = schemas.ENVELOPE.load(data)
    except schemas.ValidationError as err:
        raise PayloadError(
            "not a WhatsApp webhook envelope (expected an 'entry' list)",
            where=", ".join(field_names(err.messages)),
        ) from err

    for entry_index, raw_entry in enumerate(envelope["entry"]):
        entry = batch.load_or_skip(schemas.ENTRY, raw_entry, "entry", f"entry[{entry_index}]")
        if entry is None:
            continue
        for change_index, raw_change in enumerate(entry["changes"]):
            where = f"entry[{entry_index}].changes[{change_index}]"
            _parse_change(raw_change, entry.get("id"), where, batch)
    if batch.log is not None:
        logger.warning("webhook: %s", batch.log.summary())
    if batch.result.ignored:
        logger.debug(
            "webhook: %d change(s) ignored (another field or phone number id)",
            batch.result.ignored,
        )
    return batch.result


def _parse_change(
    raw_change: Mapping[str, Any], waba_id: str | None, where: str, batch: _Batch
) -> None:
    result = batch.result
    try:
        change = schemas.CHANGE.load(raw_change)
        if change["field"] not in _FIELDS:
            result.ignored += 1
            return
        value = schemas.VALUE.load(change["value"])
    except schemas.ValidationError as err:
        batch.skip("change", where, field_names(err.messages))
        return

    metadata = value["metadata"]
    if metadata is None:
        batch.skip("change", where, ("value.metadata",))
        return
    phone_number_id = batch.phone_number_id
    if phone_number_id is not None and metadata["phone_number_id"] != phone_number_id:
        result.ignored += 1
        return

    base = {
        "phone_number_id": metadata["phone_number_id"],
        "display_phone_number": metadata["display_phone_number"],
        "waba_id": waba_id,
    }
    where = f"{where}.value"
    arrays = {key: _array(value, key, where, batch) for key in VALUE_ARRAYS}
    for index, raw_error in enumerate(arrays["errors"]):
        loaded = batch.load_or_skip(schemas.ERROR, raw_error, "error", f"{where}.errors[{index}]")
        if loaded is not None:
            result.errors.append(webhook_error(loaded))
    contacts = _Contacts(_load_contacts(arrays["contacts"], where, batch))
    for index, raw_message in enumerate(arrays["messages"]):
        _parse_message(raw_message, contacts, base, f"{where}.messages[{index}]", batch)
    for index, raw_echo in enumerate(arrays["message_echoes"]):
        _parse_echo(raw_echo, base, f"{where}.message_echoes[{index}]", batch)
    for index, raw_status in enumerate(arrays["statuses"]):
        _parse_status(raw_status, f"{where}.statuses[{index}]", batch)


def _array(value: Mapping[str, Any], key: str, where: str, batch: _Batch) -> list[Any]:
    """``value[key]`` as a list: absent or ``null`` is empty; anything else is skipped."""
    items = value[key]
    if items is None:
        return []
    if isinstance(items, list):
        return items
    batch.skip(f"value.{key} (not a list)", where)
    return []


def _load_contacts(raw_contacts: list[Any], where: str, batch: _Batch) -> list[dict[str, Any]]:
    """``value.contacts``, dropping malformed entries instead of the whole change."""
    if not raw_contacts:
        return []
    try:
        loaded: list[dict[str, Any]] = schemas.CONTACT.load(raw_contacts, many=True)
    except schemas.ValidationError:
        contacts = []
        for index, raw in enumerate(raw_contacts):
            try:
                contacts.append(schemas.CONTACT.load(raw))
            except schemas.ValidationError as err:
                batch.leave_out(
                    "value.contacts item", f"{where}.contacts[{index}]", field_names(err.messages)
                )
        return contacts
    return loaded


class _Contacts:
    """A change's ``value.contacts``, found by phone number or user id in one look-up.

    A linear search per message made a body of thousands of contacts and
    messages cost seconds of CPU. The index is built on the first look-up
    among several contacts; the common single contact needs none.
    """

    __slots__ = ("_by_user_id", "_by_wa_id", "items")

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def find(self, phone: str | None, user_id: str | None) -> Mapping[str, Any] | None:
        """The first contact with this phone (``wa_id``) or user id; the only one if just one."""
        items = self.items
        if len(items) < 2:
            return items[0] if items else None
        try:
            by_wa_id, by_user_id = self._by_wa_id, self._by_user_id
        except AttributeError:
            by_wa_id, by_user_id = self._index()
        by_phone = by_wa_id.get(phone) if phone else None
        by_user = by_user_id.get(user_id) if user_id else None
        if by_phone is None:
            return None if by_user is None else items[by_user]
        return items[by_phone if by_user is None else min(by_phone, by_user)]

    def _index(self) -> tuple[dict[str, int], dict[str, int]]:
        by_wa_id: dict[str, int] = {}
        by_user_id: dict[str, int] = {}
        for index, contact in enumerate(self.items):
            # setdefault: the first contact listed wins, as a linear search found it.
            if contact["wa_id"]:
                by_wa_id.setdefault(contact["wa_id"], index)
            if contact["user_id"]:
                by_user_id.setdefault(contact["user_id"], index)
        self._by_wa_id, self._by_user_id = by_wa_id, by_user_id
        return by_wa_id, by_user_id


def _parse_message(
    raw: Any,
    contacts: _Contacts,
    base: Mapping[str, Any],
    where: str,
    batch: _Batch,
) -> None:
    loaded = batch.load_or_skip(schemas.MESSAGE, raw, "message", where)
    if loaded is None:
        return
    lead = _lead_for(loaded, contacts, base["phone_number_id"])
    if lead is None:
        batch.skip("message", where, ("from", "from_user_id"))
        return
    if batch.budget is not None:
        batch.budget.spend_message(raw, loaded["type"])
    message = _message(loaded, raw, lead, base, where, batch)
    if message is not None:
        batch.result.messages.append(message)


def _parse_echo(raw: Any, base: Mapping[str, Any], where: str, batch: _Batch) -> None:
    loaded = batch.load_or_skip(schemas.ECHO, raw, "echo", where)
    if loaded is None:
        return
    phone, user_id = loaded["to"] or None, loaded["to_user_id"] or None
    lead_id = phone or user_id
    if not lead_id:
        batch.skip("echo", where, ("to", "to_user_id"))
        return
    lead = Lead(id=lead_id, phone=phone, user_id=user_id, phone_number_id=base["phone_number_id"])
    if batch.budget is not None:
        batch.budget.spend_message(raw, loaded["type"])
    message = _message(loaded, raw, lead, {**base, "echo": True}, where, batch)
    if message is not None:
        batch.result.messages.append(message)


def _lead_for(loaded: Mapping[str, Any], contacts: _Contacts, phone_number_id: str) -> Lead | None:
    # Meta sends "" for a phone number it may not share (BSUID-only users).
    phone = loaded["from_"] or None
    user_id = loaded["from_user_id"] or None
    contact = contacts.find(phone, user_id)
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
    batch: _Batch,
) -> Message | None:
    """Build the :class:`Message`; ``None`` (recorded as skipped) when its content is malformed."""
    message_type = loaded["type"]
    extra: dict[str, Any] = {"raw": raw, **base}
    content: Content | None = None
    if message_type == "text":
        # The hot path: the body was loaded with the message.
        text_obj = loaded["text"]
        text = text_obj["body"] if text_obj else None
        if text_obj is None:
            batch.leave_out("'text' message without its 'text' object", where)
    else:
        try:
            content = parse_content(message_type, raw)
        except schemas.ValidationError as err:
            # Only known types raise: message_type is one of a fixed few names.
            batch.skip(f"{message_type!r} content", where, field_names(err.messages))
            return None
        if content.missing:
            batch.leave_out(
                f"{message_type!r} message without its {content.missing!r} object", where
            )
        if content.left_out:
            batch.leave_out(f"{message_type!r} message's {content.left_out}", where)
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
        errors = _message_errors(raw_errors, where, batch)
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


def _message_errors(raw_errors: Any, where: str, batch: _Batch) -> tuple[WebhookError, ...]:
    try:
        loaded = schemas.ERROR.load(raw_errors, many=True)
    except schemas.ValidationError as err:
        batch.leave_out("message's errors", where, field_names(err.messages))
        return ()
    return tuple(webhook_error(e) for e in loaded)


def _parse_status(raw: Any, where: str, batch: _Batch) -> None:
    if batch.budget is not None:
        batch.budget.spend_status(raw)  # its errors are loaded with it
    loaded = batch.load_or_skip(schemas.STATUS, raw, "status", where)
    if loaded is None:
        return
    pricing, conversation = loaded["pricing"], loaded["conversation"]
    batch.result.statuses.append(
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
