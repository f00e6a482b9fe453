"""Rich replies inside a webhook answer: order, reactions, quoting, limit errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cel_whatsapp import (
    Buttons,
    Image,
    ListMenu,
    Message,
    React,
    Reply,
    StreamMode,
    Template,
    Text,
)
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import MakeConnector, make_app, post_webhook

IN_ID = "wamid.INCOMING0001"


def _answer(make_connector: MakeConnector, assistant, **options) -> None:  # type: ignore[no-untyped-def]
    client = make_app(make_connector(assistant, **options)).test_client()
    assert post_webhook(client, text_webhook("hi", id=IN_ID)).status_code == 200


def _summary(graph: FakeGraphAPI) -> list[str]:
    """What arrived, in order: text bodies, and the type of everything else."""
    out = []
    for request in graph.sent():
        payload = request.json
        if payload["type"] == "text":
            out.append(payload["text"]["body"])
        elif payload["type"] == "interactive":
            out.append(f"<{payload['interactive']['type']}>")
        else:
            out.append(f"<{payload['type']}>")
    return out


def _mixed(message: Message) -> Iterator[str | Reply]:
    yield "Hello "
    yield "there! Here is"  # an unfinished sentence, pending when the image comes
    yield " our menu:"
    yield Image(link="https://example.com/menu.png", caption="Menu")
    yield "Pick "
    yield "a size."
    yield Buttons("Size?", ["Small", "Medium", "Large"])
    yield "Or see "
    yield ListMenu("All options", "Options", ["XL", "XXL"])
    yield React("🍕")
    yield "Thanks!"


@pytest.mark.parametrize("mode", list(StreamMode))
def test_text_and_rich_replies_arrive_in_order(
    make_connector: MakeConnector, graph: FakeGraphAPI, mode: StreamMode
) -> None:
    _answer(make_connector, _mixed, stream_mode=mode)
    expected = {
        StreamMode.SENTENCE: [
            "Hello there!",
            "Here is our menu:",
            "<image>",
            "Pick a size.",
            "<button>",
            "Or see",
            "<list>",
            "<reaction>",
            "Thanks!",
        ],
        StreamMode.FULL: [
            "Hello there! Here is our menu:",
            "<image>",
            "Pick a size.",
            "<button>",
            "Or see",
            "<list>",
            "<reaction>",
            "Thanks!",
        ],
        StreamMode.DIRECT: [
            "Hello",
            "there! Here is",
            "our menu:",
            "<image>",
            "Pick",
            "a size.",
            "<button>",
            "Or see",
            "<list>",
            "<reaction>",
            "Thanks!",
        ],
    }[mode]
    assert _summary(graph) == expected


def test_react_without_message_id_reacts_to_the_message_answered(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    _answer(make_connector, lambda m: React("👍"))
    [request] = graph.sent()
    assert request.json["reaction"] == {"message_id": IN_ID, "emoji": "👍"}
    assert request.json["to"] == "16315551181"


def test_react_to_another_message(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    _answer(make_connector, lambda m: React("", "wamid.OLDER"))
    [request] = graph.sent()
    assert request.json["reaction"] == {"message_id": "wamid.OLDER", "emoji": ""}


def test_replies_can_quote_the_message_answered(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    def assistant(message: Message) -> Iterator[Reply]:
        yield Text("Quoting you", reply_to=message.id)
        yield Buttons("Sure?", ["Yes", "No"], reply_to=message.id)
        yield Template("hello_world", reply_to=message.id)

    _answer(make_connector, assistant)
    assert [r.json["context"] for r in graph.sent()] == [{"message_id": IN_ID}] * 3


def test_a_reply_over_a_limit_is_fitted_by_default(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    _answer(make_connector, lambda m: Buttons("Pick", ["1", "2", "3", "4"]))
    [request] = graph.sent()
    assert request.json["interactive"]["type"] == "list"


def test_a_strict_limit_error_is_logged_and_text_before_it_still_sent(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    def assistant(message: Message) -> Iterator[str | Reply]:
        yield "Before the menu."
        yield Buttons("Pick", ["1", "2", "3", "4"])
        yield "Never sent."

    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        _answer(make_connector, assistant, limits="strict")
    assert _summary(graph) == ["Before the menu."]
    assert "Buttons.buttons has 4 buttons" in caplog.text
