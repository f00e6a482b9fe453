"""Each stream mode, end to end: what the fake Graph API records."""

from __future__ import annotations

from collections.abc import Iterator

from cel_whatsapp import Message, StreamMode
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import MakeConnector, make_app, post_webhook

CHUNKS = ["Hello the", "re! I am Dr. Bot", ". The answer", " is 3.5 today.\n\n", "   ", "Bye"]


def _stream(message: Message) -> Iterator[str]:
    yield from CHUNKS


def _run(make_connector: MakeConnector, mode: StreamMode | str, assistant=_stream) -> None:  # type: ignore[no-untyped-def]
    # Long answers to one user: Meta's pair rate would pace them (see test_rates.py).
    connector = make_connector(assistant, stream_mode=mode, delivery_rate_control=False)
    client = make_app(connector).test_client()
    assert post_webhook(client, text_webhook("hi")).status_code == 200


def test_sentence_mode_sends_each_sentence(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    _run(make_connector, StreamMode.SENTENCE)
    assert graph.sent_texts() == [
        "Hello there!",
        "I am Dr. Bot.",
        "The answer is 3.5 today.",
        "Bye",
    ]


def test_full_mode_sends_once(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    _run(make_connector, StreamMode.FULL)
    assert graph.sent_texts() == ["Hello there! I am Dr. Bot. The answer is 3.5 today.\n\n   Bye"]


def test_direct_mode_sends_each_chunk(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    _run(make_connector, "direct")
    assert graph.sent_texts() == [
        "Hello the",
        "re! I am Dr. Bot",
        ". The answer",
        "is 3.5 today.",
        "Bye",
    ]


def test_stream_mode_values() -> None:
    assert [m.value for m in StreamMode] == ["sentence", "full", "direct"]
    assert StreamMode("full") is StreamMode.FULL


def test_sentence_mode_sends_before_the_generator_finishes(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    counts: list[int] = []

    def assistant(message: Message) -> Iterator[str]:
        yield "First one. "
        yield "Second"
        counts.append(len(graph.sent()))  # what had reached the fake by now
        yield " one."

    _run(make_connector, StreamMode.SENTENCE, assistant)
    assert counts == [1]
    assert graph.sent_texts() == ["First one.", "Second one."]


def test_long_answer_is_split_under_4096_in_every_mode(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    paragraph = ("This sentence is part of a long answer. " * 60).strip()  # ~2,400 characters
    answer = "\n\n".join([paragraph] * 4)
    for mode in StreamMode:
        graph.reset()
        _run(make_connector, mode, lambda m: answer)
        texts = graph.sent_texts()
        assert texts, mode
        assert all(0 < len(t) <= 4096 for t in texts), mode
        assert " ".join(" ".join(texts).split()) == " ".join(answer.split()), mode
    graph.reset()
    _run(make_connector, StreamMode.FULL, lambda m: answer)
    assert graph.sent_texts() == [paragraph] * 4  # cut between paragraphs


def test_one_word_over_the_limit_is_the_only_mid_word_cut(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    _run(make_connector, StreamMode.FULL, lambda m: "see " + "y" * 5000)
    assert graph.sent_texts() == ["see", "y" * 4096, "y" * 904]
