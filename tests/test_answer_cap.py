"""One answer sends at most ``max_messages_per_answer`` messages, then stops."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cel_whatsapp import Location, Message, StreamMode, Text
from cel_whatsapp.config import DEFAULT_MAX_MESSAGES_PER_ANSWER
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import MakeConnector, make_app, post_webhook

FALLBACK = "Sorry, something went wrong."


class Runaway:
    """A generator of many chunks that records how far it was read and whether it was closed."""

    def __init__(self, chunks: Iterator[object], *, give_up_after: int) -> None:
        self.chunks = chunks
        self.give_up_after = give_up_after
        self.yielded = 0
        self.closed = False

    def __call__(self, message: Message) -> Iterator[object]:
        try:
            for chunk in self.chunks:
                if self.yielded >= self.give_up_after:
                    # Keeps the run short where nothing stops the answer: the
                    # test then fails on what was sent, not by running for minutes.
                    raise RuntimeError("nobody stopped reading this answer")
                self.yielded += 1
                yield chunk
        except GeneratorExit:
            self.closed = True
            raise


def _answer(
    make_connector: MakeConnector,
    assistant: Runaway,
    caplog: pytest.LogCaptureFixture,
    **options: object,
) -> list[logging.LogRecord]:
    # Hundreds of messages to one user: Meta's pair rate (45, then one every 6 s)
    # would pace them over minutes; the cap is what is tested here.
    options.setdefault("delivery_rate_control", False)
    connector = make_connector(assistant, fallback_text=FALLBACK, **options)
    client = make_app(connector).test_client()
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        body = text_webhook("go", id="wamid.RUNAWAY")
        assert post_webhook(client, body).status_code == 200
    return [r for r in caplog.records if "max_messages_per_answer" in r.getMessage()]


def test_sentence_mode_stops_at_the_cap_closes_the_generator_and_warns_once(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    sentences = (f"Sentence number {index}. " for index in range(100_000))
    assistant = Runaway(sentences, give_up_after=1000)
    warnings = _answer(
        make_connector, assistant, caplog, max_messages_per_answer=5, read_receipts=True
    )
    assert graph.sent_texts() == [f"Sentence number {index}." for index in range(5)]
    assert len(graph.read_receipts()) == 1  # not counted against the cap
    assert assistant.closed
    assert assistant.yielded <= 7  # the sixth sentence is complete once the seventh starts
    [warning] = warnings
    assert warning.levelno == logging.WARNING
    assert "wamid.RUNAWAY" in warning.getMessage() and "5 messages sent" in warning.getMessage()
    assert FALLBACK not in graph.sent_texts()


def test_direct_mode_with_100000_tiny_chunks_stops_at_the_default_cap(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    assistant = Runaway(iter(["x"] * 100_000), give_up_after=1000)
    warnings = _answer(make_connector, assistant, caplog, stream_mode=StreamMode.DIRECT)
    assert len(graph.sent()) == DEFAULT_MAX_MESSAGES_PER_ANSWER == 250
    assert assistant.closed and assistant.yielded == DEFAULT_MAX_MESSAGES_PER_ANSWER + 1
    assert len(warnings) == 1


def test_full_mode_stops_a_huge_answer_at_the_cap(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # 10,000 paragraphs of 100 characters: one text, about 250 messages of 4096.
    assistant = Runaway(iter(["word " * 20 + "\n\n"] * 10_000), give_up_after=20_000)
    warnings = _answer(
        make_connector, assistant, caplog, stream_mode="full", max_messages_per_answer=3
    )
    assert len(graph.sent()) == 3
    assert all(len(text) <= 4096 for text in graph.sent_texts())
    assert len(warnings) == 1
    assert FALLBACK not in graph.sent_texts()


def test_rich_replies_and_their_parts_count_too(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # A pin, a sentence, then a 10,000-character Text that the "fit" policy
    # splits into three messages: only the first of those fits under 4.
    chunks = iter([Location(1.0, 2.0), "One sentence. ", Text("y " * 5000), Location(3.0, 4.0)])
    assistant = Runaway(chunks, give_up_after=10)
    warnings = _answer(make_connector, assistant, caplog, max_messages_per_answer=4)
    sent = graph.sent()
    assert [r.json["type"] for r in sent] == ["location", "text", "text", "text"]
    assert [r.json["text"]["body"][:5] for r in sent[1:]] == ["One s", "y y y", "y y y"]
    assert assistant.closed and assistant.yielded == 3
    [warning] = warnings
    assert "4 messages sent" in warning.getMessage()


def test_an_answer_of_exactly_the_cap_is_sent_whole_without_a_warning(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    assistant = Runaway(iter(["One. ", "Two. ", "Three."]), give_up_after=10)
    warnings = _answer(make_connector, assistant, caplog, max_messages_per_answer=3)
    assert graph.sent_texts() == ["One.", "Two.", "Three."]
    assert warnings == []


def test_no_fallback_past_the_cap_when_the_assistant_then_fails(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # "One." is sent when "Two. " arrives; then the generator raises. The
    # fallback text would be a second message, over the cap of 1.
    assistant = Runaway(iter(["One. ", "Two. ", "Three."]), give_up_after=2)
    warnings = _answer(make_connector, assistant, caplog, max_messages_per_answer=1)
    assert graph.sent_texts() == ["One."]
    assert len(warnings) == 1
    assert "the assistant failed" in caplog.text  # its error is still logged


def test_the_cap_must_be_positive(make_connector: MakeConnector) -> None:
    with pytest.raises(ValueError, match="max_messages_per_answer"):
        make_connector(lambda m: "hi", max_messages_per_answer=0)  # at construction
