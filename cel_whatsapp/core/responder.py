"""Run the assistant for one message and send what it answers.

Framework-free: takes a :class:`~cel_whatsapp.model.Message`, calls the user's
assistant, turns its result (a string, a stream of chunks, rich replies, or
``None``) into Cloud API sends through a :class:`~cel_whatsapp.core.graph.GraphClient`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import cast

from ..config import DEFAULT_MAX_MESSAGES_PER_ANSWER, DEFAULT_POLICY
from ..errors import GraphAPIError
from ..model import Lead, Message
from ..replies import Reply
from . import tracing
from ._sentences import split_text
from .dedup import safe_key
from .graph import GraphClient
from .metrics import Metrics, message_type_label
from .outbox import Outbox
from .streaming import StreamMode, TextStreamer

logger = logging.getLogger(__name__)

#: What an assistant may return.
AssistantResult = str | Reply | Iterable[str | Reply] | None
Assistant = Callable[[Message], AssistantResult]
#: Called with the message being answered and the error, when a send fails for good.
SendErrorHandler = Callable[[Message, GraphAPIError], object]


def iterate_result(result: AssistantResult) -> Iterator[str | Reply]:
    """Yield the pieces of an assistant's result in order, lazily."""
    if result is None:
        return
    if isinstance(result, (str, Reply)):
        yield result
        return
    if isinstance(result, (bytes, bytearray, dict)):
        raise TypeError(
            f"the assistant returned {type(result).__name__}; return a str, an "
            "iterable of str chunks, a reply object or None"
        )
    # None items are allowed (and skipped), though the declared type has none.
    for item in cast("Iterable[str | Reply | None]", result):
        if item is None:
            continue
        if not isinstance(item, (str, Reply)):
            raise TypeError(
                f"the assistant yielded {type(item).__name__}; yield str chunks or reply objects"
            )
        yield item


