"""The simulator's event feed: what the chat page shows, in order.

Each event is a small JSON-ready dict with a sequence number (``seq``), a
``kind`` and the user (phone number) it belongs to. The page asks for the
events after the last ``seq`` it has seen; ``epoch`` changes when the feed is
cleared or the hub restarts, so the page knows to start over.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from typing import Any

#: Event kinds, for readers of the feed.
USER_MESSAGE = "user"  # the simulated user sent a message (Meta-shaped ``message``)
DELIVERY = "delivery"  # the webhook carrying a user message was answered (``ok``, ``status``)
BOT_MESSAGE = "bot"  # the bot sent a message (the Cloud API ``payload`` it posted)
REFUSED = "refused"  # the bot's send was refused by the (fake) Graph API (``error``)
READ = "read"  # the bot marked a user message read
TYPING = "typing"  # the bot showed the typing indicator
CLEARED = "cleared"  # the conversation was cleared


class EventFeed:
    """A bounded, thread-safe list of events that readers can wait on."""

    def __init__(self, limit: int = 5000) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=limit)
        self._seq = 0
        self._changed = threading.Condition()
        self.epoch = secrets.token_hex(6)

    def add(self, kind: str, user: str | None, **fields: Any) -> dict[str, Any]:
        """Append one event and wake the waiting readers."""
        with self._changed:
            self._seq += 1
            event = {"seq": self._seq, "kind": kind, "user": user, "at": time.time(), **fields}
            self._events.append(event)
            self._changed.notify_all()
            return event

    def after(
        self, seq: int, *, user: str | None = None, wait: float = 0.0
    ) -> tuple[list[dict[str, Any]], int]:
        """Events with a sequence number above ``seq`` (for ``user``), and the last number.

        With ``wait`` > 0 and nothing new, blocks up to that many seconds.
        """
        deadline = time.monotonic() + max(0.0, wait)
        with self._changed:
            while True:
                found = [
                    e
                    for e in self._events
                    if e["seq"] > seq and (user is None or e["user"] in (None, user))
                ]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found, self._seq
                self._changed.wait(remaining)

    def find(self, kind: str, **match: Any) -> dict[str, Any] | None:
        """The most recent event of ``kind`` whose fields equal ``match``."""
        with self._changed:
            for event in reversed(self._events):
                if event["kind"] == kind and all(event.get(k) == v for k, v in match.items()):
                    found: dict[str, Any] = event
                    return found
        return None

    def clear(self) -> None:
        """Forget every event and start a new epoch."""
        with self._changed:
            self._events.clear()
            self.epoch = secrets.token_hex(6)
            self._changed.notify_all()
