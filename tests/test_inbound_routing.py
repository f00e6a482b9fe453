"""Which update reaches the assistant and which callback, end to end through the webhook.

Every fixture under tests/data is posted, signed, to a real Flask app; the
callbacks record what they receive.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cel_whatsapp import Message, StatusEvent, WebhookError, WhatsappConnector
from cel_whatsapp.core.routing import PERSON_TYPES, UpdateRouter
from cel_whatsapp.core.webhook import WebhookHandler
from cel_whatsapp.testing import (
    FakeGraphAPI,
    encode,
    errors_webhook,
    reaction_message,
    signed_headers,
    text_message,
)
from cel_whatsapp.testing.webhooks import change_value, envelope, error

from .conftest import MakeConnector, make_app, post_webhook

DATA = Path(__file__).parent / "data"
ROUTING_LOGGER = "cel_whatsapp.core.routing"
FIXTURES = sorted(DATA.glob("*.json"))

#: What a person wrote, across all fixtures: the assistant's default diet.
PERSON_WRITTEN = {
    "wamid.TEXT01",
    "wamid.TEXT02",
    "wamid.TEXT03",
    "wamid.TEXT04",
    "wamid.TEXT05",
    "wamid.TEXT06",
    "wamid.IMG01",
    "wamid.AUD01",
    "wamid.AUD02",
    "wamid.VID01",
    "wamid.DOC01",
    "wamid.STK01",
    "wamid.LOC01",
    "wamid.LOC02",
    "wamid.CON01",
    "wamid.INT01",
    "wamid.INT02",
    "wamid.INT03",
    "wamid.INT04",
    "wamid.BTN01",
    "wamid.ORD01",
    "wamid.BSU01",
    "wamid.NOP01",
    "wamid.NOC01",
    "wamid.BAT01",
    "wamid.BAT04",
}
REACTIONS = {"wamid.REA01", "wamid.REA02", "wamid.REA03", "wamid.BAT05"}
SYSTEM = {"wamid.SYS01", "wamid.SYS02"}
#: Edits, revokes, welcome requests, unsupported and unknown types: on_update only.
OTHER = {"wamid.EDT01", "wamid.RVK01", "wamid.WEL01", "wamid.UNS01", "wamid.NEW01"}
ECHOES = {"wamid.ECH01"}
STATUSES = Counter(
    {
        ("wamid.OUT01", "sent"): 1,
        ("wamid.OUT01", "delivered"): 1,
        ("wamid.OUT01", "read"): 1,
        ("wamid.OUT02", "played"): 1,
        ("wamid.OUT03", "failed"): 1,
        ("wamid.OUT04", "delivered"): 1,
        ("wamid.OUT05", "read"): 1,
    }
)


class Recorder:
    """The assistant and every callback, writing down what they get."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def wire(self, connector: WhatsappConnector) -> WhatsappConnector:
        connector.assistant(self.make("assistant"))
        connector.on_reaction(self.make("reaction"))
        connector.on_system(self.make("system"))
        connector.on_status(self.make("status"))
        connector.on_error(self.make("error"))
        connector.on_update(self.make("update"))
        return connector

    def make(self, kind: str) -> Any:
        def record(update: Any) -> None:
            self.events.append((kind, update))

        return record

    def got(self, kind: str) -> list[Any]:
        return [update for k, update in self.events if k == kind]

    def ids(self, kind: str) -> set[str]:
        return {m.id for m in self.got(kind)}


def post_all_fixtures(connector: WhatsappConnector) -> None:
    client = make_app(connector).test_client()
    for path in FIXTURES:
        response = post_webhook(client, path.read_bytes())
        assert response.status_code == 200, path.name


