"""One POST must not cost much more than Meta's largest: items capped, one log line.

A signed body under the size cap can hold a million tiny items. These tests
post such bodies (scaled to just over the item cap) through the Flask app and
check the behaviour, not the time: the answer, how many log records, and
that no schema ever looked at an item of a refused body. What they cost in
CPU is measured by ``python -m bench.hostile_cost``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from cel_whatsapp import Message
from cel_whatsapp.config import DEFAULT_MAX_ITEMS_PER_POST
from cel_whatsapp.core import schemas
from cel_whatsapp.testing import FakeGraphAPI, encode, envelope, text_message
from cel_whatsapp.testing.webhooks import (
    change_value,
    contact,
    contact_card,
    contacts_message,
    order_message,
    product_item,
    status,
)

from .conftest import MakeConnector, make_app, post_webhook

CAP = DEFAULT_MAX_ITEMS_PER_POST


@pytest.fixture
def answered(make_connector: MakeConnector, graph: FakeGraphAPI) -> tuple[FlaskClient, list[str]]:
    """A client of an app whose assistant records the ids it is asked about."""
    seen: list[str] = []

    def assistant(message: Message) -> None:
        seen.append(message.id)

    return make_app(make_connector(assistant)).test_client(), seen


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Captures every record the package logs, DEBUG included (read ``logs.records``)."""
    with caplog.at_level(logging.DEBUG, logger="cel_whatsapp"):
        yield caplog


