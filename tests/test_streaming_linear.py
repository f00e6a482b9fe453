"""The sentence streamer looks at each character a bounded number of times.

An assistant may yield 100,000 one-character chunks with no sentence end in
sight; the streamer must not rescan what it has already seen on every push.
The cost is counted, not timed: the sentence-end regex is wrapped to count the
characters it walks over.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cel_whatsapp.core import _sentences as sentences
from cel_whatsapp.core._sentences import boundaries, split_text
from cel_whatsapp.core.streaming import StreamMode, TextStreamer

CHUNKS = 100_000


class CountingPattern:
    """Wraps a compiled pattern; counts the characters its ``finditer`` and ``match`` walk."""

    def __init__(self, pattern: Any) -> None:
        self.pattern = pattern
        self.scanned = 0

    def finditer(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> Iterator[Any]:
        end = min(len(text), endpos)
        reached = pos
        try:
            for match in self.pattern.finditer(text, pos, end):
                reached = match.end()
                yield match
            reached = end
        finally:
            self.scanned += reached - pos

    def match(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        found = self.pattern.match(text, pos, endpos)
        self.scanned += (found.end() if found else min(len(text), endpos)) - pos
        return found


class Counted:
    """The characters walked by the sentence-end regex and the look-ahead for the next word."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.patterns = [
            CountingPattern(sentences._CANDIDATE),
            CountingPattern(sentences._NEXT_VISIBLE),
        ]
        monkeypatch.setattr(sentences, "_CANDIDATE", self.patterns[0])
        monkeypatch.setattr(sentences, "_NEXT_VISIBLE", self.patterns[1])

    @property
    def scanned(self) -> int:
        return sum(pattern.scanned for pattern in self.patterns)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    return Counted(monkeypatch)


def _stream_one_by_one(text: str) -> list[str]:
    streamer = TextStreamer(StreamMode.SENTENCE)
    pieces: list[str] = []
    for character in text:
        pieces += streamer.push(character)
    return pieces + streamer.flush()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(("word " * CHUNKS)[:CHUNKS], id="words-no-sentence-end"),
        pytest.param("x" * CHUNKS, id="no-whitespace"),
        pytest.param(
            ("A sentence that ends after fifty characters. " * CHUNKS)[:CHUNKS], id="ends"
        ),
        pytest.param(("```\n" + "x = compute(y)  # code\n" * CHUNKS)[:CHUNKS], id="fenced-code"),
        pytest.param(("Dr. Who and e.g. Mr. X " * CHUNKS)[:CHUNKS], id="abbreviations"),
        pytest.param(("End." + " " * CHUNKS)[:CHUNKS], id="ending-waits-for-next-word"),
    ],
)
def test_sentence_scanning_is_linear_in_the_text(counted: Counted, text: str) -> None:
    pieces = _stream_one_by_one(text)
    assert len(text) == CHUNKS
    # Before: every push rescanned the whole pending text (up to 4096
    # characters): about 2,000 characters per character streamed.
    assert counted.scanned <= 3 * CHUNKS, counted.scanned
    assert "".join("".join(pieces).split()) == "".join(text.split())
    assert all(0 < len(piece) <= 4096 for piece in pieces)


# -- the same pieces as before ----------------------------------------------------


class RescanningStreamer:
    """The sentence streamer before it became incremental: every push rescans all
    pending text (kept here to prove the pieces, and when they come, are the same)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = ""

    def push(self, chunk: str) -> list[str]:
        if not chunk:
            return []
        self.buffer += chunk
        cut = 0
        for cut in boundaries(self.buffer, final=False):  # noqa: B007 - the last one counts
            pass
        if cut == 0 and len(self.buffer) <= self.limit:
            return []
        ready, rest = self.buffer[:cut], self.buffer[cut:]
        pieces: list[str] = []
        previous = 0
        for end in [*boundaries(ready, final=True), len(ready)]:
            if end > previous:
                pieces += split_text(ready[previous:end], self.limit)
                previous = end
        if len(rest) > self.limit:
            over = split_text(rest, self.limit)
            rest = over.pop() if over else ""  # (it raised on whitespace only)
            pieces += over
        self.buffer = rest
        return pieces

    def flush(self) -> list[str]:
        text, self.buffer = self.buffer, ""
        return split_text(text, self.limit) if text else []


_ALPHABET = st.sampled_from(
    [*"aAbZ19 \n\t.!?…\"')`", "```", "Dr.", "e.g.", "2. ", "\n\n", "  ", "...", "x."]
)
_CHUNKS = st.lists(st.lists(_ALPHABET, max_size=12).map("".join), max_size=40)


@settings(max_examples=500, deadline=None)
@given(_CHUNKS, st.integers(8, 60))
def test_each_push_returns_the_same_pieces_as_rescanning(chunks: list[str], limit: int) -> None:
    streamer = TextStreamer(StreamMode.SENTENCE, limit=limit)
    reference = RescanningStreamer(limit)
    for chunk in chunks:
        assert streamer.push(chunk) == reference.push(chunk)
    assert streamer.flush() == reference.flush()


def test_whitespace_over_the_limit_is_dropped_not_an_error() -> None:
    streamer = TextStreamer(StreamMode.SENTENCE, limit=8)
    assert streamer.push(" " * 20) == []
    assert streamer.push("Hi. There") == ["Hi."]
    assert streamer.flush() == ["There"]
