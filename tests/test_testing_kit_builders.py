"""Webhook builders: one per update in Meta's messages-webhook reference, accepted end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from cel_whatsapp import WhatsappConnector
from cel_whatsapp.core.parsing import parse_webhook
from cel_whatsapp.core.signature import verify
from cel_whatsapp.testing import WhatsappTestClient
from cel_whatsapp.testing import webhooks as w

PHONE_ID = w.DEFAULT_PHONE_NUMBER_ID

# (builder, the message's type, the keys of its type object in Meta's reference)
MESSAGE_BUILDERS: dict[str, tuple[Callable[[], dict[str, Any]], str, set[str]]] = {
    "text": (lambda: w.text_message("hi"), "text", {"body"}),
    "image": (
        lambda: w.image_message(caption="c", url="https://x/y"),
        "image",
        {"caption", "mime_type", "sha256", "id", "url"},
    ),
    "audio": (lambda: w.audio_message(), "audio", {"mime_type", "sha256", "id", "voice"}),
    "voice": (lambda: w.audio_message(voice=True), "audio", {"mime_type", "sha256", "id", "voice"}),
    "video": (
        lambda: w.video_message(caption="v"),
        "video",
        {"caption", "mime_type", "sha256", "id"},
    ),
    "document": (
        lambda: w.document_message(filename="a.pdf", caption="d"),
        "document",
        {"caption", "filename", "mime_type", "sha256", "id"},
    ),
    "sticker": (
        lambda: w.sticker_message(animated=True),
        "sticker",
        {"mime_type", "sha256", "id", "animated"},
    ),
    "location": (
        lambda: w.location_message(1.5, 2.5, name="N", address="A", url="https://u"),
        "location",
        {"latitude", "longitude", "name", "address", "url"},
    ),
    "live location": (lambda: w.location_message(1.5, 2.5), "location", {"latitude", "longitude"}),
    "contacts": (
        lambda: w.contacts_message([w.contact_card("Ann B", phones=["+1 555 0100"])]),
        "contacts",
        set(),
    ),
    "button_reply": (
        lambda: w.button_reply_message("yes", "Yes"),
        "interactive",
        {"type", "button_reply"},
    ),
    "list_reply": (
        lambda: w.list_reply_message("r1", "Row", "Desc"),
        "interactive",
        {"type", "list_reply"},
    ),
    "nfm_reply": (
        lambda: w.nfm_reply_message({"flow_token": "t", "size": "M"}),
        "interactive",
        {"type", "nfm_reply"},
    ),
    "template button": (
        lambda: w.template_button_message("PAYLOAD", "Stop promotions"),
        "button",
        {"payload", "text"},
    ),
    "reaction": (lambda: w.reaction_message("wamid.X"), "reaction", {"message_id", "emoji"}),
    "reaction removed": (lambda: w.reaction_message("wamid.X", None), "reaction", {"message_id"}),
    "order": (
        lambda: w.order_message(text="Love these!"),
        "order",
        {"catalog_id", "text", "product_items"},
    ),
    "system": (lambda: w.system_message(), "system", {"body", "wa_id", "type"}),
    "unsupported": (lambda: w.unsupported_message(), "unsupported", {"type"}),
}


@pytest.mark.parametrize("name", sorted(MESSAGE_BUILDERS))
def test_message_builders_match_the_reference_and_parse(name: str) -> None:
    build, message_type, keys = MESSAGE_BUILDERS[name]
    message = build()
    assert message["type"] == message_type
    assert message["id"].startswith("wamid.") and message["timestamp"].isdigit()
    if keys:
        assert set(message[message_type]) == keys
    body = w.webhook(message)
    value = body["entry"][0]["changes"][0]["value"]
    assert ("contacts" in value) is (message_type != "system")  # Meta sends none for system
    parsed = parse_webhook(json.loads(w.encode(body)), phone_number_id=PHONE_ID)
    [parsed_message] = parsed.messages
    assert (parsed_message.id, parsed_message.type) == (message["id"], message_type)
    assert parsed_message.lead.phone == w.DEFAULT_SENDER
    assert parsed_message.raw == message


def test_shapes_that_matter() -> None:
    assert w.audio_message(voice=True)["audio"]["mime_type"].startswith("audio/ogg")
    assert w.reaction_message("wamid.X", None)["reaction"] == {"message_id": "wamid.X"}
    nfm = w.nfm_reply_message({"a": 1})["interactive"]["nfm_reply"]
    assert isinstance(nfm["response_json"], str) and json.loads(nfm["response_json"]) == {"a": 1}
    reply = w.button_reply_message("b", "B", reply_to="wamid.MENU")
    assert reply["context"] == {"from": w.DEFAULT_DISPLAY_NUMBER, "id": "wamid.MENU"}
    card = w.contact_card("Ann B", phones=["+1 555 0100"], emails=["a@b.c"])
    assert card["phones"] == [{"phone": "+1 555 0100", "wa_id": "15550100", "type": "CELL"}]
    forwarded = w.text_message("f", forwarded=True, frequently_forwarded=True)
    assert forwarded["context"] == {"forwarded": True, "frequently_forwarded": True}
    bsuid = w.text_message("u", sender=None, user_id="US.1349")
    assert "from" not in bsuid and bsuid["from_user_id"] == "US.1349"
    unsupported = w.unsupported_message()
    assert unsupported["errors"][0]["code"] == 131051


@pytest.mark.parametrize("state", ["sent", "delivered", "read", "failed", "played"])
def test_status_builders(state: str) -> None:
    body = w.status_webhook("wamid.OUT", state, recipient_user_id="US.1")
    [item] = body["entry"][0]["changes"][0]["value"]["statuses"]
    assert (item["id"], item["status"], item["recipient_id"]) == (
        "wamid.OUT",
        state,
        w.DEFAULT_SENDER,
    )
    assert item["recipient_user_id"] == "US.1"
    assert ("pricing" in item) is (state in ("sent", "delivered"))
    assert ("errors" in item) is (state == "failed")
    assert parse_webhook(body, phone_number_id=PHONE_ID).messages == []


def test_errors_webhook_and_batches() -> None:
    body = w.errors_webhook()
    assert body["entry"][0]["changes"][0]["value"]["errors"][0]["code"] == 130429
    batch = w.webhook(
        w.text_message("a"),
        w.text_message("b", sender="15550001111"),
        statuses=[w.status("wamid.O", "read")],
    )
    value = batch["entry"][0]["changes"][0]["value"]
    assert [c["wa_id"] for c in value["contacts"]] == [w.DEFAULT_SENDER, "15550001111"]
    assert len(parse_webhook(batch, phone_number_id=PHONE_ID).messages) == 2


def test_bodies_are_signed_like_meta_signs_them() -> None:
    raw = w.encode(w.text_webhook("caf\u00e9"))
    assert b"\\u00e9" in raw  # Meta escapes non-ASCII
    headers = w.signed_headers(raw, "s3cret")
    verify(raw, headers["X-Hub-Signature-256"], "s3cret")
    assert "X-Hub-Signature-256" not in w.signed_headers(raw, None)


def test_every_builder_goes_through_a_real_app(whatsapp: WhatsappTestClient) -> None:
    seen: list[str] = []
    app = Flask("kit")
    # Once the connector routes reactions and system messages elsewhere by default,
    # ask for every type so this test still sees each builder's message.
    options = {"assistant_types": "all"} if _accepts_assistant_types() else {}
    WhatsappConnector(
        assistant=lambda m: seen.append(m.type), read_receipts=False, **options
    ).init_app(app)
    for build, _, _ in MESSAGE_BUILDERS.values():
        assert whatsapp.send(app, build()).status_code == 200
    assert whatsapp.post(app, w.status_webhook("wamid.O", "failed")).status_code == 200
    assert whatsapp.post(app, w.errors_webhook()).status_code == 200
    assert set(seen) == {t for _, t, _ in MESSAGE_BUILDERS.values()}


def _accepts_assistant_types() -> bool:
    import inspect

    return "assistant_types" in inspect.signature(WhatsappConnector).parameters
