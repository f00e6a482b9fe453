"""Every webhook fixture under tests/data parses to exactly the model values below.

The fixtures are complete webhook bodies shaped after Meta's webhook
reference, one per message type, status and error. Nothing here stubs the
parsing layer: each body goes through ``parse_webhook`` as the webhook does.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from cel_whatsapp import (
    Choice,
    ContactAttachment,
    ContactPhone,
    Lead,
    LocationAttachment,
    MediaAttachment,
    Message,
    Reaction,
    StatusEvent,
    WebhookError,
)
from cel_whatsapp.core.parsing import ParsedWebhook, parse_webhook

DATA = Path(__file__).parent / "data"
PNID = "106540352242922"
DISPLAY = "15550783881"
WABA = "102290129340398"
ANA = Lead(id="5511987654321", phone="5511987654321", name="Ana Souza", phone_number_id=PNID)
SHA_B64 = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="
LOOKASIDE = (
    "https://lookaside.fbsbx.com/whatsapp_business/attachments/"
    "?mid=1902004&ext=1750000000&hash=ATtestHash"
)


def load(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return body


def parse(name: str) -> tuple[ParsedWebhook, dict[str, Any]]:
    body = load(name)
    return parse_webhook(body, phone_number_id=PNID), body


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def only_message(name: str) -> tuple[Message, dict[str, Any]]:
    parsed, body = parse(name)
    assert parsed.skipped == 0
    assert parsed.statuses == [] and parsed.errors == []
    [message] = parsed.messages
    [raw] = body["entry"][0]["changes"][0]["value"]["messages"]
    return message, raw


def expected(raw: dict[str, Any], *, lead: Lead = ANA, **fields: Any) -> Message:
    metadata = {
        "raw": raw,
        "phone_number_id": PNID,
        "display_phone_number": DISPLAY,
        "waba_id": WABA,
        **fields.pop("metadata", {}),
    }
    return Message(lead=lead, metadata=metadata, **fields)


# -- messages a person wrote -----------------------------------------------------------


def test_text() -> None:
    message, raw = only_message("text")
    assert message == expected(
        raw,
        id="wamid.TEXT01",
        text="Is the blue one still in stock?",
        date=at(1750000001),
        type="text",
    )
    assert message.raw is raw


def test_text_reply_sets_reply_to() -> None:
    message, raw = only_message("text_reply")
    assert message == expected(
        raw,
        id="wamid.TEXT02",
        text="Yes, that one",
        date=at(1750000002),
        type="text",
        reply_to="wamid.OURS0001",
    )


def test_text_forwarded() -> None:
    message, raw = only_message("text_forwarded")
    assert message == expected(
        raw,
        id="wamid.TEXT03",
        text="Look at this offer",
        date=at(1750000003),
        type="text",
        forwarded=True,
    )
    assert message.frequently_forwarded is False


def test_text_frequently_forwarded() -> None:
    message, raw = only_message("text_frequently_forwarded")
    assert message == expected(
        raw,
        id="wamid.TEXT04",
        text="Share with 10 friends!",
        date=at(1750000004),
        type="text",
        frequently_forwarded=True,
    )
    assert message.forwarded is False


def test_text_about_a_catalog_product() -> None:
    message, raw = only_message("text_referred_product")
    assert message == expected(
        raw,
        id="wamid.TEXT05",
        text="Does it come in size M?",
        date=at(1750000005),
        type="text",
        reply_to="wamid.CATALOG01",
        metadata={
            "referred_product": {
                "catalog_id": "194836987003835",
                "product_retailer_id": "tee-blue-m",
            }
        },
    )


def test_text_from_a_click_to_whatsapp_ad() -> None:
    message, raw = only_message("text_referral")
    assert message == expected(
        raw,
        id="wamid.TEXT06",
        text="Tell me more about the sale",
        date=at(1750000006),
        type="text",
        metadata={"referral": raw["referral"]},
    )
    assert message.metadata["referral"]["source_id"] == "120226305854810726"
    assert message.metadata["referral"]["ctwa_clid"].startswith("ARAkLkA8")
    with pytest.raises(TypeError):
        message.metadata["referral"]["source_id"] = "x"  # type: ignore[index]


def test_image_with_caption_and_url() -> None:
    message, raw = only_message("image")
    assert message == expected(
        raw,
        id="wamid.IMG01",
        text="The crack on the screen",
        date=at(1750000010),
        type="image",
        attachments=(
            MediaAttachment(
                kind="image",
                media_id="1902004",
                mime_type="image/jpeg",
                sha256=SHA_B64,
                caption="The crack on the screen",
                url=LOOKASIDE,
            ),
        ),
    )


def test_voice_note() -> None:
    message, raw = only_message("audio_voice")
    assert message == expected(
        raw,
        id="wamid.AUD01",
        text=None,
        date=at(1750000011),
        type="audio",
        attachments=(
            MediaAttachment(
                kind="audio",
                media_id="1902005",
                mime_type="audio/ogg; codecs=opus",
                sha256=SHA_B64,
                voice=True,
            ),
        ),
    )


def test_audio_file_is_not_a_voice_note() -> None:
    message, raw = only_message("audio_file")
    assert message == expected(
        raw,
        id="wamid.AUD02",
        text=None,
        date=at(1750000012),
        type="audio",
        attachments=(
            MediaAttachment("audio", "1902006", "audio/mpeg", SHA_B64, None, None, None, False),
        ),
    )


def test_video() -> None:
    message, raw = only_message("video")
    assert message == expected(
        raw,
        id="wamid.VID01",
        text="It makes this noise",
        date=at(1750000013),
        type="video",
        attachments=(
            MediaAttachment(
                kind="video",
                media_id="1902007",
                mime_type="video/mp4",
                sha256=SHA_B64,
                caption="It makes this noise",
            ),
        ),
    )


def test_document_keeps_its_filename() -> None:
    message, raw = only_message("document")
    assert message == expected(
        raw,
        id="wamid.DOC01",
        text="My invoice",
        date=at(1750000014),
        type="document",
        attachments=(
            MediaAttachment(
                kind="document",
                media_id="1902008",
                mime_type="application/pdf",
                sha256=SHA_B64,
                caption="My invoice",
                filename="invoice-0042.pdf",
                url=LOOKASIDE,
            ),
        ),
    )


def test_animated_sticker() -> None:
    message, raw = only_message("sticker")
    assert message == expected(
        raw,
        id="wamid.STK01",
        text=None,
        date=at(1750000015),
        type="sticker",
        attachments=(
            MediaAttachment(
                kind="sticker",
                media_id="1902009",
                mime_type="image/webp",
                sha256=SHA_B64,
                animated=True,
            ),
        ),
    )


def test_location() -> None:
    message, raw = only_message("location")
    assert message == expected(
        raw,
        id="wamid.LOC01",
        text=None,
        date=at(1750000020),
        type="location",
        attachments=(
            LocationAttachment(
                latitude=-23.561414,
                longitude=-46.655881,
                name="MASP",
                address="Av. Paulista, 1578, São Paulo",
                url="https://masp.org.br/",
            ),
        ),
    )


def test_live_location_has_only_coordinates() -> None:
    message, raw = only_message("location_live")
    assert message == expected(
        raw,
        id="wamid.LOC02",
        text=None,
        date=at(1750000021),
        type="location",
        attachments=(LocationAttachment(48.858844, 2.294351),),
    )


def test_contacts_one_attachment_per_card() -> None:
    message, raw = only_message("contacts")
    first, second = raw["contacts"]
    assert message == expected(
        raw,
        id="wamid.CON01",
        text=None,
        date=at(1750000030),
        type="contacts",
        attachments=(
            ContactAttachment(
                name="João Pereira",
                phones=(
                    ContactPhone("+351 912 345 678", "351912345678", "CELL"),
                    ContactPhone("+351 213 000 000", None, "WORK"),
                ),
                emails=("joao@example.com", "joao.home@example.org"),
                raw=first,
            ),
            ContactAttachment(
                name="Mia",
                phones=(("+1 415 555 0100", "14155550100", "MOBILE"),),  # type: ignore[arg-type]
                raw=second,
            ),
        ),
    )
    card = message.attachments[0]
    assert isinstance(card, ContactAttachment)
    assert card.phones[0].wa_id == "351912345678"
    assert card.raw["org"] == {"company": "Pereira & Filhos", "title": "Owner"}


def test_reply_button() -> None:
    message, raw = only_message("interactive_button_reply")
    assert message == expected(
        raw,
        id="wamid.INT01",
        text="Confirm",
        date=at(1750000040),
        type="interactive",
        reply_to="wamid.OURBUTTONS",
        choice=Choice(id="confirm-order-42", title="Confirm"),
        metadata={"interactive_type": "button_reply"},
    )


def test_list_row_keeps_id_and_description() -> None:
    message, raw = only_message("interactive_list_reply")
    assert message == expected(
        raw,
        id="wamid.INT02",
        text="Express",
        date=at(1750000041),
        type="interactive",
        reply_to="wamid.OURLIST",
        choice=Choice("ship-express", "Express", "Next day, R$ 25"),
        metadata={"interactive_type": "list_reply"},
    )


def test_completed_flow() -> None:
    message, raw = only_message("interactive_nfm_reply")
    assert message == expected(
        raw,
        id="wamid.INT03",
        text="Sent",
        date=at(1750000042),
        type="interactive",
        reply_to="wamid.OURFLOW",
        choice=Choice(id="flow", title="Sent"),
        metadata={
            "interactive_type": "nfm_reply",
            "flow_response": {
                "flow_token": "signup-7f3a",
                "email": "ana@example.com",
                "plan": "pro",
            },
            "flow_token": "signup-7f3a",
        },
    )


def test_interactive_without_its_object_is_delivered_bare(
    caplog: pytest.LogCaptureFixture,
) -> None:
    message, raw = only_message("interactive_missing")
    assert message == expected(
        raw, id="wamid.INT04", text=None, date=at(1750000043), type="interactive"
    )
    assert "without its 'interactive' object" in caplog.text


def test_template_quick_reply_button() -> None:
    message, raw = only_message("button")
    assert message == expected(
        raw,
        id="wamid.BTN01",
        text="Stop promotions",
        date=at(1750000050),
        type="button",
        reply_to="wamid.OURTEMPLATE",
        choice=Choice(id="STOP_PROMOTIONS", title="Stop promotions"),
    )


def test_order() -> None:
    message, raw = only_message("order")
    assert message == expected(
        raw,
        id="wamid.ORD01",
        text="Gift wrap please",
        date=at(1750000070),
        type="order",
        metadata={
            "catalog_id": "194836987003835",
            "product_items": (
                {
                    "product_retailer_id": "tee-blue-m",
                    "quantity": 2,
                    "item_price": 49.9,
                    "currency": "BRL",
                },
                {
                    "product_retailer_id": "cap-black",
                    "quantity": 1,
                    "item_price": 35.0,
                    "currency": "BRL",
                },
            ),
        },
    )


# -- reactions, system notices, and what is not for the assistant --------------------------


def test_reaction() -> None:
    message, raw = only_message("reaction")
    assert message == expected(
        raw,
        id="wamid.REA01",
        text=None,
        date=at(1750000060),
        type="reaction",
        reaction=Reaction(message_id="wamid.OURS0002", emoji="\N{THUMBS UP SIGN}"),
    )


@pytest.mark.parametrize(
    ("name", "wamid", "seconds"),
    [
        ("reaction_removed", "wamid.REA02", 1750000061),
        ("reaction_removed_empty", "wamid.REA03", 1750000062),
    ],
)
def test_removed_reaction_has_no_emoji(name: str, wamid: str, seconds: int) -> None:
    message, raw = only_message(name)
    assert message == expected(
        raw,
        id=wamid,
        text=None,
        date=at(seconds),
        type="reaction",
        reaction=Reaction("wamid.OURS0002", None),
    )


def test_user_changed_number_without_contacts_array() -> None:
    message, raw = only_message("system_user_changed_number")
    assert message == expected(
        raw,
        lead=Lead(id="5511987654321", phone="5511987654321", phone_number_id=PNID),
        id="wamid.SYS01",
        text="User Ana Souza changed from 5511987654321 to 5511912345678",
        date=at(1750000080),
        type="system",
        metadata={
            "system_type": "user_changed_number",
            "new_wa_id": "5511912345678",
            "new_user_id": None,
        },
    )


def test_user_changed_user_id() -> None:
    message, raw = only_message("system_user_changed_user_id")
    assert message == expected(
        raw,
        lead=Lead(
            id="5511987654321",
            phone="5511987654321",
            user_id="BR.1162731400029315874",
            phone_number_id=PNID,
        ),
        id="wamid.SYS02",
        text="User Ana Souza changed from BR.1162731400029315874 to BR.9035571130081722811",
        date=at(1750000081),
        type="system",
        metadata={
            "system_type": "user_changed_user_id",
            "new_wa_id": "5511987654321",
            "new_user_id": "BR.9035571130081722811",
        },
    )


def test_unsupported_keeps_metas_error_code() -> None:
    message, raw = only_message("unsupported")
    error = WebhookError(
        code=131051,
        title="Message type unknown",
        message="Message type unknown",
        details="Message type is currently not supported.",
    )
    assert message == expected(
        raw,
        id="wamid.UNS01",
        text=None,
        date=at(1750000090),
        type="unsupported",
        metadata={"unsupported_type": "poll", "error_code": 131051, "errors": (error,)},
    )


def test_edit_carries_the_new_version() -> None:
    message, raw = only_message("edit")
    assert message == expected(
        raw,
        id="wamid.EDT01",
        text="The crack on the screen (left corner)",
        date=at(1750000100),
        type="edit",
        attachments=(
            MediaAttachment(
                kind="image",
                media_id="1902004",
                mime_type="image/jpeg",
                sha256=SHA_B64,
                caption="The crack on the screen (left corner)",
            ),
        ),
        metadata={"original_message_id": "wamid.IMG01", "edited_type": "image"},
    )


def test_revoke() -> None:
    message, raw = only_message("revoke")
    assert message == expected(
        raw,
        id="wamid.RVK01",
        text=None,
        date=at(1750000101),
        type="revoke",
        metadata={"original_message_id": "wamid.TEXT01"},
    )


def test_request_welcome() -> None:
    message, raw = only_message("request_welcome")
    assert message == expected(
        raw, id="wamid.WEL01", text=None, date=at(1750000110), type="request_welcome"
    )


def test_a_type_nobody_knows_yet_is_kept_as_is() -> None:
    message, raw = only_message("unknown_type")
    assert message == expected(
        raw, id="wamid.NEW01", text=None, date=at(1750000120), type="hologram"
    )


def test_message_echo_is_marked_and_addressed_to_the_user() -> None:
    parsed, body = parse("echo")
    [echo] = parsed.messages
    [raw] = body["entry"][0]["changes"][0]["value"]["message_echoes"]
    assert echo == expected(
        raw,
        lead=Lead(id="5511987654321", phone="5511987654321", phone_number_id=PNID),
        id="wamid.ECH01",
        text="Your order has shipped",
        date=at(1750000300),
        type="text",
        metadata={"echo": True},
    )


# -- who wrote it: defensive sender handling ----------------------------------------------


def test_username_user_with_empty_phone() -> None:
    message, raw = only_message("bsuid_only")
    bsuid = "BR.1162731400029315874"
    assert message == expected(
        raw,
        lead=Lead(id=bsuid, phone=None, user_id=bsuid, name="Ana S.", phone_number_id=PNID),
        id="wamid.BSU01",
        text="Hi, I use a username",
        date=at(1750000130),
        type="text",
    )
    assert message.lead.recipient == {"recipient": bsuid}


def test_contact_without_profile_or_user_id() -> None:
    message, raw = only_message("contact_without_profile")
    assert message == expected(
        raw,
        lead=Lead(id="5511987654321", phone="5511987654321", phone_number_id=PNID),
        id="wamid.NOP01",
        text="no profile here",
        date=at(1750000140),
        type="text",
    )


def test_missing_contacts_array() -> None:
    message, raw = only_message("no_contacts")
    assert message == expected(
        raw,
        lead=Lead(id="5511987654321", phone="5511987654321", phone_number_id=PNID),
        id="wamid.NOC01",
        text="no contacts array",
        date=at(1750000141),
        type="text",
    )


# -- statuses and errors ------------------------------------------------------------------


def only_status(name: str) -> tuple[StatusEvent, dict[str, Any]]:
    parsed, body = parse(name)
    assert parsed.skipped == 0 and parsed.messages == [] and parsed.errors == []
    [status] = parsed.statuses
    [raw] = body["entry"][0]["changes"][0]["value"]["statuses"]
    assert status.raw == raw
    return status, raw


def test_status_sent_with_conversation_and_pricing() -> None:
    status, _ = only_status("status_sent")
    assert status == StatusEvent(
        phone_number_id=PNID,
        message_id="wamid.OUT01",
        status="sent",
        recipient="5511987654321",
        recipient_user_id=None,
        timestamp=at(1750000200),
        errors=(),
        pricing={
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        },
        conversation={
            "id": "8f842dbba350821654c9dfed31f5635c",
            "expiration_timestamp": "1750086600",
            "origin": {"type": "service"},
        },
    )
    assert status.raw["biz_opaque_callback_data"] == "order-42"


def test_status_delivered() -> None:
    status, _ = only_status("status_delivered")
    assert status == StatusEvent(
        "wamid.OUT01",
        "delivered",
        "5511987654321",
        None,
        at(1750000201),
        (),
        {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        },
        None,
        phone_number_id=PNID,
    )


@pytest.mark.parametrize(
    ("name", "wamid", "state", "seconds"),
    [
        ("status_read", "wamid.OUT01", "read", 1750000202),
        ("status_played", "wamid.OUT02", "played", 1750000203),
    ],
)
def test_status_without_pricing(name: str, wamid: str, state: str, seconds: int) -> None:
    status, _ = only_status(name)
    assert status == StatusEvent(
        phone_number_id=PNID,
        message_id=wamid,
        status=state,
        recipient="5511987654321",
        timestamp=at(seconds),
    )
    assert (status.pricing, status.conversation, status.errors) == (None, None, ())


def test_status_failed_carries_the_errors() -> None:
    status, _ = only_status("status_failed")
    assert status == StatusEvent(
        phone_number_id=PNID,
        message_id="wamid.OUT03",
        status="failed",
        recipient="5511987654321",
        recipient_user_id=None,
        timestamp=at(1750000204),
        errors=(
            WebhookError(
                code=131047,
                title="Re-engagement message",
                message="Re-engagement message",
                details=(
                    "Message failed to send because more than 24 hours have passed since "
                    "the customer last replied to this number."
                ),
            ),
        ),
    )


def test_status_for_a_message_sent_to_a_user_id() -> None:
    status, _ = only_status("status_bsuid")
    assert status == StatusEvent(
        phone_number_id=PNID,
        message_id="wamid.OUT04",
        status="delivered",
        recipient=None,
        recipient_user_id="BR.1162731400029315874",
        timestamp=at(1750000205),
    )


def test_value_errors() -> None:
    parsed, _ = parse("errors")
    assert (parsed.messages, parsed.statuses, parsed.skipped) == ([], [], 0)
    assert parsed.errors == [
        WebhookError(
            code=130429,
            title="Rate limit hit",
            message="Rate limit hit",
            details="Cloud API message throughput has been reached.",
        )
    ]


# -- a batch with broken items ----------------------------------------------------------


def test_malformed_items_are_skipped_and_the_rest_kept(caplog: pytest.LogCaptureFixture) -> None:
    parsed, _ = parse("batch_with_malformed")
    # No id; a latitude that is not a number; a status without a timestamp.
    assert parsed.skipped == 3
    assert [(m.id, m.type) for m in parsed.messages] == [
        ("wamid.BAT01", "text"),
        ("wamid.BAT04", "image"),
        ("wamid.BAT05", "reaction"),
    ]
    assert [(s.message_id, s.status) for s in parsed.statuses] == [("wamid.OUT05", "read")]
    # One summary line for the whole body, never one per item.
    [record] = caplog.records
    assert record.getMessage() == (
        "webhook: 3 malformed item(s) skipped: "
        "message x1 (id; first at entry[0].changes[0].value.messages[1]); "
        "'location' content x1 (latitude; first at entry[0].changes[0].value.messages[2]); "
        "status x1 (timestamp; first at entry[0].changes[0].value.statuses[1])"
    )
    assert "north" not in caplog.text  # values are never logged, only field names


def test_every_fixture_has_a_test_here() -> None:
    """No fixture file goes without exact expected values in this module."""
    source = Path(__file__).read_text(encoding="utf-8")
    untested = {p.stem for p in DATA.glob("*.json") if f'"{p.stem}"' not in source}
    assert untested == set()
