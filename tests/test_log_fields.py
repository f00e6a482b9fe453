"""Log lines about a message carry ``wa_message_id`` and ``wa_phone_number_id``.

Every record of the package's loggers made while a message is answered (on
the background pool's threads too) gets both fields from the message being
answered; lines about a message made outside its answer (the webhook, the
callbacks, the pool) pass them explicitly. A JSON formatter shows them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from cel_whatsapp import BackgroundDispatcher, Buttons, Message, MessageLogFilter
from cel_whatsapp.testing import FakeGraphAPI, reaction_message, text_webhook, webhook

from .conftest import PHONE_NUMBER_ID, MakeConnector, make_app, post_webhook
from .doc_blocks import code_block, page

FIELDS = ("wa_message_id", "wa_phone_number_id")


class Keep(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[Keep]:
    """Every record of the package's loggers, and of the assistant's ("myapp")."""
    handler = Keep()
    loggers = [logging.getLogger("cel_whatsapp"), logging.getLogger("myapp")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def dispatcher() -> Iterator[BackgroundDispatcher]:
    pool = BackgroundDispatcher()
    yield pool
    pool.shutdown(5)


def fields(record: logging.LogRecord) -> tuple[Any, Any]:
    return getattr(record, "wa_message_id", None), getattr(record, "wa_phone_number_id", None)


def assistant(message: Message) -> Any:
    logging.getLogger("myapp").info("thinking about it")
    if message.text == "boom":
        raise RuntimeError("the model is down")
    # A button title over 20 characters: the limits policy cuts it, with a warning.
    return Buttons("Pick one", ["A title much too long for a button", "Short"])


def test_every_line_about_a_message_names_it(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    kept: Keep,
    dispatcher: BackgroundDispatcher,
) -> None:
    connector = make_connector(assistant, dispatch=dispatcher, read_receipts=True)
    connector.on_reaction(lambda message: 1 / 0)
    user_handler = Keep()
    user_handler.addFilter(MessageLogFilter())  # as docs/operations.rst shows, on your own handler
    logging.getLogger("myapp").addHandler(user_handler)
    client = make_app(connector).test_client()
    try:
        graph.fail_next(status=503, code=None)  # the first reply is retried: an INFO line
        ids = ["wamid.LOG1", "wamid.LOG2", "wamid.LOG3"]
        assert post_webhook(client, text_webhook("hello", id=ids[0])).status_code == 200
        assert connector.drain(10)
        assert post_webhook(client, text_webhook("boom", id=ids[1])).status_code == 200
        assert connector.drain(10)
        graph.fail_next(status=400, code=131047, message="Re-engagement message")
        assert post_webhook(client, text_webhook("late", id=ids[2])).status_code == 200
        assert connector.drain(10)
        # A copy, and a reaction whose callback raises: lines made in the webhook.
        assert post_webhook(client, text_webhook("late", id=ids[2])).status_code == 200
        reaction = webhook(reaction_message("wamid.LOG1", "👍", id="wamid.LOG4"))
        assert post_webhook(client, reaction).status_code == 200
        assert connector.drain(10)
    finally:
        logging.getLogger("myapp").removeHandler(user_handler)

    ours = [r for r in kept.records if r.name.startswith("cel_whatsapp")]
    for record in ours:
        named = re.findall(r"wamid\.LOG\d", record.getMessage())
        if named:
            assert fields(record) == (named[0], PHONE_NUMBER_ID), record.getMessage()
    messages = {r.getMessage() for r in ours}
    assert any("the assistant failed on message wamid.LOG2" in m for m in messages)
    assert any("sending the answer to message wamid.LOG3 failed" in m for m in messages)
    assert any("duplicates skipped (first: wamid.LOG3)" in m for m in messages)
    assert any("the on_reaction callback failed on message wamid.LOG4" in m for m in messages)
    # Lines made during an answer that do not name the message still carry it.
    [retry] = [r for r in ours if "Graph API call failed" in r.getMessage()]
    assert fields(retry) == ("wamid.LOG1", PHONE_NUMBER_ID)
    cuts = [fields(r) for r in ours if "cut to fit" in r.getMessage()]
    assert cuts == [("wamid.LOG1", PHONE_NUMBER_ID), ("wamid.LOG3", PHONE_NUMBER_ID)]
    # The assistant's own lines, through a handler with MessageLogFilter.
    assert sorted(fields(r)[0] for r in user_handler.records) == ids
    assert {fields(r)[1] for r in user_handler.records} == {PHONE_NUMBER_ID}


def test_lines_outside_any_message_carry_no_fields(
    make_connector: MakeConnector, kept: Keep
) -> None:
    make_app(make_connector(lambda message: "hi", app_secret=None))  # warns: no app secret
    [warning] = [r for r in kept.records if "NOT authenticated" in r.getMessage()]
    assert not hasattr(warning, "wa_message_id")


def test_the_package_filter_keeps_fields_given_explicitly() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.wa_message_id = "explicit"
    assert MessageLogFilter().filter(record)
    assert record.wa_message_id == "explicit"
    assert not hasattr(record, "wa_phone_number_id")  # outside an answer: nothing added


def _docs_logging_block() -> str:
    return code_block(page("operations"), "pythonjsonlogger")


def test_the_docs_logging_config_prints_json_lines_with_the_fields(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("pythonjsonlogger", reason='needs pip install -e ".[test]"')
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        exec(compile(_docs_logging_block(), "operations.rst", "exec"), {})  # noqa: S102 - our docs
        connector = make_connector(assistant)
        client = make_app(connector).test_client()
        assert post_webhook(client, text_webhook("boom", id="wamid.JSON1")).status_code == 200
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    [failure] = [line for line in lines if "the assistant failed" in line["message"]]
    assert failure["wa_message_id"] == "wamid.JSON1"
    assert failure["wa_phone_number_id"] == PHONE_NUMBER_ID
    assert "RuntimeError: the model is down" in failure["exc_info"]
    [mine] = [line for line in lines if line["message"] == "thinking about it"]
    assert mine["wa_message_id"] == "wamid.JSON1"
