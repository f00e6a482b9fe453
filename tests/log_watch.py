"""Waiting for a log record instead of sleeping.

The package says in its log when it reaches a state worth waiting for (a
shutdown has begun, a retry is about to wait). A test that needs that state
waits for the record: it goes on the moment the state is reached, and a
slow machine makes it slower, never wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class LogWatch(logging.Handler):
    """Keeps the records it handles and wakes whoever waits for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10.0) -> logging.LogRecord:
        """The first record whose message contains ``text``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for record in self.records:
                    if text in record.getMessage():
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [record.getMessage() for record in self.records]
                    raise AssertionError(f"{text!r} not logged within {timeout}s; logged: {seen}")
                self._changed.wait(remaining)


@contextmanager
def watching(name: str = "cel_whatsapp", level: int = logging.INFO) -> Iterator[LogWatch]:
    """A :class:`LogWatch` on logger ``name`` at ``level`` while the block runs."""
    logger = logging.getLogger(name)
    watch = LogWatch()
    previous = logger.level
    logger.addHandler(watch)
    if previous == logging.NOTSET or previous > level:
        logger.setLevel(level)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(previous)
