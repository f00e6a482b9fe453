"""The webhook is translated by marshmallow: ``Schema.load`` makes what the assistant gets.

``marshmallow.Schema.load`` is wrapped at the class (as a tracer or a
debugger would) for a signed webhook round trip through the Flask test
client: every model object the connector hands on must be one that
``Schema.load`` returned, with no hand-written second pass rebuilding it.
"""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema

from cel_whatsapp import Message, StatusEvent, WebhookError
from cel_whatsapp.testing import FakeGraphAPI, webhook
from cel_whatsapp.testing.webhooks import error, image_message, status, text_message

from .conftest import MakeConnector, make_app, post_webhook


class LoadRecorder:
    """Wraps ``Schema.load``: which schema loaded, and what it returned."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, Any]] = []
        original = Schema.load

        def load(schema: Schema, *args: Any, **kwargs: Any) -> Any:
            result = original(schema, *args, **kwargs)
            self.calls.append((type(schema).__name__, result))
            return result

        monkeypatch.setattr(Schema, "load", load)

    def schemas(self) -> list[str]:
        return [name for name, _ in self.calls]

    def returned(self, name: str) -> list[Any]:
        return [result for schema, result in self.calls if schema == name]


def test_messages_statuses_and_errors_are_the_objects_schema_load_returned(
    make_connector: MakeConnector, graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[Message] = []
    statuses: list[StatusEvent] = []
    errors: list[WebhookError] = []
    connector = make_connector(lambda message: received.append(message) or "ok")
    connector.on_status(statuses.append)
    connector.on_error(errors.append)
    client = make_app(connector).test_client()
    loads = LoadRecorder(monkeypatch)

    body = webhook(
        text_message("hello"),
        image_message(caption="a cat"),
        statuses=[status("wamid.OUT1", "read")],
        errors=[error(131047, "Re-engagement message")],
    )
    assert post_webhook(client, body).status_code == 200

    assert [m.text for m in received] == ["hello", "a cat"]
    # The very objects the assistant got came out of MessageSchema.load.
    made = loads.returned("MessageSchema")
    assert len(made) == 2
    assert all(any(m is r for r in made) for m in received)
    assert [s.message_id for s in statuses] == ["wamid.OUT1"]
    assert statuses[0] is loads.returned("StatusSchema")[0]
    assert [e.code for e in errors] == [131047]
    assert errors[0] is loads.returned("ErrorSchema")[0]
    # The image's attachment was built by its content schema, inside the message's load.
    [image] = [m for m in received if m.type == "image"]
    assert image.attachments[0].caption == "a cat"
    assert "MediaSchema" in loads.schemas()
    # The lead, with the sender's name from value.contacts, was built inside
    # MessageSchema.load; the envelope, entries, changes and contacts around
    # the updates are plain JSON, walked without a schema.
    assert received[0].lead.name == "Kerry Fisher"
    assert made[0].lead is received[0].lead or made[1].lead is received[0].lead


def test_a_message_marshmallow_refuses_is_not_answered(
    make_connector: MakeConnector, graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[Message] = []
    connector = make_connector(lambda message: received.append(message) or "ok")
    client = make_app(connector).test_client()
    loads = LoadRecorder(monkeypatch)
    bad = text_message("no id")
    del bad["id"]

    response = post_webhook(client, webhook(bad, text_message("fine")))

    assert response.status_code == 200
    assert [m.text for m in received] == ["fine"]
    # Two loads of MessageSchema were tried; one returned the message.
    assert len(loads.returned("MessageSchema")) == 1
    assert graph.sent_texts() == ["ok"]