@pytest.fixture
def schema_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the schemas loaded, in order: every shared schema's ``load`` is wrapped."""
    calls: list[str] = []
    for name in schemas.__all__:
        schema = getattr(schemas, name)
        if not isinstance(schema, schemas.Schema):
            continue

        def counted(*args: Any, _load: Any = schema.load, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _load(*args, **kwargs)

        monkeypatch.setattr(schema, "load", counted)
    return calls


def _value_with(**arrays: list[Any]) -> dict[str, Any]:
    value = change_value()
    value.update(arrays)
    return value


#: Bodies holding one item more than the cap, in each position a count covers.
OVER_THE_CAP: dict[str, Callable[[], dict[str, Any]]] = {
    "entries x changes": lambda: {
        "object": "whatsapp_business_account",
        "entry": [{"changes": [{}] * 99} for _ in range(CAP // 100 + 1)],
    },
    "null entries": lambda: {"entry": [None] * (CAP + 1)},
    "empty statuses": lambda: envelope(_value_with(statuses=[{}] * (CAP - 1))),
    "empty messages": lambda: envelope(_value_with(messages=[{}] * (CAP - 1))),
    "empty echoes": lambda: envelope(_value_with(message_echoes=[{}] * (CAP - 1))),
    "empty value.errors": lambda: envelope(_value_with(errors=[{}] * (CAP - 1))),
    "empty contacts": lambda: envelope(_value_with(contacts=[{}] * (CAP - 1))),
    "changes for another number": lambda: envelope(*[change_value(phone_number_id="999")] * CAP),
    "updates spread over changes": lambda: envelope(
        *[_value_with(statuses=[{}] * 99)] * (CAP // 100)
    ),
}


@pytest.mark.parametrize("shape", list(OVER_THE_CAP))
def test_a_body_over_the_item_cap_is_413_before_any_item_is_parsed(
    answered: tuple[FlaskClient, list[str]],
    logs: pytest.LogCaptureFixture,
    schema_loads: list[str],
    shape: str,
) -> None:
    client, seen = answered
    body = OVER_THE_CAP[shape]()
    response = post_webhook(client, body)
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert str(CAP) in error and len(error) < 300
    assert schema_loads == []  # not even the envelope: counted from list lengths alone
    assert seen == []
    [record] = logs.records  # exactly one line for the whole refusal
    assert record.levelno == logging.WARNING
    assert "413" in record.getMessage()


def test_a_body_at_the_cap_is_parsed(
    answered: tuple[FlaskClient, list[str]], schema_loads: list[str]
) -> None:
    client, seen = answered
    statuses = [status(f"wamid.S{index}") for index in range(CAP - 4)]
    body = envelope(change_value([text_message("hi", id="wamid.LAST")], statuses=statuses))
    assert post_webhook(client, body).status_code == 200  # 1 + 1 + 1 + 1 + (CAP - 4) items
    assert seen == ["wamid.LAST"]
    assert schema_loads.count("STATUS") == CAP - 4  # the wrapped loads do see what is parsed


def _one_message(message: dict[str, Any]) -> dict[str, Any]:
    return envelope(change_value([message]))


#: Lists parsed inside one update, each one item over what the cap leaves.
INSIDE_ONE_UPDATE: dict[str, Callable[[int], dict[str, Any]]] = {
    "contacts cards": lambda n: _one_message(
        contacts_message([contact_card("x")] * n, id="wamid.IN")
    ),
    "phones of one card": lambda n: _one_message(
        contacts_message([contact_card("x", phones=["+1 555"] * (n - 1))], id="wamid.IN")
    ),
    "order items": lambda n: _one_message(
        order_message(product_items=[product_item("p")] * n, id="wamid.IN")
    ),
    "errors of a message": lambda n: _one_message(
        {**text_message("hi", id="wamid.IN"), "errors": [{"code": 1}] * n}
    ),
    "errors of a status": lambda n: envelope(  # a status comes without a contact
        change_value(statuses=[status("wamid.OUT", "failed", errors=[{"code": 1}] * (n + 1))])
    ),
    "cards of an edited message": lambda n: _one_message(
        {
            **text_message("", id="wamid.IN"),
            "type": "edit",
            "edit": {
                "original_message_id": "wamid.OLD",
                "message": {"type": "contacts", "contacts": [{}] * n},
            },
        }
    ),
}


@pytest.mark.parametrize("shape", list(INSIDE_ONE_UPDATE))
def test_lists_inside_one_update_count_against_the_cap(
    answered: tuple[FlaskClient, list[str]], logs: pytest.LogCaptureFixture, shape: str
) -> None:
    client, seen = answered
    # Entry, change, the update and its contact are 4 items; the list takes the rest and one more.
    response = post_webhook(client, INSIDE_ONE_UPDATE[shape](CAP - 3))
    assert response.status_code == 413
    assert seen == []
    assert len(logs.records) == 1


def test_malformed_items_are_summed_up_in_one_line(
    answered: tuple[FlaskClient, list[str]], logs: pytest.LogCaptureFixture
) -> None:
    client, seen = answered
    secret = "private-text-never-logged"
    value = change_value([text_message("kept", id="wamid.KEPT")])
    value["messages"] += [{}] * 300 + [{"id": secret, "type": 1}] * 5
    value["statuses"] = [{}] * 500 + [{"id": secret, "status": secret, "timestamp": secret}]
    value["errors"] = [{"code": secret}] * 20
    body = envelope(value)
    body["entry"] += [None] * 40
    assert post_webhook(client, body).status_code == 200
    assert seen == ["wamid.KEPT"]  # the valid message among them is answered
    warnings = [r for r in logs.records if r.levelno >= logging.WARNING]
    [summary] = warnings  # one line for 866 skipped items, not one each
    text = summary.getMessage()
    assert "866 malformed item(s) skipped" in text
    for part in ("message x305", "status x501", "error x20", "entry x40"):
        assert part in text
    assert "first at entry[0].changes[0].value.statuses[0]" in text
    assert "timestamp" in text  # the offending field names...
    assert secret not in text  # ...never their values
    assert len(text) < 1000


def test_parts_left_out_are_summed_up_too(
    answered: tuple[FlaskClient, list[str]], logs: pytest.LogCaptureFixture
) -> None:
    client, seen = answered
    flows = [
        {
            **text_message("", id=f"wamid.F{index}"),
            "type": "interactive",
            "interactive": {"type": "nfm_reply", "nfm_reply": {"response_json": "[not, json"}},
        }
        for index in range(50)
    ]
    bare = [{**text_message("", id=f"wamid.B{index}"), "type": "image"} for index in range(50)]
    for message in bare:
        del message["text"]
    assert post_webhook(client, envelope(change_value(flows + bare))).status_code == 200
    assert len(seen) == 100  # all delivered, without the unusable parts
    [summary] = [r for r in logs.records if r.levelno >= logging.WARNING]
    text = summary.getMessage()
    assert "'interactive' message's nfm_reply.response_json x50" in text
    assert "'image' message without its 'image' object x50" in text


def test_copies_of_a_message_are_logged_once_per_post(
    answered: tuple[FlaskClient, list[str]], logs: pytest.LogCaptureFixture
) -> None:
    client, seen = answered
    body = envelope(change_value([text_message("hi", id="wamid.SAME")] * 500))
    assert post_webhook(client, body).status_code == 200
    assert post_webhook(client, body).status_code == 200  # Meta delivers it again
    assert seen == ["wamid.SAME"]
    duplicates = [r for r in logs.records if "already handled" in r.getMessage()]
    assert [r.getMessage() for r in duplicates] == [
        "webhook: 499 message(s) already handled: duplicates skipped (first: wamid.SAME)",
        "webhook: 500 message(s) already handled: duplicates skipped (first: wamid.SAME)",
    ]


def test_copies_of_statuses_are_logged_once_per_post(
    make_connector: MakeConnector, graph: FakeGraphAPI, logs: pytest.LogCaptureFixture
) -> None:
    delivered: list[str] = []
    connector = make_connector()
    connector.on_status(lambda update: delivered.append(update.message_id))
    client = make_app(connector).test_client()
    body = envelope(change_value(statuses=[status("wamid.OUT", "read")] * 300))
    assert post_webhook(client, body).status_code == 200
    assert delivered == ["wamid.OUT"]
    assert sum("already handled" in r.getMessage() for r in logs.records) == 1


def test_thousands_of_contacts_find_each_sender(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    # A sender was looked up among the contacts one by one: thousands of each
    # made one POST cost minutes. The look-up keeps the first contact listed.
    count = CAP // 2 - 10
    senders = [f"1555{index:07d}" for index in range(count)]
    messages = [text_message("hi", sender=s, id=f"wamid.M{s}") for s in senders]
    contacts = [contact(wa_id=s, name=f"n{s}") for s in reversed(senders)]
    contacts.append(contact(wa_id=senders[0], name="a later duplicate"))
    captured: list[Message] = []
    connector = make_connector()
    connector.on_update(captured.append)
    client = make_app(connector).test_client()
    body = envelope(change_value(messages, contacts=contacts))
    assert post_webhook(client, body).status_code == 200
    assert [m.lead.name for m in captured] == [f"n{s}" for s in senders]


def test_the_item_cap_is_a_keyword_of_the_handler_and_the_parser() -> None:
    from cel_whatsapp.core.parsing import parse_webhook
    from cel_whatsapp.core.webhook import WebhookHandler

    body = envelope(change_value(statuses=[status(f"wamid.{i}") for i in range(10)]))
    assert len(parse_webhook(body, phone_number_id=None, max_items=12).statuses) == 10
    with pytest.raises(ValueError, match="more than 11 items"):
        parse_webhook(body, phone_number_id=None, max_items=11)
    handler = WebhookHandler(verify_token="v", phone_number_id="1", max_items=11)
    result = handler.receive(encode(body), None)
    assert result.status == 413
    assert json.loads(result.body)["error"].startswith("more than 11 items")
    assert WebhookHandler(verify_token="v", phone_number_id="1").max_items == CAP
