"""Several business numbers behind one webhook: each answered from its own number."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

from cel_whatsapp import ConfigurationError, Message, WhatsappConnector
from cel_whatsapp.testing import FakeGraphAPI, envelope
from cel_whatsapp.testing.webhooks import change_value, status, text_message

from .conftest import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    TOKEN,
    VERIFY_TOKEN,
    MakeConnector,
    make_app,
    post_webhook,
)

SECOND = "222000000000002"
THIRD = "333000000000003"
SECOND_TOKEN = "second-waba-token"


def numbers_of(graph: FakeGraphAPI) -> list[str]:
    """The business number in the path of every request recorded, in order."""
    return [request.path.strip("/").split("/")[1] for request in graph.requests]


def two_number_app(make_connector: MakeConnector, **options: Any) -> tuple[Flask, list[Message]]:
    received: list[Message] = []

    def assistant(message: Message) -> str:
        received.append(message)
        return f"echo {message.text}"

    connector = make_connector(assistant, phone_number_id=[PHONE_NUMBER_ID, SECOND], **options)
    return make_app(connector), received


def test_the_connector_lists_its_numbers_and_the_first_is_the_default(
    make_connector: MakeConnector,
) -> None:
    connector = make_connector(phone_number_id=(SECOND, PHONE_NUMBER_ID, SECOND))
    assert connector.phone_number_ids == (SECOND, PHONE_NUMBER_ID)
    assert connector.phone_number_id == SECOND
    assert connector.url.endswith(f"/{SECOND}/messages")


def test_the_environment_takes_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch, graph: FakeGraphAPI
) -> None:
    monkeypatch.setenv("WHATSAPP_PHONE_NUMBER_ID", f" {PHONE_NUMBER_ID}, {SECOND} ,")
    connector = WhatsappConnector(TOKEN, verify_token=VERIFY_TOKEN, base_url=graph.base_url)
    assert connector.phone_number_ids == (PHONE_NUMBER_ID, SECOND)


@pytest.mark.parametrize("bad", ["+1 555 0100", "111/messages", "1?x=1"])
def test_a_phone_number_id_that_is_not_an_id_is_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="not a phone number id"):
        WhatsappConnector(TOKEN, [PHONE_NUMBER_ID, bad], VERIFY_TOKEN)


def test_each_message_is_answered_from_the_number_it_was_sent_to(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    app, received = two_number_app(make_connector, read_receipts=True)
    client = app.test_client()
    body = envelope(
        change_value([text_message("to the first")], phone_number_id=PHONE_NUMBER_ID),
        change_value([text_message("to the second")], phone_number_id=SECOND),
    )
    assert post_webhook(client, body).status_code == 200

    assert [(m.text, m.lead.phone_number_id) for m in received] == [
        ("to the first", PHONE_NUMBER_ID),
        ("to the second", SECOND),
    ]
    # A read receipt, then the answer, each from the number that received the message.
    assert numbers_of(graph) == [PHONE_NUMBER_ID, PHONE_NUMBER_ID, SECOND, SECOND]
    assert [r.is_read_receipt for r in graph.requests] == [True, False, True, False]
    assert graph.sent_texts() == ["echo to the first", "echo to the second"]


def test_dedup_is_per_number(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    app, received = two_number_app(make_connector)
    client = app.test_client()
    first = text_message("hello", id="wamid.SAME")
    for number in (PHONE_NUMBER_ID, SECOND, SECOND):
        body = envelope(change_value([first], phone_number_id=number))
        assert post_webhook(client, body).status_code == 200
    # Once per number: the redelivery to the second number is dropped.
    assert [m.lead.phone_number_id for m in received] == [PHONE_NUMBER_ID, SECOND]


def test_statuses_say_which_number_sent_the_message(make_connector: MakeConnector) -> None:
    seen: list[Any] = []
    connector = make_connector(phone_number_id=[PHONE_NUMBER_ID, SECOND])
    connector.on_status(seen.append)
    client = make_app(connector).test_client()
    body = envelope(change_value(statuses=[status("wamid.OUT9", "read")], phone_number_id=SECOND))
    assert post_webhook(client, body).status_code == 200
    assert [(s.message_id, s.phone_number_id) for s in seen] == [("wamid.OUT9", SECOND)]


def test_an_unlisted_number_is_not_answered_and_warned_about_once(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    app, received = two_number_app(make_connector)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        for _ in range(3):
            body = envelope(change_value([text_message("hi")], phone_number_id=THIRD))
            assert post_webhook(client, body).status_code == 200
    assert received == []
    assert graph.sent() == []
    warnings = [r.getMessage() for r in caplog.records if THIRD in r.getMessage()]
    assert len(warnings) == 1
    assert "add 333000000000003 to phone_number_id" in warnings[0]


def test_proactive_sends_choose_their_number(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    app, _ = two_number_app(make_connector)
    connector: WhatsappConnector = app.extensions["cel_whatsapp.connectors"]["whatsapp"]
    with app.app_context():
        connector.send("16505551234", "from the default")
        connector.send("16505551234", "from the second", phone_number_id=SECOND)
        connector.mark_read("wamid.IN1", phone_number_id=SECOND)
        with pytest.raises(ValueError, match="not one of this connector's numbers"):
            connector.send("16505551234", "nope", phone_number_id=THIRD)
        with pytest.raises(ValueError, match="not one of this connector's numbers"):
            connector.upload_media(b"x", "image/png", phone_number_id=THIRD)
    # The refused sends made no request at all.
    assert numbers_of(graph) == [PHONE_NUMBER_ID, SECOND, SECOND]


def test_a_number_with_its_own_token_sends_with_it(
    make_connector: MakeConnector, graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = two_number_app(make_connector, tokens={SECOND: SECOND_TOKEN})
    # The fake takes any token here: the test reads which one came.
    monkeypatch.setattr(graph, "token", None)
    client = app.test_client()
    body = envelope(
        change_value([text_message("a")], phone_number_id=PHONE_NUMBER_ID),
        change_value([text_message("b")], phone_number_id=SECOND),
    )
    assert post_webhook(client, body).status_code == 200
    auth = [
        (numbers_of(graph)[i], r.headers["authorization"]) for i, r in enumerate(graph.requests)
    ]
    assert auth == [(PHONE_NUMBER_ID, f"Bearer {TOKEN}"), (SECOND, f"Bearer {SECOND_TOKEN}")]


def test_tokens_for_numbers_not_listed_are_refused(graph: FakeGraphAPI) -> None:
    connector = WhatsappConnector(
        TOKEN, PHONE_NUMBER_ID, VERIFY_TOKEN, tokens={THIRD: "t"}, base_url=graph.base_url
    )
    with pytest.raises(ConfigurationError, match="not listed in phone_number_id"):
        connector.settings  # noqa: B018


def test_tokens_never_show_in_reprs(make_connector: MakeConnector) -> None:
    connector = make_connector(
        phone_number_id=[PHONE_NUMBER_ID, SECOND], tokens={SECOND: SECOND_TOKEN}
    )
    for text in (repr(connector), repr(connector.settings), str(connector.settings)):
        assert SECOND_TOKEN not in text
        assert TOKEN not in text


def test_the_cli_sends_from_another_number(graph: FakeGraphAPI) -> None:
    app = Flask(__name__)
    WhatsappConnector(
        TOKEN,
        [PHONE_NUMBER_ID, SECOND],
        VERIFY_TOKEN,
        app_secret=APP_SECRET,
        base_url=graph.base_url,
        app=app,
    )
    runner = app.test_cli_runner()
    result = runner.invoke(args=["whatsapp", "send", "--from", SECOND, "--to", "16505551234", "hi"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["whatsapp", "send", "--from", THIRD, "--to", "16505551234", "hi"])
    assert result.exit_code == 1
    assert "not one of this connector's numbers" in result.output
    assert numbers_of(graph) == [SECOND]
