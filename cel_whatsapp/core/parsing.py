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

The envelope, its entries and changes, ``value.metadata`` and the senders'
``value.contacts`` are plain JSON around the updates: they are walked with
type checks (a list here, an object with a string ``phone_number_id``
there). Every update becomes a model object through a marshmallow schema of
:mod:`cel_whatsapp.core.schemas`, one item at a time: a message (its
:class:`~cel_whatsapp.model.Lead` completed from the sender's contact), a
status, an error.

A message whose type-specific object is missing (an ``image`` message
without ``image``) is still delivered, without that content; one whose
object is present but not shaped as Meta documents it is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from marshmallow import Schema

from ..config import DEFAULT_MAX_ITEMS_PER_POST
from ..errors import PayloadError
from ..model import Lead, Message, StatusEvent, WebhookError
from . import schemas
from ._skips import SkipLog, field_names
from .budget import VALUE_ARRAYS, ItemBudget

logger = logging.getLogger(__name__)

MESSAGES_FIELD = "messages"
#: Messages sent from the WhatsApp Business app on a number shared with the API.
ECHOES_FIELD = "smb_message_echoes"
_FIELDS = frozenset({MESSAGES_FIELD, ECHOES_FIELD})
#: Numbers listed in ``ParsedWebhook.other_numbers`` at most (they are logged).
_MAX_OTHER_NUMBERS = 20

_LISTS = (list, tuple)
# dict first: the common case, several times cheaper than the ABC check alone.
_MAPPINGS = (dict, Mapping)
_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: What an item that is not a JSON object is skipped for (marshmallow's name for it).
_NOT_AN_OBJECT = ("_schema",)


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
    #: Business numbers not handled here that sent updates in this body (a few at most).
    other_numbers: set[str] = field(default_factory=set)


class _Batch:
    """The state of parsing one body: the result, the item budget, what was skipped."""

    __slots__ = ("budget", "log", "numbers", "result")

    def __init__(self, numbers: Collection[str] | None, max_items: int | None) -> None:
        self.numbers = numbers
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

    def load_or_skip(self, schema: Schema, raw: Any, kind: str, where: str) -> Any:
        """``schema.load(raw)`` (a dict or a model object), or ``None`` after a skip."""
        try:
            return schema.load(raw)
        except schemas.ValidationError as err:
            self.skip(kind, where, field_names(err.messages))
            return None


def parse_webhook(
    data: Any,
    *,
    phone_number_id: str | Collection[str] | None,
    max_items: int | None = DEFAULT_MAX_ITEMS_PER_POST,
) -> ParsedWebhook:
    """Parse a decoded webhook body.

    ``phone_number_id`` selects the business numbers whose updates are kept
    (one id or a collection of them); ``None`` keeps all of them. The ids of
    other numbers that sent updates are listed in ``other_numbers``. A body holding more than ``max_items`` items
    (see :mod:`cel_whatsapp.core.budget`) raises
    :class:`~cel_whatsapp.core.budget.TooManyItemsError`; its entries, changes and
    updates are counted before any of them is parsed. ``max_items=None``
    counts nothing: for a body known to be small enough.
    """
    if not isinstance(data, _MAPPINGS):
        raise PayloadError("the body must be a JSON object with an 'entry' list")
    numbers = frozenset((phone_number_id,)) if isinstance(phone_number_id, str) else phone_number_id
    batch = _Batch(numbers, max_items)
    if batch.budget is not None:
        batch.budget.spend_envelope(data)
    entries = data.get("entry")
    if not isinstance(entries, _LISTS):
        raise PayloadError(
            "not a WhatsApp webhook envelope (expected an 'entry' list)", where="entry"
        )
    for entry_index, entry in enumerate(entries):
        where = f"entry[{entry_index}]"
        if not isinstance(entry, _MAPPINGS):
            batch.skip("entry", where, _NOT_AN_OBJECT)
            continue
        changes = entry.get("changes", ())
        waba_id = entry.get("id")
        bad = _bad_strings(entry, (), ("id",))
        if not isinstance(changes, _LISTS):
            bad.append("changes")
        if bad:
            batch.skip("entry", where, sorted(bad))
            continue
        for change_index, raw_change in enumerate(changes):
            _parse_change(raw_change, waba_id, f"{where}.changes[{change_index}]", batch)
    if batch.log is not None:
        logger.warning("webhook: %s", batch.log.summary())
    if batch.result.ignored:
        logger.debug(
            "webhook: %d change(s) ignored (another field or phone number id)",
            batch.result.ignored,
        )
    return batch.result


def load_message(
    raw: Mapping[str, Any],
    *,
    metadata: Mapping[str, Any],
    contact: Mapping[str, Any] | None = None,
    echo: bool = False,
) -> Message:
    """Build one :class:`Message` again from its raw JSON, as the webhook built it.

    For a job worker answering a message the webhook handed over as plain
    JSON: ``raw`` is the message object as received (``message.metadata["raw"]``),
    ``metadata`` the change's ``phone_number_id``, ``display_phone_number`` and
    ``waba_id``, ``contact`` the sender's ``value.contacts[]`` entry in Meta's
    shape (``wa_id``, ``user_id``, ``profile.name``), and ``echo`` whether it
    came as an echo of the business's own message. The same schemas load it,
    so the result equals the message the webhook parsed.

    Raises :class:`~cel_whatsapp.errors.PayloadError` when it does not load.
    """
    batch = _Batch(None, None)
    if not isinstance(metadata, _MAPPINGS):
        raise PayloadError("not a message's change metadata", where="metadata")
    bad = _bad_strings(metadata, ("phone_number_id",), ("display_phone_number",))
    if bad:
        raise PayloadError("not a message's change metadata", where=", ".join(sorted(bad)))
    contacts = []
    if contact:
        loaded, bad = _contact(contact)
        if loaded is None:
            raise PayloadError("not a message's contact", where=", ".join(bad))
        contacts.append(loaded)
    scope = _ChangeScope(
        {
            "phone_number_id": metadata["phone_number_id"],
            "display_phone_number": metadata.get("display_phone_number"),
            "waba_id": metadata.get("waba_id"),
        },
        contacts,
        batch,
    )
    token = schemas.SCOPE.set(scope)
    try:
        message: Message = (schemas.ECHO if echo else schemas.MESSAGE).load(raw)
    except schemas.ValidationError as err:
        raise PayloadError(
            "not a WhatsApp message", where=", ".join(field_names(err.messages))
        ) from err
    finally:
        schemas.SCOPE.reset(token)
    return message


def _parse_change(
    raw_change: Mapping[str, Any], waba_id: str | None, where: str, batch: _Batch
) -> None:
    result = batch.result
    if not isinstance(raw_change, _MAPPINGS):
        batch.skip("change", where, _NOT_AN_OBJECT)
        return
    value = raw_change.get("value", _EMPTY)
    bad = _bad_strings(raw_change, ("field",), ())
    if not isinstance(value, _MAPPINGS):
        bad.append("value")
    if bad:
        batch.skip("change", where, sorted(bad))
        return
    if raw_change["field"] not in _FIELDS:
        result.ignored += 1
        return
    metadata = value.get("metadata")
    if not isinstance(metadata, _MAPPINGS):
        batch.skip("change", where, ("value.metadata",))
        return
    bad = _bad_strings(metadata, ("phone_number_id",), ("display_phone_number",))
    if bad:
        batch.skip("change", where, [f"value.metadata.{name}" for name in sorted(bad)])
        return
    numbers = batch.numbers
    if numbers is not None and metadata["phone_number_id"] not in numbers:
        result.ignored += 1
        if len(result.other_numbers) < _MAX_OTHER_NUMBERS:
            result.other_numbers.add(metadata["phone_number_id"])
        return

    where = f"{where}.value"
    arrays: dict[str, list[Any]] = {}
    for key in VALUE_ARRAYS:  # written out: every change takes this path
        items = value.get(key)
        if items is None:
            items = []
        elif not isinstance(items, list):
            batch.skip(f"value.{key} (not a list)", where)
            items = []
        arrays[key] = items
    for index, raw_error in enumerate(arrays["errors"]):
        error = batch.load_or_skip(schemas.ERROR, raw_error, "error", f"{where}.errors[{index}]")
        if error is not None:
            result.errors.append(error)
    scope = _ChangeScope(
        {
            "phone_number_id": metadata["phone_number_id"],
            "display_phone_number": metadata.get("display_phone_number"),
            "waba_id": waba_id,
        },
        _load_contacts(arrays["contacts"], where, batch),
        batch,
    )
    token = schemas.SCOPE.set(scope)
    try:
        for index, raw_message in enumerate(arrays["messages"]):
            scope.where = f"{where}.messages[{index}]"
            _load_message(schemas.MESSAGE, raw_message, "message", scope.where, batch)
        for index, raw_echo in enumerate(arrays["message_echoes"]):
            scope.where = f"{where}.message_echoes[{index}]"
            _load_message(schemas.ECHO, raw_echo, "echo", scope.where, batch)
        for index, raw_status in enumerate(arrays["statuses"]):
            if batch.budget is not None:
                batch.budget.spend_status(raw_status)  # its errors are loaded with it
            status = batch.load_or_skip(
                schemas.STATUS, raw_status, "status", f"{where}.statuses[{index}]"
            )
            if status is not None:
                result.statuses.append(status)
    finally:
        schemas.SCOPE.reset(token)


def _load_message(schema: Schema, raw: Any, kind: str, where: str, batch: _Batch) -> None:
    """Load one message or echo into the result, or record why it was skipped."""
    try:
        message: Message = schema.load(raw)
    except schemas.ValidationError as err:
        errors = err.messages
        message_type = raw.get("type") if isinstance(raw, Mapping) else None
        inner = None
        if isinstance(message_type, str) and isinstance(errors, Mapping) and len(errors) == 1:
            inner = errors.get(message_type)
        if isinstance(inner, Mapping):
            # Only the type's own object was malformed: "'image' content (id)".
            batch.skip(f"{message_type!r} content", where, field_names(inner))
        else:
            batch.skip(kind, where, field_names(errors))
        return
    batch.result.messages.append(message)


def _bad_strings(
    item: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> list[str]:
    """The names among ``required`` that are not strings, and among ``optional`` not null either."""
    bad = []
    for name in required:  # a loop, not a comprehension: no call of its own (Python 3.11)
        if not isinstance(item.get(name), str):
            bad.append(name)
    for name in optional:
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            bad.append(name)
    return bad


def _load_contacts(raw_contacts: list[Any], where: str, batch: _Batch) -> list[dict[str, Any]]:
    """``value.contacts``, dropping malformed entries instead of the whole change."""
    contacts = []
    for index, raw in enumerate(raw_contacts):
        contact, bad = _contact(raw)
        if contact is None:
            batch.leave_out("value.contacts item", f"{where}.contacts[{index}]", bad)
        else:
            contacts.append(contact)
    return contacts


def _contact(raw: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """One ``value.contacts[]`` entry as ``wa_id``, ``user_id`` and ``profile.name``.

    A plain walk: a contact is not a model object, it completes the
    :class:`~cel_whatsapp.model.Lead` that :data:`schemas.MESSAGE` builds.
    Returns ``(None, names of the malformed fields)`` for a malformed one.
    """
    if not isinstance(raw, _MAPPINGS):
        return None, list(_NOT_AN_OBJECT)
    bad = _bad_strings(raw, (), ("wa_id", "user_id"))
    profile = raw.get("profile")
    if profile is not None and not (
        isinstance(profile, _MAPPINGS) and not _bad_strings(profile, (), ("name",))
    ):
        bad.append("profile")
    if bad:
        return None, bad
    return {
        "wa_id": raw.get("wa_id"),
        "user_id": raw.get("user_id"),
        "profile": None if profile is None else {"name": profile.get("name")},
    }, []


class _ChangeScope:
    """One change, as its messages see it while they load (a :class:`schemas.MessageScope`).

    Holds the business number, the sender contacts and, for the summary log
    line, where the message being loaded is.
    """

    __slots__ = ("_batch", "_by_user_id", "_by_wa_id", "base", "contacts", "where")

    def __init__(
        self, base: Mapping[str, Any], contacts: list[dict[str, Any]], batch: _Batch
    ) -> None:
        self.base = base
        self.contacts = contacts
        self._batch = batch
        self.where = ""

    def lead(self, phone: str | None, user_id: str | None) -> Lead | None:
        contact = self._find(phone, user_id)
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
            phone_number_id=self.base["phone_number_id"],
        )

    def spend(self, message: Mapping[str, Any], message_type: str) -> None:
        if self._batch.budget is not None:
            self._batch.budget.spend_message(message, message_type)

    def leave_out(self, kind: str, names: Sequence[str] = ()) -> None:
        self._batch.leave_out(kind, self.where, tuple(names))

    def _find(self, phone: str | None, user_id: str | None) -> Mapping[str, Any] | None:
        """The first contact with this phone (``wa_id``) or user id; the only one if just one.

        A linear search per message made a body of thousands of contacts and
        messages cost seconds of CPU. The index is built on the first look-up
        among several contacts; the common single contact needs none.
        """
        items = self.contacts
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
        for index, contact in enumerate(self.contacts):
            # setdefault: the first contact listed wins, as a linear search found it.
            if contact["wa_id"]:
                by_wa_id.setdefault(contact["wa_id"], index)
            if contact["user_id"]:
                by_user_id.setdefault(contact["user_id"], index)
        self._by_wa_id, self._by_user_id = by_wa_id, by_user_id
        return by_wa_id, by_user_id
