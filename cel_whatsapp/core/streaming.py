"""Stream modes: how an assistant's text chunks become WhatsApp messages."""

from __future__ import annotations

import enum

from ..config import TEXT_LIMIT
from ._sentences import SentenceScanner, boundaries, split_text


class StreamMode(str, enum.Enum):
    """How text chunks from the assistant are grouped into messages.

    ``SENTENCE`` (default) sends each sentence as soon as it is complete;
    ``FULL`` waits for the whole answer and sends it once; ``DIRECT`` sends
    every chunk as it arrives.
    """

    SENTENCE = "sentence"
    FULL = "full"
    DIRECT = "direct"

    def __str__(self) -> str:
        return self.value


class TextStreamer:
    """Collects text chunks and says which pieces are ready to send.

    ``push`` takes the next chunk and returns the pieces that are complete;
    ``flush`` returns whatever is pending (the end of the answer, or a rich
    reply about to be sent, which must not overtake earlier text). Every piece
    is stripped, non-empty and at most ``limit`` characters long.

    The cost of a push does not grow with the text pending: in ``SENTENCE``
    mode a :class:`~cel_whatsapp.core._sentences.SentenceScanner` looks at each
    character a bounded number of times, and the pending chunks are joined
    only when a piece is ready.
    """

    __slots__ = ("_buffer", "_scanner", "_size", "limit", "mode")

    def __init__(
        self, mode: StreamMode | str = StreamMode.SENTENCE, limit: int = TEXT_LIMIT
    ) -> None:
        # One streamer per answer: a member given as is skips the enum's lookup.
        self.mode = mode if isinstance(mode, StreamMode) else StreamMode(mode)
        self.limit = limit
        self._buffer: list[str] = []
        self._size = 0  # characters in _buffer
        # Made on the first SENTENCE push: the other modes never look for sentence ends.
        self._scanner: SentenceScanner | None = None

    def push(self, chunk: str) -> list[str]:
        if not chunk:
            return []
        if self.mode is StreamMode.DIRECT:
            return split_text(chunk, self.limit)
        self._buffer.append(chunk)
        self._size += len(chunk)
        if self.mode is StreamMode.FULL:
            return []
        cut = self._sentences().feed(chunk)
        if cut == 0 and self._size <= self.limit:
            return []
        return self._complete_sentences(cut)

    def flush(self) -> list[str]:
        text = "".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        if self._scanner is not None:
            self._scanner.reset()
        return split_text(text, self.limit) if text else []

    @property
    def pending(self) -> str:
        """Text received but not yet returned as a piece."""
        return "".join(self._buffer)

    def _sentences(self) -> SentenceScanner:
        if self._scanner is None:
            self._scanner = SentenceScanner()
        return self._scanner

    def _complete_sentences(self, cut: int) -> list[str]:
        """The pieces before ``cut`` (the end of the last complete sentence), and any
        over the limit after it."""
        text = "".join(self._buffer)
        ready, rest = text[:cut], text[cut:]
        pieces: list[str] = []
        for sentence_end in _cuts(ready):
            pieces.extend(split_text(sentence_end, self.limit))
        if len(rest) > self.limit:
            # One sentence already longer than a message: send what is over,
            # and look at what is left as new text. (Only whitespace over the
            # limit splits into nothing at all.)
            over = split_text(rest, self.limit)
            rest = over.pop() if over else ""
            pieces.extend(over)
            self._sentences().reset(rest)
        else:
            self._sentences().consume(cut)
        self._buffer[:] = [rest] if rest else []
        self._size = len(rest)
        return pieces


def _cuts(text: str) -> list[str]:
    """Split text made of complete sentences into one string per sentence."""
    pieces = []
    previous = 0
    for end in boundaries(text, final=True):
        pieces.append(text[previous:end])
        previous = end
    if previous < len(text):
        pieces.append(text[previous:])
    return pieces
