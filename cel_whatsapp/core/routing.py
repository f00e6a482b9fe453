"""Which update goes where: the assistant, or one of the connector's callbacks.

By default the assistant answers only what a person wrote (text, media,
location, contacts, interactive and button replies, orders). Reactions and
system notices go to ``on_reaction`` / ``on_system``, delivery statuses to
``on_status``, account errors (``value.errors``) to ``on_error``; ``on_update``
sees every message and status first. Edits, revokes, ``request_welcome``, and
messages of unknown types reach only ``on_update`` unless ``assistant_types``
says otherwise. Echoes of what the business itself sent never reach the
assistant: answering them would talk to ourselves.

One POST may hold thousands of updates whose strings (error titles, message
types) are chosen by whoever posts it: what is routed is logged in one
bounded summary line per POST, never a line per item.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Literal, TypeAlias

from ..model import Message, StatusEvent, Update, WebhookError
from . import answering
from .parsing import ParsedWebhook

logger = logging.getLogger(__name__)

#: The message types a person wrote: what the assistant gets by default.
PERSON_TYPES: frozenset[str] = frozenset(
    {
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "order",
    }
)

#: ``assistant_types="all"``: every message type (echoes excepted).
ALL_TYPES: Literal["all"] = "all"

# Bounds of the summary lines: a few distinct values, each cut short.
_MAX_CODES = 10
_MAX_TITLES = 3
_MAX_TITLE_CHARS = 80
_MAX_CODE_CHARS = 20
_MAX_TYPES = 10
_MAX_TYPE_CHARS = 40

AssistantTypes: TypeAlias = Collection[str] | Literal["all"] | None
MessageCallback: TypeAlias = Callable[[Message], Any]
StatusCallback: TypeAlias = Callable[[StatusEvent], Any]
ErrorCallback: TypeAlias = Callable[[WebhookError], Any]
UpdateCallback: TypeAlias = Callable[[Update], Any]


def resolve_assistant_types(value: AssistantTypes) -> frozenset[str] | None:
    """Normalise ``assistant_types``: ``None`` means every type.

    ``None`` (the argument) gives :data:`PERSON_TYPES`; ``"all"`` gives
    ``None`` (no filter); any other collection of type names is used as is.
    """
    if value is None:
        return PERSON_TYPES
    if isinstance(value, str):
        if value == ALL_TYPES:
            return None
        raise ValueError(
            f"assistant_types must be 'all' or a collection of message types, not {value!r}"
        )
    types = frozenset(value)
    for item in types:
        if not isinstance(item, str):
            raise TypeError(f"assistant_types must hold type names (str), not {item!r}")
    return types


class UpdateRouter:
    """Hands each parsed update to the assistant or to a callback.

    A callback that raises is logged with its stack trace; the other updates
    of the batch are still routed and the webhook is still acknowledged.
    """

    def __init__(self, *, assistant_types: AssistantTypes = None) -> None:
        self.assistant_types = resolve_assistant_types(assistant_types)
        self.on_reaction: MessageCallback | None = None
        self.on_system: MessageCallback | None = None
        self.on_status: StatusCallback | None = None
        self.on_error: ErrorCallback | None = None
        self.on_update: UpdateCallback | None = None

    def for_assistant(self, message: Message) -> bool:
        """Whether the assistant answers ``message``."""
        if message.metadata.get("echo"):
            return False
        return self.assistant_types is None or message.type in self.assistant_types

    def route(
        self,
        parsed: ParsedWebhook,
        deliver: Callable[[list[Message]], Sequence[Message] | None],
    ) -> list[Message]:
        """Run the callbacks for ``parsed``, then ``deliver`` what the assistant answers.

        Returns the messages ``deliver`` could not accept (a full pool), for
        the webhook to hand back to Meta.
        """
        if parsed.errors:
            _log_errors(parsed.errors)
        for error in parsed.errors:
            self._call(self.on_error, error, "on_error")
        to_assistant: list[Message] = []
        others: Counter[str] | None = None  # made for the first message not answered
        for message in parsed.messages:
            if self.on_update is not None:  # the calls only when set: every message comes here
                self._call(self.on_update, message, "on_update")
            echo = message.metadata.get("echo")
            if message.type == "reaction" and not echo:
                self._call(self.on_reaction, message, "on_reaction")
            elif message.type == "system" and not echo:
                self._call(self.on_system, message, "on_system")
            if self.for_assistant(message):
                to_assistant.append(message)
            else:
                if others is None:
                    others = Counter()
                _tally(others, "echo" if echo else message.type)
        if others:
            logger.debug(
                "%d message(s) not for the assistant: %s",
                others.total(),
                _describe_counts(others),
            )
        for status in parsed.statuses:
            if self.on_update is not None:
                self._call(self.on_update, status, "on_update")
            if self.on_status is not None:
                self._call(self.on_status, status, "on_status")
        if not to_assistant:
            return []
        return list(deliver(to_assistant) or ())

    @staticmethod
    def _call(callback: Callable[[Any], Any] | None, update: Any, name: str) -> None:
        if callback is None:
            return
        # Log lines made meanwhile (ours, and the callback's through a handler with
        # MessageLogFilter) name the message, or the message a status is about.
        about: contextlib.AbstractContextManager[Any]
        if isinstance(update, Message):
            about = answering.about(update.id, update.lead.phone_number_id)
        elif isinstance(update, StatusEvent):
            about = answering.about(update.message_id, update.phone_number_id)
        else:
            about = contextlib.nullcontext()
        with about:
            try:
                callback(update)
            except Exception:
                # User code failed: log with the stack trace; keep routing the batch.
                logger.exception("the %s callback failed on %s", name, _describe(update))


def _log_errors(errors: Sequence[WebhookError]) -> None:
    """One WARNING for all of a POST's ``value.errors``: their count, codes and a few titles."""
    codes = _first_distinct((_clip(str(e.code), _MAX_CODE_CHARS) for e in errors), _MAX_CODES)
    titles = _first_distinct(
        (repr(_clip(e.title, _MAX_TITLE_CHARS)) for e in errors if e.title), _MAX_TITLES
    )
    logger.warning(
        "WhatsApp reported %d error(s) in value.errors: codes %s; titles %s",
        len(errors),
        codes,
        titles or "none",
    )


def _first_distinct(values: Iterable[str], limit: int) -> str:
    """The first ``limit`` distinct ``values``, comma-separated; ``...`` when there are more."""
    seen: dict[str, None] = {}
    for value in values:
        if value not in seen:
            if len(seen) == limit:
                return ", ".join([*seen, "..."])
            seen[value] = None
    return ", ".join(seen)


def _tally(counts: Counter[str], key: str) -> None:
    """Count ``key``, or ``"other"`` once ``counts`` holds as many keys as a log line shows."""
    key = _clip(key, _MAX_TYPE_CHARS)
    if key not in counts and len(counts) >= _MAX_TYPES:
        key = "other"
    counts[key] += 1


def _describe_counts(counts: Counter[str]) -> str:
    return ", ".join(f"{key} x{count}" for key, count in counts.most_common())


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, unprintable ones as ``?``: fit for one log line."""
    clipped = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return clipped + "..." if len(text) > limit else clipped


def _describe(update: Any) -> str:
    if isinstance(update, Message):
        return f"message {update.id}"
    if isinstance(update, StatusEvent):
        return f"status {update.status!r} of {update.message_id}"
    if isinstance(update, WebhookError):
        return f"error {update.code}"
    return type(update).__name__
