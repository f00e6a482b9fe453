"""The message being answered on this thread, for log records and the first-reply time.

While a message is handled (:meth:`~cel_whatsapp.core.engine.WhatsappCore.handle`,
on the background pool's threads as inside a request), :func:`current` says
which: its id, the business number that received it, and when the webhook
handed it over. Two things read it:

- :class:`MessageLogFilter`, which puts ``wa_message_id`` and
  ``wa_phone_number_id`` on every log record made meanwhile, so that JSON
  log formatters show them. It is on every logger of the package
  (:func:`attach_to_package`); attach it to a handler of your own and the
  assistant's log lines get the two fields too. Lines about a message logged outside an
  answer (the webhook, the pool's watch) pass them with ``extra=``
  (:func:`message_fields`);
- the ``whatsapp_first_reply_seconds`` metric, timed from when the message
  was handed over to the first send of its answer that Meta accepted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

from ..model import Message
from .dedup import safe_key

__all__ = [
    "MESSAGE_ID_FIELD",
    "PHONE_NUMBER_ID_FIELD",
    "Answering",
    "MessageLogFilter",
    "about",
    "attach_to_package",
    "current",
    "message_fields",
]

#: The log record attribute holding the id (wamid) of the message a line is about.
MESSAGE_ID_FIELD = "wa_message_id"
#: The log record attribute holding the business number id that received it.
PHONE_NUMBER_ID_FIELD = "wa_phone_number_id"


@dataclass(slots=True)
class Answering:
    """One message being answered here."""

    #: The message's id, bounded (a long or odd id is replaced by its SHA-256).
    message_id: str
    #: The business number that received it (``None`` when unknown).
    phone_number_id: str | None
    #: ``time.monotonic()`` when the webhook handed it over (``None``: not timed).
    received_at: float | None = None
    #: Whether Meta has accepted a message of its answer yet.
    replied: bool = False


_current: ContextVar[Answering | None] = ContextVar("cel_whatsapp_message", default=None)


def current() -> Answering | None:
    """The message being answered in this thread or task, if any."""
    return _current.get()


def begin(
    message_id: str, phone_number_id: str | None, received_at: float | None = None
) -> Token[Answering | None]:
    """Make a message the one being answered until :func:`end` is given the token returned.

    :func:`about` as two calls, for the path every message takes.
    """
    return _current.set(Answering(safe_key(message_id), phone_number_id or None, received_at))


def end(token: Token[Answering | None]) -> None:
    """Restore what was being answered before the :func:`begin` that returned ``token``."""
    _current.reset(token)


@contextmanager
def about(
    message_id: str, phone_number_id: str | None, received_at: float | None = None
) -> Iterator[Answering]:
    """Make a message the one being answered for the body of the ``with``."""
    state = Answering(safe_key(message_id), phone_number_id or None, received_at)
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)


def message_fields(message: Message) -> dict[str, str | None]:
    """``extra=`` for a log line about ``message`` made outside its answer."""
    return {
        MESSAGE_ID_FIELD: safe_key(message.id),
        PHONE_NUMBER_ID_FIELD: message.lead.phone_number_id or None,
    }


class MessageLogFilter(logging.Filter):
    """Adds ``wa_message_id`` and ``wa_phone_number_id`` to records made during an answer.

    Fields passed with ``extra=`` are kept. Records made outside an answer
    pass unchanged. Attach it to a logger (it then sees that logger's own
    records) or to a handler (every record the handler emits):

    .. code-block:: python

        handler.addFilter(cel_whatsapp.MessageLogFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        state = _current.get()
        if state is not None and not hasattr(record, MESSAGE_ID_FIELD):
            setattr(record, MESSAGE_ID_FIELD, state.message_id)
            setattr(record, PHONE_NUMBER_ID_FIELD, state.phone_number_id)
        return True


#: The filter on the package's own loggers.
PACKAGE_FILTER = MessageLogFilter()


def attach_to_package(package: str, directory: str) -> None:
    """Put :data:`PACKAGE_FILTER` on the logger of every module of ``package``.

    A filter on a logger sees only the records of that logger, not those of
    its children, so each module's logger (``logging.getLogger(__name__)``)
    gets it; loggers are created by name here, before their modules are
    imported, and a module imported later finds its logger with the filter.
    Run once, from the package's ``__init__``.
    """
    names = {package}
    for folder, subfolders, files in os.walk(directory):
        subfolders[:] = [n for n in subfolders if n.isidentifier() and not n.startswith("__")]
        relative = os.path.relpath(folder, directory)
        prefix = package if relative == "." else f"{package}.{relative.replace(os.sep, '.')}"
        names.add(prefix)
        names.update(
            f"{prefix}.{name[:-3]}"
            for name in files
            if name.endswith(".py") and name != "__init__.py"
        )
    for name in sorted(names):
        logger = logging.getLogger(name)
        if PACKAGE_FILTER not in logger.filters:
            logger.addFilter(PACKAGE_FILTER)
