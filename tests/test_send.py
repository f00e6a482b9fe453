"""Sending outside a webhook: send(), mark_read(), upload_media(), and the 24-hour window."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from flask import Flask

from cel_whatsapp import (
    ConfigurationError,
    GraphAPIError,
    Image,
    Lead,
    React,
    Template,
    Text,
    WhatsappConnector,
)
from cel_whatsapp.core.outbox import recipient_for
from cel_whatsapp.testing import FakeGraphAPI

from .conftest import PHONE_NUMBER_ID, TOKEN, MakeConnector

BSUID = "US.13491208655302741918"


# -- addressing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("+16505551234", {"to": "16505551234"}),
        ("16505551234", {"to": "16505551234"}),
        (" +1 650-555-1234 ", {"to": "16505551234"}),
        ("+54 9 11 5555-0000", {"to": "5491155550000"}),
        (BSUID, {"recipient": BSUID}),
        ("US.ENT.11815799212886844830", {"recipient": "US.ENT.11815799212886844830"}),
        (Lead(id="1", phone="16315551181"), {"to": "16315551181"}),
        (Lead(id=BSUID, user_id=BSUID), {"recipient": BSUID}),
    ],
)
def test_recipient_forms(to: str | Lead, expected: dict[str, str]) -> None:
    assert recipient_for(to) == expected


@pytest.mark.parametrize("to", ["", "hello", "+1 650", "1" * 16, "us.123", "US.", "+US.1234"])
def test_bad_recipients_are_refused(to: str) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        recipient_for(to)


def test_send_to_a_phone_returns_the_wamid(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    wamids = make_connector().send("+16505551234", "Your order has shipped.")
    [request] = graph.sent()
    assert request.path == f"/v25.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"body": "Your order has shipped."},
    }
    assert len(wamids) == 1 and wamids[0].startswith("wamid.")


def test_send_to_a_business_scoped_user_id(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    make_connector().send(BSUID, Text("Hi"))
    [request] = graph.sent()
    assert request.json["recipient"] == BSUID
    assert "to" not in request.json


def test_wamids_are_returned_in_order(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    connector = make_connector()
    first = connector.send("16505551234", "one")
    second = connector.send("16505551234", "two")
    assert first != second
    assert sorted(first + second) == first + second  # the fake numbers them in order


def test_a_long_string_is_split_and_every_wamid_returned(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    body = "\n\n".join(f"Paragraph {i}. " + "word " * 200 for i in range(5))
    wamids = make_connector(limits="strict").send("16505551234", body)
    assert len(wamids) == len(graph.sent_texts()) == 2
    assert all(len(t) <= 4096 for t in graph.sent_texts())


def test_send_refuses_what_cannot_be_sent(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    connector = make_connector()
    with pytest.raises(ValueError, match="empty"):
        connector.send("16505551234", "   ")
    with pytest.raises(TypeError):
        connector.send("16505551234", {"type": "text"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message_id="):
        connector.send("16505551234", React("👍"))
    assert graph.requests == []


def test_send_works_without_an_app_from_the_environment(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_TOKEN", TOKEN)
    monkeypatch.setenv("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID)
    monkeypatch.setenv("WHATSAPP_BASE_URL", graph.base_url)
    assert WhatsappConnector().send("16505551234", "from a worker")
    assert graph.sent_texts() == ["from a worker"]


def test_send_without_credentials_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="WHATSAPP_PHONE_NUMBER_ID"):
        WhatsappConnector(token="t").send("16505551234", "x")
    with pytest.raises(ConfigurationError, match="WHATSAPP_TOKEN"):
        WhatsappConnector(phone_number_id="1").send("16505551234", "x")


def test_send_after_init_app_uses_app_config(graph: FakeGraphAPI) -> None:
    app = Flask(__name__)
    app.config.update(
        WHATSAPP_TOKEN=TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        WHATSAPP_VERIFY_TOKEN="v",
        WHATSAPP_APP_SECRET="s",
        WHATSAPP_BASE_URL=graph.base_url,
    )
    connector = WhatsappConnector()
    connector.init_app(app)
    with app.app_context():  # the app's settings; outside one, the environment's
        connector.send("16505551234", "configured by the app")
    assert graph.sent_texts() == ["configured by the app"]


# -- the 24-hour customer-service window ------------------------------------------------------------


def test_outside_the_window_only_a_template_can_reach_the_user(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    connector = make_connector()
    graph.fail_next(
        code=131047,
        message="Re-engagement message",
        details="Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
    )
    with pytest.raises(GraphAPIError) as info:
        connector.send("16505551234", "Are you still there?")
    error = info.value
    assert "only a template can reach this user now" in str(error)
    assert error.code == 131047
    assert error.http_status == 400
    assert error.retryable is False
    assert "24 hours" in (error.details or "")
    assert isinstance(error.__cause__, GraphAPIError)
    # A template goes through.
    assert connector.send("16505551234", Template("hello_world"))
    assert graph.sent()[-1].json["type"] == "template"


def test_other_graph_errors_keep_metas_message(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    graph.fail_next(code=131026, message="Message Undeliverable.")
    with pytest.raises(GraphAPIError, match="Message Undeliverable") as info:
        make_connector().send("16505551234", "x")
    assert "template" not in str(info.value)


def test_a_window_error_inside_a_webhook_is_logged_plainly(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    from cel_whatsapp.testing import text_webhook

    from .conftest import make_app, post_webhook

    client = make_app(make_connector(lambda m: "late answer")).test_client()
    graph.fail_next(code=131047, message="Re-engagement message")
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        assert post_webhook(client, text_webhook("hi")).status_code == 200
    assert "only a template can reach this user now" in caplog.text


# -- read receipts --------------------------------------------------------------------------------


def test_mark_read(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    make_connector().mark_read("wamid.IN")
    [receipt] = graph.read_receipts()
    assert receipt.json == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN",
    }
    assert graph.sent() == []


def test_mark_read_with_typing_indicator(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    make_connector().mark_read("wamid.IN", typing=True)
    [receipt] = graph.read_receipts()
    assert receipt.json == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN",
        "typing_indicator": {"type": "text"},
    }


def test_mark_read_needs_a_message_id(make_connector: MakeConnector) -> None:
    with pytest.raises(ValueError):
        make_connector().mark_read("")


# -- media upload -----------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) + b"\r\n--x--\r\n"


def test_upload_bytes(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    media_id = make_connector().upload_media(PNG, "image/png", "logo.png")
    [request] = graph.requests
    assert request.path == f"/v25.0/{PHONE_NUMBER_ID}/media"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    upload = graph.uploads[media_id]
    assert upload.data == PNG  # byte for byte
    assert (upload.mime_type, upload.filename, upload.messaging_product) == (
        "image/png",
        "logo.png",
        "whatsapp",
    )


def test_upload_a_path_and_a_file(
    make_connector: MakeConnector, graph: FakeGraphAPI, tmp_path: Path
) -> None:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(b"%PDF-1.4 fake")
    connector = make_connector()
    from_path = connector.upload_media(path, "application/pdf")
    from_str = connector.upload_media(str(path), "application/pdf", filename="renamed.pdf")
    with path.open("rb") as handle:
        from_file = connector.upload_media(handle, "application/pdf")
    assert len({from_path, from_str, from_file}) == 3
    assert graph.uploads[from_path].filename == "invoice.pdf"
    assert graph.uploads[from_str].filename == "renamed.pdf"
    assert graph.uploads[from_file].filename == "invoice.pdf"
    assert graph.uploads[from_file].data == b"%PDF-1.4 fake"


def test_upload_without_a_name_gets_one_from_the_type(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    media_id = make_connector().upload_media(io.BytesIO(b"ID3 audio"), "audio/mpeg")
    assert graph.uploads[media_id].filename == "upload.mp3"


def test_uploaded_media_can_be_sent(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    connector = make_connector()
    media_id = connector.upload_media(PNG, "image/png")
    connector.send("16505551234", Image(media_id=media_id, caption="Our logo"))
    assert graph.sent()[-1].json["image"] == {"id": media_id, "caption": "Our logo"}


def test_upload_refuses_bad_input(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    connector = make_connector()
    with pytest.raises(ValueError, match="empty"):
        connector.upload_media(b"", "image/png")
    with pytest.raises(ValueError, match="MIME type"):
        connector.upload_media(PNG, "png")
    with pytest.raises(TypeError, match="binary mode"):
        connector.upload_media(io.StringIO("text"), "text/plain")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        connector.upload_media(12, "image/png")  # type: ignore[arg-type]
    assert graph.requests == []


def test_upload_errors_come_from_meta(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    with pytest.raises(GraphAPIError, match="131053"):
        make_connector().upload_media(b"MZ\x90\x00", "application/x-msdownload")
