"""What each worker thread of the background dispatcher is answering, and since when.

:class:`AnswerWatch` keeps one slot per worker thread (set when an answer
starts, cleared when it ends: O(1) per message) and, on one thread of its
own, warns about answers that run too long:

- an answer running past ``slow_after`` seconds is logged (message id and
  business phone number id, never the user's number) as a WARNING, and
  again each time its running time doubles, so a stuck answer is reported a
  handful of times, not once a second;
- when every worker thread holds such an answer, one ERROR says the pool is
  full: accepted messages queue up, and past ``max_pending`` the webhook
  answers 503. It is logged again only after a thread came free.

The watching thread sleeps until the next answer could become slow, so an
idle pool costs one wake-up every ``slow_after`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..model import Message
from .answering import message_fields

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Running:
    """One answer in progress on a worker thread."""

    message: Message
    #: ``time.monotonic()`` when the answer started.
    started: float
    #: Running time (seconds) at which it is reported next.
    report_at: float


class AnswerWatch:
    """The answers in progress on ``threads`` worker threads; reports slow ones.

    ``slow_after`` of ``None`` keeps the table (shutdown lists what is in
    progress) without the watching thread. ``pending`` returns how many
    accepted messages are not answered yet; ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        threads: int,
        slow_after: float | None,
        pending: Callable[[], int],
        max_pending: int,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slow_after is not None and slow_after <= 0:
            raise ValueError("slow_answer_after must be positive (or None to turn it off)")
        self.slow_after = slow_after
        self._slots: list[Running | None] = [None] * threads
        self._pending = pending
        self._max_pending = max_pending
        self._name = name
        self._clock = clock
        self._stop = threading.Event()
        self._pool_full = False  # the "pool full" error was logged and still holds
        self._thread: threading.Thread | None = None

    # -- from the worker threads ------------------------------------------------------

    def begin(self, slot: int, message: Message) -> None:
        """Worker thread ``slot`` starts answering ``message``."""
        after = self.slow_after
        self._slots[slot] = Running(message, self._clock(), after if after else 0.0)

    def end(self, slot: int) -> None:
        """Worker thread ``slot`` is done with its answer."""
        running = self._slots[slot]
        self._slots[slot] = None
        if running is None or self.slow_after is None:
            return
        if running.report_at > self.slow_after:  # it was reported as slow
            logger.info(
                "message %s was answered after all, in %.1fs",
                running.message.id,
                self._clock() - running.started,
                extra=message_fields(running.message),
            )
        if self._pool_full:
            self._pool_full = False
            logger.info("background dispatch has a free worker thread again")

    # -- reading --------------------------------------------------------------------

    def running(self) -> list[Message]:
        """The messages being answered right now."""
        return [running.message for running in list(self._slots) if running is not None]

    # -- the watching thread ----------------------------------------------------------

    def start(self) -> None:
        """Start the watching thread (once; not at all when ``slow_after`` is ``None``)."""
        if self.slow_after is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._watch, args=(self.slow_after,), name=f"{self._name}-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> threading.Thread | None:
        """Stop watching; return the thread to join, if any."""
        self._stop.set()
        return self._thread

    def _watch(self, slow_after: float) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.check(slow_after))

    def check(self, slow_after: float) -> float:
        """Report what is slow now; return the seconds until the next check."""
        now = self._clock()
        wait = slow_after
        stuck = 0
        for slot, running in enumerate(list(self._slots)):
            if running is None:
                continue
            elapsed = now - running.started
            stuck += elapsed >= slow_after
            if elapsed >= running.report_at:
                running.report_at = max(running.report_at * 2, elapsed)
                logger.warning(
                    "the answer to message %s (business number id %s) has been running for "
                    "%.1fs on %s-%d; the assistant may be stuck",
                    running.message.id,
                    running.message.lead.phone_number_id,
                    elapsed,
                    self._name,
                    slot,
                    extra=message_fields(running.message),
                )
            wait = min(wait, running.report_at - elapsed)
        if stuck == len(self._slots) and not self._pool_full:
            self._pool_full = True
            logger.error(
                "all %d background worker threads are busy with answers running over %.1fs: "
                "%d accepted message(s) pending; new messages queue up, and past %d pending "
                "the webhook answers 503",
                len(self._slots),
                slow_after,
                self._pending(),
                self._max_pending,
            )
        return max(wait, 0.01)
