"""How many items one webhook POST may hold, counted from list lengths alone.

Meta sends at most 1,000 updates per POST, but a body under the size cap can
hold a million tiny items (``{}`` takes three bytes), and each one parsed
costs a schema load, an object, perhaps a log line: tens of seconds of CPU
for one POST. So parsing draws every item from an :class:`ItemBudget` of
``DEFAULT_MAX_ITEMS_PER_POST`` and a body holding more is refused with
:class:`TooManyItemsError` (the webhook answers 413):

- entries, changes, and the elements of each change's ``messages``,
  ``statuses``, ``errors``, ``contacts`` and ``message_echoes`` are counted up
  front by :meth:`ItemBudget.spend_envelope`, before any of them is parsed;
- the lists parsed inside one update (a ``contacts`` message's cards and their
  ``phones`` and ``emails``, an order's ``product_items``, a message's or a
  status's ``errors``) are counted just before that update is parsed, so a
  body over the cap is refused after a bounded amount of work, and before
  anything was handed over.

Counting looks only at the lengths of JSON arrays (lists), never into the items.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import PayloadError

__all__ = ["VALUE_ARRAYS", "ItemBudget", "TooManyItemsError", "fits_without_counting"]

#: The arrays of a change's ``value`` that hold updates (and the senders' profiles).
VALUE_ARRAYS = ("errors", "contacts", "messages", "message_echoes", "statuses")

_LISTS = (list, tuple)
# dict first: the common case, several times cheaper than the ABC check alone.
_MAPPINGS = (dict, Mapping)


class TooManyItemsError(PayloadError):
    """A body holds more items than one POST may; nothing of it is handed over."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"more than {limit} items (entries, changes, updates and the lists inside them) "
            "in one POST; Meta sends at most 1000 updates per POST"
        )
        self.limit = limit


def fits_without_counting(body_bytes: int, limit: int) -> bool:
    """Whether a JSON body of ``body_bytes`` bytes holds at most ``limit`` items whatever it says.

    Every item is an element of a JSON array, and ``n`` elements take at least
    ``2n - 1`` bytes (``0,0,0``); so a body shorter than ``2 * limit`` bytes
    cannot hold more than ``limit`` of them. That is nearly every webhook: a
    text message takes about 500 bytes.
    """
    return body_bytes < 2 * limit


def _length(value: Any) -> int:
    return len(value) if isinstance(value, _LISTS) else 0


#: Message types whose content holds lists (see ``_spend_content``).
_TYPES_WITH_LISTS = frozenset({"contacts", "order", "edit"})


class ItemBudget:
    """The items one POST may still hold; spending past ``limit`` raises :class:`TooManyItemsError`."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the items per POST must be at least 1")
        self.limit = limit
        self.left = limit

    def spend(self, count: int) -> None:
        """Take ``count`` items; raise :class:`TooManyItemsError` when that goes past the limit."""
        self.left -= count
        if self.left < 0:
            raise TooManyItemsError(self.limit)

    def spend_envelope(self, data: Mapping[str, Any]) -> None:
        """Entries, changes and the elements of the update arrays of a decoded body.

        The walk never visits more entries or changes than the budget holds:
        each list's length is taken before it is walked.
        """
        limit = self.limit
        # Runs on many POSTs: locals and inline checks rather than method calls.
        entries = data.get("entry")
        if not isinstance(entries, _LISTS):
            return
        left = self.left - len(entries)
        if left < 0:
            raise TooManyItemsError(limit)
        for entry in entries:
            if not isinstance(entry, _MAPPINGS):
                continue
            changes = entry.get("changes")
            if not isinstance(changes, _LISTS):
                continue
            left -= len(changes)
            if left < 0:
                raise TooManyItemsError(limit)
            for change in changes:
                if not isinstance(change, _MAPPINGS):
                    continue
                value = change.get("value")
                if isinstance(value, _MAPPINGS):
                    get = value.get
                    for key in VALUE_ARRAYS:
                        items = get(key)
                        if items and isinstance(items, _LISTS):
                            left -= len(items)
                    if left < 0:
                        raise TooManyItemsError(limit)
        self.left = left

    def spend_status(self, status: Any) -> None:
        """The ``errors`` of one ``statuses[]`` object (loaded with the status)."""
        if isinstance(status, _MAPPINGS):
            errors = status.get("errors")
            if errors:
                self.spend(_length(errors))

    def spend_message(self, message: Mapping[str, Any], message_type: str) -> None:
        """The lists parsed inside one message or echo of type ``message_type``."""
        errors = message.get("errors")
        if errors:
            self.spend(_length(errors))
        if message_type in _TYPES_WITH_LISTS:
            self._spend_content(message, message_type, nested=False)

    def _spend_content(self, message: Mapping[str, Any], message_type: str, nested: bool) -> None:
        # The lists the content schemas load: ContactCardSchema's phones and
        # emails, OrderSchema's product_items (tests/test_budget.py checks
        # that no other list field exists in schemas.py).
        obj = message.get(message_type)
        if message_type == "contacts":
            if isinstance(obj, _LISTS):
                self.spend(len(obj))  # before the cards are walked
                for card in obj:
                    if isinstance(card, Mapping):
                        self.spend(_length(card.get("phones")) + _length(card.get("emails")))
        elif message_type == "order":
            if isinstance(obj, Mapping):
                self.spend(_length(obj.get("product_items")))
        elif message_type == "edit" and not nested and isinstance(obj, Mapping):
            # The new version of the message is parsed like a message of its type.
            inner = obj.get("message")
            if isinstance(inner, Mapping):
                inner_type = inner.get("type")
                if isinstance(inner_type, str):
                    self._spend_content(inner, inner_type, nested=True)