def test_default_routing_of_every_fixture(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    recorder = Recorder()
    post_all_fixtures(recorder.wire(make_connector()))

    assert recorder.ids("assistant") == PERSON_WRITTEN
    assert {m.type for m in recorder.got("assistant")} <= PERSON_TYPES
    assert recorder.ids("reaction") == REACTIONS
    assert all(m.reaction is not None for m in recorder.got("reaction"))
    assert recorder.ids("system") == SYSTEM
    statuses = recorder.got("status")
    assert all(isinstance(s, StatusEvent) for s in statuses)
    assert Counter((s.message_id, s.status) for s in statuses) == STATUSES
    assert recorder.got("error") == [
        WebhookError(
            130429,
            "Rate limit hit",
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
        )
    ]
    updates = recorder.got("update")
    message_ids = [u.id for u in updates if isinstance(u, Message)]
    assert len(message_ids) == len(set(message_ids))
    assert set(message_ids) == PERSON_WRITTEN | REACTIONS | SYSTEM | OTHER | ECHOES
    assert [u for u in updates if isinstance(u, StatusEvent)] == statuses
    # The recording assistant answers nothing, and callbacks never send.
    assert graph.requests == []


def test_all_types_reach_the_assistant_except_echoes(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    recorder = Recorder()
    post_all_fixtures(recorder.wire(make_connector(assistant_types="all")))
    assert recorder.ids("assistant") == PERSON_WRITTEN | REACTIONS | SYSTEM | OTHER
    # The callbacks still run: they are notifications, not alternatives.
    assert recorder.ids("reaction") == REACTIONS
    assert recorder.ids("system") == SYSTEM


def test_assistant_types_as_a_set(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    recorder = Recorder()
    post_all_fixtures(recorder.wire(make_connector(assistant_types={"reaction", "location"})))
    assert recorder.ids("assistant") == REACTIONS | {"wamid.LOC01", "wamid.LOC02"}


@pytest.mark.parametrize(
    ("value", "error"),
    [("everything", ValueError), ("text", ValueError), ([1, 2], TypeError)],
)
def test_bad_assistant_types_fail_at_construction(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="assistant_types"):
        WhatsappConnector("t", "1", "v", assistant_types=value)


def test_on_update_runs_before_the_assistant(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    recorder = Recorder()
    client = make_app(recorder.wire(make_connector())).test_client()
    body = envelope(
        change_value([text_message("one", id="wamid.A"), text_message("two", id="wamid.B")])
    )
    assert post_webhook(client, body).status_code == 200
    assert [(kind, update.id) for kind, update in recorder.events] == [
        ("update", "wamid.A"),
        ("update", "wamid.B"),
        ("assistant", "wamid.A"),
        ("assistant", "wamid.B"),
    ]


def test_value_errors_are_logged_at_warning(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(make_connector()).test_client()
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        assert post_webhook(client, (DATA / "errors.json").read_bytes()).status_code == 200
    [record] = [r for r in caplog.records if r.name == ROUTING_LOGGER]
    assert record.levelno == logging.WARNING
    assert "WhatsApp reported 1 error(s)" in record.getMessage()
    assert "codes 130429;" in record.getMessage()
    assert "'Rate limit hit'" in record.getMessage()


def test_a_thousand_value_errors_make_one_bounded_warning(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    reported: list[WebhookError] = []
    connector = make_connector(max_body_bytes=30_000_000)
    connector.on_error(reported.append)
    client = make_app(connector).test_client()
    # 10 kB titles (also the message) with a line break, 25 distinct codes: about 21 MB.
    errors = [
        error(131000 + i % 25, f"title {i}\n" + "T" * 10_000, details="D" * 1_000)
        for i in range(1_000)
    ]
    with caplog.at_level(logging.DEBUG, logger="cel_whatsapp"):
        assert post_webhook(client, errors_webhook(*errors)).status_code == 200
    assert len(reported) == 1_000  # each one still reaches on_error
    [record] = [r for r in caplog.records if r.name == ROUTING_LOGGER]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert len(message) < 1_000
    assert message.startswith("WhatsApp reported 1000 error(s)")
    assert "131000, 131001" in message
    assert "131024" not in message  # the first 10 codes only
    assert "'title 0?TTT" in message  # cut short, the line break shown as ?
    assert "title 3" not in message  # a few titles only
    assert "\n" not in message
    assert "DDD" not in message


def test_messages_not_for_the_assistant_make_one_bounded_debug_line(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    answered: list[str] = []
    client = make_app(make_connector(lambda m: answered.append(m.id))).test_client()
    reactions = [reaction_message("wamid.OURS", sender=f"1555{i:07d}") for i in range(500)]
    unknown = []
    for i in range(500):
        kind = f"kind{i % 50}\n" + "K" * 2_000
        message = text_message("", sender=f"1666{i:07d}")
        del message["text"]
        message["type"] = kind
        message[kind] = {"id": str(i)}
        unknown.append(message)
    body = envelope(change_value([*reactions, *unknown, text_message("hi")]))
    with caplog.at_level(logging.DEBUG, logger="cel_whatsapp"):
        assert post_webhook(client, body).status_code == 200
    assert len(answered) == 1
    [record] = [r for r in caplog.records if r.name == ROUTING_LOGGER]
    assert record.levelno == logging.DEBUG
    message = record.getMessage()
    assert len(message) < 1_000
    assert message.startswith("1000 message(s) not for the assistant: reaction x500, ")
    assert "other x" in message  # 50 distinct types: counted, not all named
    assert "\n" not in message


def test_failing_callbacks_are_logged_and_the_batch_goes_on(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    answered: list[str] = []

    def broken(update: Any) -> None:
        raise RuntimeError("callback bug")

    connector = make_connector(lambda m: answered.append(m.id))
    for decorator in (
        connector.on_update,
        connector.on_reaction,
        connector.on_status,
        connector.on_error,
    ):
        decorator(broken)
    client = make_app(connector).test_client()
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        response = post_webhook(client, (DATA / "batch_with_malformed.json").read_bytes())
        assert post_webhook(client, (DATA / "errors.json").read_bytes()).status_code == 200
    assert response.status_code == 200
    assert answered == ["wamid.BAT01", "wamid.BAT04"]
    failures = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    # on_update for 3 messages and 1 status, on_reaction once, on_status once, on_error once.
    assert len(failures) == 7
    messages = {r.getMessage() for r in failures}
    assert "the on_reaction callback failed on message wamid.BAT05" in messages
    assert "the on_status callback failed on status 'read' of wamid.OUT05" in messages
    assert "the on_error callback failed on error 130429" in messages


def test_assistant_answers_a_photo_by_its_caption(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    def assistant(message: Message) -> str:
        [photo] = message.attachments
        return f"Got your {photo.kind}: {message.text}"  # type: ignore[union-attr]

    client = make_app(make_connector(assistant)).test_client()
    assert post_webhook(client, (DATA / "image.json").read_bytes()).status_code == 200
    assert graph.sent_texts() == ["Got your image: The crack on the screen"]
    [sent] = graph.sent()
    assert sent.json["to"] == "5511987654321"


def test_button_tap_reaches_the_assistant_with_its_id(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    def assistant(message: Message) -> str | None:
        return f"chose {message.choice.id}" if message.choice else None

    client = make_app(make_connector(assistant)).test_client()
    for name in ("interactive_button_reply", "interactive_list_reply", "button"):
        assert post_webhook(client, (DATA / f"{name}.json").read_bytes()).status_code == 200
    assert graph.sent_texts() == [
        "chose confirm-order-42",
        "chose ship-express",
        "chose STOP_PROMOTIONS",
    ]


def test_handler_without_on_updates_still_hands_over_messages() -> None:
    received: list[list[Message]] = []
    handler = WebhookHandler(
        verify_token="v", phone_number_id="106540352242922", on_messages=received.append
    )
    raw = encode(envelope(change_value([text_message("hi", id="wamid.H")])))
    result = handler.receive(raw, signed_headers(raw, None).get("X-Hub-Signature-256"))
    assert result.status == 200
    assert [[m.id for m in batch] for batch in received] == [["wamid.H"]]


def test_router_keeps_echoes_from_the_callbacks() -> None:
    from cel_whatsapp.core.parsing import parse_webhook

    router = UpdateRouter(assistant_types="all")
    seen: list[str] = []
    router.on_update = lambda u: seen.append(f"update {u.id}")  # type: ignore[union-attr]
    router.on_reaction = lambda m: seen.append(f"reaction {m.id}")
    delivered: list[Message] = []
    reaction_echo = {
        "from": "15550783881",
        "to": "5511987654321",
        "id": "wamid.ECH02",
        "timestamp": "1750000301",
        "type": "reaction",
        "reaction": {"message_id": "wamid.TEXT01", "emoji": "\N{THUMBS UP SIGN}"},
    }
    body = envelope(
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1"},
            "message_echoes": [reaction_echo],
        },
        field="smb_message_echoes",
    )
    router.route(parse_webhook(body, phone_number_id="1"), delivered.extend)
    assert seen == ["update wamid.ECH02"]
    assert delivered == []


def test_redelivered_updates_reach_the_callbacks_once(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    recorder = Recorder()
    client = make_app(recorder.wire(make_connector())).test_client()
    for name in ("status_sent", "status_delivered", "reaction", "status_sent", "reaction"):
        assert post_webhook(client, (DATA / f"{name}.json").read_bytes()).status_code == 200
    # One status per (message id, status value); the reaction message once.
    assert [(s.message_id, s.status) for s in recorder.got("status")] == [
        ("wamid.OUT01", "sent"),
        ("wamid.OUT01", "delivered"),
    ]
    assert [m.id for m in recorder.got("reaction")] == ["wamid.REA01"]
    assert len(recorder.got("update")) == 3


def test_messages_the_assistant_cannot_take_are_handed_back_with_503() -> None:
    from cel_whatsapp.core.dedup import InMemoryStore
    from cel_whatsapp.core.parsing import ParsedWebhook

    seen: list[ParsedWebhook] = []

    def full_pool(parsed: ParsedWebhook) -> list[Message]:
        seen.append(parsed)
        return parsed.messages if len(seen) == 1 else []

    handler = WebhookHandler(
        verify_token="v",
        phone_number_id="106540352242922",
        on_updates=full_pool,
        store=InMemoryStore(),
    )
    raw = (DATA / "batch_with_malformed.json").read_bytes()
    assert handler.receive(raw, None).status == 503
    # Meta delivers again: the refused messages are new again, the status is not.
    assert handler.receive(raw, None).status == 200
    first, second = seen
    assert [m.id for m in second.messages] == [m.id for m in first.messages]
    assert [s.message_id for s in first.statuses] == ["wamid.OUT05"]
    assert second.statuses == []
