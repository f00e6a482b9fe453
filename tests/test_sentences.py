"""Sentence boundaries and the 4096-character splitter (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cel_whatsapp.core._sentences import split_text
from cel_whatsapp.core.streaming import StreamMode, TextStreamer


def _sentences(text: str) -> list[str]:
    streamer = TextStreamer(StreamMode.SENTENCE)
    return streamer.push(text) + streamer.flush()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello. World!", ["Hello.", "World!"]),
        ("Ask Dr. Smith. He knows.", ["Ask Dr. Smith.", "He knows."]),
        ("Use e.g. a fork. Or i.e. a spoon.", ["Use e.g. a fork.", "Or i.e. a spoon."]),
        ("It costs 3.5 euros. Cheap!", ["It costs 3.5 euros.", "Cheap!"]),
        (
            "Visit https://example.com/a.b?x=1. Then rest.",
            ["Visit https://example.com/a.b?x=1.", "Then rest."],
        ),
        ("Mail me at a.b@c.org. Thanks.", ["Mail me at a.b@c.org.", "Thanks."]),
        ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("Really?! Wow... that is odd. End", ["Really?!", "Wow... that is odd.", "End"]),
        ("Menu:\n- coffee\n- tea\nPick one.", ["Menu:", "- coffee", "- tea", "Pick one."]),
        ("1. First\n2. Second", ["1. First", "2. Second"]),
        (
            "Code:\n```\nx = 1\ny = 2. z\n```\nDone.",
            ["Code:", "```\nx = 1\ny = 2. z\n```", "Done."],
        ),
        ("  \n\n  ", []),
        ("no ending at all", ["no ending at all"]),
    ],
)
def test_sentence_pieces(text: str, expected: list[str]) -> None:
    assert _sentences(text) == expected


def test_pieces_wait_for_what_follows_a_period() -> None:
    streamer = TextStreamer(StreamMode.SENTENCE)
    assert streamer.push("The value is 3.") == []
    assert streamer.push("5 now. ") == []  # "now. " could still be "now. e.g." ...
    assert streamer.push("Next") == ["The value is 3.5 now."]
    assert streamer.push(" one!\n") == ["Next one!"]
    assert streamer.flush() == []


@given(st.lists(st.text(max_size=40), max_size=30))
def test_streaming_keeps_every_non_space_character_in_order(chunks: list[str]) -> None:
    for mode in StreamMode:
        streamer = TextStreamer(mode, limit=50)
        pieces: list[str] = []
        for chunk in chunks:
            pieces += streamer.push(chunk)
        pieces += streamer.flush()
        assert all(piece and piece == piece.strip() and len(piece) <= 50 for piece in pieces)
        assert "".join("".join(pieces).split()) == "".join("".join(chunks).split())


def test_split_prefers_paragraphs() -> None:
    para = "Sentence here. " * 200  # 3000 characters
    pieces = split_text(para + "\n\n" + para + "\n\n" + para)
    assert [len(p) for p in pieces] == [len(para.strip())] * 3


def test_split_falls_back_to_sentences_then_words() -> None:
    sentence = "Word " * 100 + "end. "  # 505 characters
    text = sentence * 20  # one 10,100-character paragraph
    pieces = split_text(text)
    assert all(len(p) <= 4096 for p in pieces)
    assert all(p.endswith("end.") for p in pieces)
    words = "lorem " * 2000
    pieces = split_text(words)
    assert all(len(p) <= 4096 for p in pieces)
    assert all(not p.startswith("orem") for p in pieces)  # never inside a word
    assert " ".join(pieces).split() == words.split()


def test_only_a_word_longer_than_the_limit_is_cut() -> None:
    pieces = split_text("short " + "x" * 5000 + " tail")
    assert pieces == ["short", "x" * 4096, "x" * 904 + " tail"]


@given(st.text(min_size=1, max_size=3000), st.integers(min_value=20, max_value=500))
def test_split_respects_limit_and_loses_nothing(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())