class _AssistantClock:
    """Adds up the time spent in the assistant: its call, and producing each piece."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0

    def call(self, assistant: Assistant, message: Message) -> AssistantResult:
        started = time.perf_counter()
        try:
            return assistant(message)
        finally:
            self.seconds += time.perf_counter() - started

    def pieces(self, items: Iterator[str | Reply]) -> Iterator[str | Reply]:
        """``items``, timing how long each takes to come (our sends in between are not timed)."""
        clock = time.perf_counter
        while True:
            started = clock()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                self.seconds += clock() - started
            yield item


class _AnswerTooLong(Exception):  # noqa: N818 - a stop signal, not an error
    """Raised inside :meth:`Responder.handle` when an answer reaches its message cap."""


class _Answer:
    """The messages of one answer: their wamids, and how many were sent."""

    __slots__ = ("count", "limit", "wamids")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.wamids: list[str] = []

    def next_message(self) -> None:
        """Count the message about to be sent; raise :class:`_AnswerTooLong` past the cap."""
        if self.count >= self.limit:
            raise _AnswerTooLong
        self.count += 1

    def record(self, wamid: str | None) -> None:
        if wamid:
            self.wamids.append(wamid)


class Responder:
    """Answers messages, each from the business number that received it.

    One answer sends at most ``max_messages_per_answer`` messages (text
    pieces and rich replies alike; read receipts are not counted): past that
    the assistant's result is closed and a warning is logged.
    """

    def __init__(
        self,
        *,
        graph: GraphClient,
        phone_number_id: str,
        outbox_for: Callable[[str], Outbox] | None = None,
        assistant: Callable[[], Assistant | None],
        stream_mode: StreamMode = StreamMode.SENTENCE,
        read_receipts: bool = True,
        limits: str = DEFAULT_POLICY,
        fallback_text: str | None = None,
        on_send_error: Callable[[], SendErrorHandler | None] = lambda: None,
        max_messages_per_answer: int = DEFAULT_MAX_MESSAGES_PER_ANSWER,
        metrics: Metrics | None = None,
    ) -> None:
        if max_messages_per_answer < 1:
            raise ValueError("max_messages_per_answer must be at least 1")
        self.graph = graph
        self.phone_number_id = phone_number_id
        self._assistant = assistant
        self.stream_mode = stream_mode
        self.read_receipts = read_receipts
        #: Sends from the default number; ``outbox_for(number)`` from any other.
        self.outbox = (
            outbox_for(phone_number_id)
            if outbox_for
            else Outbox(graph, phone_number_id, limits=limits)
        )
        self._outbox_for = outbox_for
        self.fallback_text = fallback_text
        self._on_send_error = on_send_error
        self.max_messages_per_answer = max_messages_per_answer
        #: Records the assistant's time (``None``: metrics are off).
        self.metrics = metrics

    def mark_read(self, message_id: str, *, typing: bool = True) -> None:
        """Mark ``message_id`` read, with the typing indicator unless ``typing=False``."""
        self.outbox.mark_read(message_id, typing=typing)

    def outbox_for(self, message: Message) -> Outbox:
        """Sending from the number that received ``message`` (the default one if unknown)."""
        number = message.lead.phone_number_id
        if not number or number == self.phone_number_id or self._outbox_for is None:
            return self.outbox
        return self._outbox_for(number)

    def handle(self, message: Message) -> list[str]:
        """Answer one message; return the wamids of what was sent.

        Never raises: assistant exceptions and Graph errors are logged, since
        the webhook must still be acknowledged.
        """
        assistant = self._assistant()
        if assistant is None:
            logger.warning("no assistant is set; message %s gets no answer", message.id)
            return []
        outbox = self.outbox_for(message)
        if self.read_receipts:
            try:
                outbox.mark_read(message.id, typing=True)
            except GraphAPIError as exc:
                logger.warning("could not mark message %s as read: %s", message.id, exc)
        answer = _Answer(self.max_messages_per_answer)
        streamer = TextStreamer(self.stream_mode)
        result: AssistantResult = None
        clock = _AssistantClock() if self.metrics is not None else None
        attributes = (
            {
                "whatsapp.message.id": safe_key(message.id),
                "whatsapp.message.type": message_type_label(message.type),
            }
            if tracing.enabled()
            else None
        )
        with tracing.span(tracing.ASSISTANT_SPAN, attributes) as span:
            try:
                result = assistant(message) if clock is None else clock.call(assistant, message)
                if type(result) is str and streamer.mode is not StreamMode.SENTENCE:
                    # A whole text, FULL or DIRECT: what push and flush would give.
                    pieces = split_text(result, streamer.limit)
                    self._send_texts(outbox, message.lead, pieces, answer)
                    return answer.wamids
                items = iterate_result(result)
                for item in items if clock is None else clock.pieces(items):
                    if isinstance(item, str):
                        self._send_texts(outbox, message.lead, streamer.push(item), answer)
                    else:
                        # Text already produced goes first, so the order is kept.
                        self._send_texts(outbox, message.lead, streamer.flush(), answer)
                        self._send_reply(outbox, message, item, answer)
                self._send_texts(outbox, message.lead, streamer.flush(), answer)
            except _AnswerTooLong:
                self._too_long(message, answer)
            except GraphAPIError as exc:
                logger.error(
                    "sending the answer to message %s failed after %d sent: %s",
                    message.id,
                    len(answer.wamids),
                    exc,
                )
                tracing.failed(span, exc)
                self._send_error(message, exc)
            except Exception as exc:
                # The user's assistant (or its generator) raised: log with the stack
                # trace; the webhook is still acknowledged.
                logger.exception("the assistant failed on message %s", message.id)
                tracing.failed(span, exc)
                self._send_fallback(outbox, message, answer)
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
                if clock is not None and self.metrics is not None:
                    self.metrics.assistant_ran(clock.seconds)
        return answer.wamids

    def _too_long(self, message: Message, answer: _Answer) -> None:
        logger.warning(
            "the answer to message %s reached max_messages_per_answer (%d messages sent): "
            "the rest of it is dropped and the assistant's generator closed",
            message.id,
            answer.count,
        )

    def _send_fallback(self, outbox: Outbox, message: Message, answer: _Answer) -> None:
        if not self.fallback_text:
            return
        try:
            self._send_texts(outbox, message.lead, [self.fallback_text], answer)
        except _AnswerTooLong:
            self._too_long(message, answer)
        except GraphAPIError as exc:
            logger.error("sending the fallback text for message %s failed: %s", message.id, exc)
            self._send_error(message, exc)

    def _send_error(self, message: Message, error: GraphAPIError) -> None:
        handler = self._on_send_error()
        if handler is None:
            return
        try:
            handler(message, error)
        except Exception:
            logger.exception("the on_send_error handler raised on message %s", message.id)

    def _send_texts(self, outbox: Outbox, lead: Lead, pieces: list[str], answer: _Answer) -> None:
        for piece in pieces:
            answer.next_message()
            answer.record(outbox.send_text(lead.recipient, piece))

    def _send_reply(self, outbox: Outbox, message: Message, item: Reply, answer: _Answer) -> None:
        # Prepared first: a reply may become several messages (a long text
        # split, a header sent apart), each counted against the cap.
        for reply in outbox.prepare(item, answering=message.id):
            answer.next_message()
            answer.wamids.extend(outbox.send(message.lead.recipient, reply, answering=message.id))
