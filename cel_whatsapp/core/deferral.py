"""Sends that must wait long, kept for later instead of waited for.

Inside a webhook or on the background pool, a send the Graph API holds back
(130429 with ``Retry-After``, 131056 for one user) is waited for in the
thread (:mod:`cel_whatsapp.core.retry`). A job worker should not sleep: its
slot could answer other users meanwhile. Inside ``with deferring(threshold)
as deferral:`` a wait longer than ``threshold`` seconds is not slept.
:meth:`~cel_whatsapp.core.outbox.Outbox.post` keeps that payload and every
later one of the answer, in order, without sending them; the job then sends
``deferral.kept`` after ``deferral.wait`` seconds (a Celery retry with a
countdown, see :mod:`cel_whatsapp.celery`).

The assistant still runs to its end in the first job: the rest of the
answer is what it produced, not a second run of it, so an assistant that
would answer differently the second time (a language model) never mixes two
answers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ..errors import RateLimitError


class SendDeferredError(RateLimitError):
    """A send would have to wait ``seconds``, longer than the deferral threshold.

    Raised by the retrier inside :meth:`Deferral.armed`; the outbox catches
    it and keeps the payload. Never reaches user code.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"send deferred: the Graph API asked for a wait of {seconds:.1f}s", retryable=True
        )
        self.seconds = seconds


class Deferral:
    """The sends of one answer held back, and how long to wait before sending them."""

    def __init__(self, threshold: float) -> None:
        #: Waits longer than this many seconds are deferred, not slept.
        self.threshold = threshold
        #: ``(phone_number_id, payload)`` of each send held back, in order.
        self.kept: list[tuple[str, dict[str, Any]]] = []
        #: Seconds to wait before sending :attr:`kept` (0 while nothing is held).
        self.wait = 0.0
        # Set while one Outbox.post runs: only a send's own waits are deferred
        # (an upload or download the assistant makes still waits as usual).
        self._armed = threading.local()

    def __repr__(self) -> str:
        return f"Deferral(threshold={self.threshold!r}, kept={len(self.kept)}, wait={self.wait!r})"

    @property
    def holding(self) -> bool:
        """Whether sends are held: every later send of the answer is kept too, for order."""
        return bool(self.kept)

    def keep(self, phone_number_id: str, payload: Mapping[str, Any], wait: float = 0.0) -> None:
        """Hold ``payload`` back; ``wait`` is what the Graph API asked for, if it asked."""
        self.kept.append((phone_number_id, dict(payload)))
        self.wait = max(self.wait, wait)

    @contextmanager
    def armed(self) -> Iterator[None]:
        """Within this block (in this thread), long retry waits raise :class:`SendDeferredError`."""
        self._armed.on = True
        try:
            yield
        finally:
            self._armed.on = False

    def defers(self, seconds: float) -> bool:
        """Whether a wait of ``seconds`` is deferred here and now."""
        return seconds > self.threshold and bool(getattr(self._armed, "on", False))


_deferral: ContextVar[Deferral | None] = ContextVar("cel_whatsapp_deferral", default=None)


@contextmanager
def deferring(threshold: float) -> Iterator[Deferral]:
    """Within this block, sends that must wait more than ``threshold`` seconds are kept."""
    deferral = Deferral(threshold)
    token = _deferral.set(deferral)
    try:
        yield deferral
    finally:
        _deferral.reset(token)


def current_deferral() -> Deferral | None:
    """The deferral in force here (``None`` outside :func:`deferring`)."""
    return _deferral.get()


def check_wait(seconds: float) -> None:
    """Raise :class:`SendDeferredError` if a wait of ``seconds`` is deferred here.

    The retrier calls it before each wait it would sleep.
    """
    deferral = _deferral.get()
    if deferral is not None and deferral.defers(seconds):
        raise SendDeferredError(seconds)
