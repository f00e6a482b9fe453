"""POST deliveries: batches, sender identity, bad input, failures."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
from flask.testing import FlaskClient

from cel_whatsapp import Message
from cel_whatsapp.testing import FakeGraphAPI, encode, envelope, signed_headers, text_message
from cel_whatsapp.testing.webhooks import change_value, contact

from .conftest import APP_SECRET, PHONE_NUMBER_ID, MakeConnector, make_app, post_webhook


def _recording_client(
    make_connector: MakeConnector, **kwargs: object
) -> tuple[FlaskClient, list[Message]]:
    seen: list[Message] = []

    def assistant(message: Message) -> str:
        seen.append(message)
        return f"re: {message.text}"

    return make_app(make_connector(assistant, **kwargs)).test_client(), seen


def test_text_message_reaches_assistant_as_model(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, seen = _recording_client(make_connector)
    body = envelope(
        change_value(
            [
                text_message(
                    "hello",
                    sender="16315551181",
                    id="wamid.ABC",
                    timestamp=1700000000,
                    reply_to="wamid.PREV",
                )
            ],
            contacts=[
                contact(wa_id="16315551181", user_id="US.13491208655302741918", name="Kerry")
            ],
        )
    )
    assert post_webhook(client, body).status_code == 200
    [message] = seen
    assert message.id == "wamid.ABC"
    assert message.text == "hello"
    assert message.type == "text"
    assert message.date == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert message.reply_to == "wamid.PREV"
    assert message.attachments == ()
    assert message.metadata["raw"]["id"] == "wamid.ABC"
    assert message.lead.id == "16315551181"
    assert message.lead.phone == "16315551181"
    assert message.lead.user_id == "US.13491208655302741918"
    assert message.lead.name == "Kerry"
    assert message.lead.phone_number_id == PHONE_NUMBER_ID
    assert message.lead.connector == "whatsapp"
    [sent] = graph.sent()
    assert sent.path == f"/v25.0/{PHONE_NUMBER_ID}/messages"
    assert sent.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16315551181",
        "type": "text",
        "text": {"body": "re: hello"},
    }
    assert sent.headers["authorization"].startswith("Bearer ")


def test_batch_across_entries_and_changes_answers_every_message(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, seen = _recording_client(make_connector)
    first = envelope(
        change_value([text_message("one", sender="111"), text_message("two", sender="222")]),
        change_value([text_message("three", sender="333")]),
    )
    second = envelope(change_value([text_message("four", sender="444")]))
    body = {"object": "whatsapp_business_account", "entry": first["entry"] + second["entry"]}
    assert post_webhook(client, body).status_code == 200
    assert [m.text for m in seen] == ["one", "two", "three", "four"]
    assert [(r.json["to"], r.json["text"]["body"]) for r in graph.sent()] == [
        ("111", "re: one"),
        ("222", "re: two"),
        ("333", "re: three"),
        ("444", "re: four"),
    ]


def test_bsuid_only_sender_is_answered_through_recipient(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, seen = _recording_client(make_connector)
    bsuid = "US.13491208655302741918"
    body = envelope(
        change_value(
            [text_message("no phone here", sender=None, user_id=bsuid)],
            contacts=[contact(wa_id=None, user_id=bsuid, name="Anon")],
        )
    )
    assert post_webhook(client, body).status_code == 200
    [message] = seen
    assert (message.lead.id, message.lead.phone, message.lead.user_id) == (bsuid, None, bsuid)
    [sent] = graph.sent()
    assert sent.json["recipient"] == bsuid
    assert "to" not in sent.json


def test_read_receipt_with_typing_indicator_precedes_answer(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, _ = _recording_client(make_connector, read_receipts=True)
    post_webhook(client, envelope(change_value([text_message("hi", id="wamid.R1")])))
    first, second = graph.requests
    assert first.json == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.R1",
        "typing_indicator": {"type": "text"},
    }
    assert second.json["text"]["body"] == "re: hi"


def test_failed_read_receipt_does_not_stop_the_answer(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, _ = _recording_client(make_connector, read_receipts=True)
    graph.fail_next(status=400, code=100, message="Invalid message_id", times=1)
    post_webhook(client, envelope(change_value([text_message("hi")])))
    assert graph.sent_texts() == ["re: hi"]


def test_other_fields_and_other_numbers_are_acknowledged_and_ignored(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, seen = _recording_client(make_connector)
    other_field = envelope(change_value([text_message("x")]), field="account_update")
    other_number = envelope(change_value([text_message("y")], phone_number_id="999999"))
    assert post_webhook(client, other_field).status_code == 200
    assert post_webhook(client, other_number).status_code == 200
    assert seen == []
    assert graph.requests == []


def test_statuses_only_change_is_acknowledged(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, seen = _recording_client(make_connector)
    status = {
        "id": "wamid.S",
        "status": "delivered",
        "timestamp": "1700000000",
        "recipient_id": "111",
    }
    assert post_webhook(client, envelope(change_value(statuses=[status]))).status_code == 200
    assert seen == []


def test_non_text_message_does_not_crash(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, seen = _recording_client(make_connector)
    image = {
        "from": "111",
        "id": "wamid.IMG",
        "timestamp": "1700000000",
        "type": "image",
        "image": {"id": "1234", "mime_type": "image/jpeg", "sha256": "abc"},
    }
    assert post_webhook(client, envelope(change_value([image]))).status_code == 200
    assert [(m.type, m.id) for m in seen] == [("image", "wamid.IMG")]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all",
        b"",
        b"[1, 2, 3]",
        b'"a string"',
        b"{}",
        b'{"object": "whatsapp_business_account"}',
        b'{"entry": "not a list"}',
        b'{"entry": null}',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
    ],
)
def test_not_a_webhook_envelope_is_400_with_json_error(
    client: FlaskClient, graph: FakeGraphAPI, raw: bytes
) -> None:
    response = post_webhook(client, raw)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert isinstance(response.get_json()["error"], str)
    assert graph.requests == []


def test_malformed_message_is_skipped_and_the_rest_answered(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    client, seen = _recording_client(make_connector)
    broken = [
        {"from": "111", "type": "text", "text": {"body": "no id"}, "timestamp": "1"},
        {
            "from": "111",
            "id": "wamid.T",
            "timestamp": "yesterday",
            "type": "text",
            "text": {"body": "bad ts"},
        },
        {"from": "111", "id": "wamid.N", "timestamp": "1", "type": "text", "text": {"body": 5}},
        "not even an object",
        {"id": "wamid.NOSENDER", "timestamp": "1", "type": "text", "text": {"body": "who?"}},
    ]
    body = envelope(change_value([*broken, text_message("fine", sender="222")], contacts=[]))
    body["entry"].insert(0, "junk entry")
    body["entry"][1]["changes"].insert(0, {"field": "messages", "value": {"metadata": "nope"}})
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        response = post_webhook(client, body)
    assert response.status_code == 200
    assert [m.text for m in seen] == ["fine"]
    assert graph.sent_texts() == ["re: fine"]
    assert "fine" not in caplog.text  # message text is never logged


def test_assistant_that_raises_still_gets_200_and_sends_nothing(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(message: Message) -> str:
        raise ZeroDivisionError("assistant bug")

    client = make_app(make_connector(broken)).test_client()
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        response = post_webhook(
            client, envelope(change_value([text_message("hi", id="wamid.BOOM")]))
        )
    assert response.status_code == 200
    assert graph.sent() == []
    [record] = [r for r in caplog.records if r.exc_info]
    assert "wamid.BOOM" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_generator_failing_midway_keeps_what_was_sent(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    def assistant(message: Message):  # type: ignore[no-untyped-def]
        yield "First sentence. "
        yield "Second sentence. "
        raise RuntimeError("lost the model")

    client = make_app(make_connector(assistant)).test_client()
    assert post_webhook(client, envelope(change_value([text_message("hi")]))).status_code == 200
    assert graph.sent_texts() == ["First sentence."]


def test_none_and_empty_answers_send_nothing(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    answers = iter([None, "", "   \n ", iter([]), ["", " "]])
    client = make_app(make_connector(lambda m: next(answers))).test_client()
    for _ in range(5):
        assert post_webhook(client, envelope(change_value([text_message("hi")]))).status_code == 200
    assert graph.sent() == []


def test_wrong_return_type_is_logged_not_sent(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(make_connector(lambda m: {"text": "a dict"})).test_client()
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        assert post_webhook(client, envelope(change_value([text_message("hi")]))).status_code == 200
    assert graph.sent() == []
    assert "returned dict" in caplog.text


def test_graph_error_while_sending_is_logged_and_acknowledged(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = _recording_client(make_connector)
    graph.fail_next(status=400, code=131047, message="Re-engagement message", times=1)
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        response = post_webhook(client, envelope(change_value([text_message("hi")])))
    assert response.status_code == 200
    assert "131047" in caplog.text


def test_wrong_content_type_is_415(client: FlaskClient, graph: FakeGraphAPI) -> None:
    response = post_webhook(
        client, envelope(change_value([text_message("hi")])), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert graph.requests == []


@pytest.mark.parametrize("headers", [{}, {"Content-Type": ""}])
def test_a_post_without_content_type_is_415(
    client: FlaskClient, graph: FakeGraphAPI, headers: dict[str, str]
) -> None:
    # Meta always sends application/json; anything else never reaches the parser.
    raw = encode(envelope(change_value([text_message("hi")])))
    signature = signed_headers(raw, APP_SECRET)["X-Hub-Signature-256"]
    response = client.post(
        "/whatsapp", data=raw, headers={**headers, "X-Hub-Signature-256": signature}
    )
    assert response.status_code == 415
    assert response.get_json() == {"error": "Content-Type must be application/json"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert graph.requests == []


def test_oversized_body_is_413(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    client = make_app(make_connector(lambda m: "x", max_body_bytes=1000)).test_client()
    response = post_webhook(client, envelope(change_value([text_message("a" * 2000)])))
    assert response.status_code == 413
    assert graph.requests == []


def test_secrets_never_logged(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    from .conftest import APP_SECRET, TOKEN, VERIFY_TOKEN

    client, _ = _recording_client(make_connector, read_receipts=True)
    graph.fail_next(status=401, code=190, message="Error validating access token", times=5)
    with caplog.at_level(logging.DEBUG):
        post_webhook(client, envelope(change_value([text_message("hi")])))
        post_webhook(client, envelope(change_value([text_message("hi")])), secret="wrong")
        client.get(
            "/whatsapp",
            query_string={"hub.mode": "subscribe", "hub.verify_token": "bad", "hub.challenge": "1"},
        )
    for secret in (TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret not in caplog.text


def test_null_items_skip_themselves_only(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    client, seen = _recording_client(make_connector)
    body = envelope(change_value([text_message("kept", sender="222")]))
    body["entry"].insert(0, None)
    body["entry"][1]["changes"].insert(0, None)
    body["entry"][1]["changes"][1]["value"]["messages"].insert(0, None)
    assert post_webhook(client, body).status_code == 200
    assert [m.text for m in seen] == ["kept"]
    assert graph.sent_texts() == ["re: kept"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("PUT", "/whatsapp", 405), ("DELETE", "/whatsapp/", 405), ("GET", "/whatsapp/other", 404)],
)
def test_flask_error_pages_under_the_webhook_say_nosniff(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    # Answered by Flask's routing before any view of ours runs.
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_host_apps_other_pages_are_left_alone(client: FlaskClient) -> None:
    response = client.get("/somewhere-else")
    assert response.status_code == 404
    assert "X-Content-Type-Options" not in response.headers


def test_error_pages_under_a_registration_prefix_say_nosniff(
    make_connector: MakeConnector,
) -> None:
    from flask import Flask

    connector = make_connector(lambda message: None)
    app = Flask("prefixed")
    app.register_blueprint(connector.blueprint, url_prefix="/api")
    client = app.test_client()
    assert client.put("/api/whatsapp").status_code == 405
    assert client.put("/api/whatsapp").headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Content-Type-Options" not in client.put("/whatsapp").headers
    # The same blueprint on another app, under another prefix: each app its own path.
    other = Flask("other")
    other.register_blueprint(connector.blueprint, url_prefix="/b")
    assert other.test_client().put("/b/whatsapp").headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Content-Type-Options" not in client.put("/b/whatsapp").headers
