"""Jobs as plain JSON (core/jobs.py) and deferred Graph API waits (core/deferral.py).

Fast: no broker, no Redis, no worker. The workers themselves are in
test_celery_workers.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from cel_whatsapp import GraphClient, Message, RateLimitError, RetryPolicy
from cel_whatsapp.core.deferral import SendDeferredError, current_deferral, deferring
from cel_whatsapp.core.jobs import JOB_VERSION, job_payload, message_from_job
from cel_whatsapp.core.outbox import Outbox
from cel_whatsapp.core.parsing import load_message, parse_webhook
from cel_whatsapp.errors import PayloadError
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN

DATA = Path(__file__).parent / "data"


def _messages(body: dict[str, Any]) -> list[Message]:
    return parse_webhook(body, phone_number_id=None).messages


def _every_data_message() -> list[tuple[str, Message]]:
    found = []
    for path in sorted(DATA.glob("*.json")):
        for message in _messages(json.loads(path.read_text())):
            found.append((f"{path.stem}:{message.id}", message))
    return found


EVERY_MESSAGE = _every_data_message()


@pytest.mark.parametrize(("where", "message"), EVERY_MESSAGE, ids=[w for w, _ in EVERY_MESSAGE])
def test_every_message_type_survives_the_trip_through_json(where: str, message: Message) -> None:
    payload = job_payload("whatsapp", message)
    name, again = message_from_job(json.loads(json.dumps(payload)))
    assert name == "whatsapp"
    assert again == message
    assert again.metadata == message.metadata
    assert dict(again.metadata["raw"]) == dict(message.metadata["raw"])


def test_the_data_files_cover_echoes_bsuid_only_senders_and_missing_contacts() -> None:
    echoes = [m for _, m in EVERY_MESSAGE if m.metadata.get("echo")]
    without_phone = [m for _, m in EVERY_MESSAGE if m.lead.phone is None]
    nameless = [m for _, m in EVERY_MESSAGE if m.lead.name is None]
    assert echoes and without_phone and nameless


def test_a_payload_is_plain_json_with_no_credential() -> None:
    message = _messages(text_webhook("hello there", sender="16505551234"))[0]
    payload = job_payload("shop", message)
    text = json.dumps(payload)
    for secret in (TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret not in text
    assert json.loads(text) == payload
    assert set(payload) == {"v", "name", "message", "metadata", "contact", "echo"}
    assert payload["v"] == JOB_VERSION
    assert payload["name"] == "shop"
    assert payload["message"] == dict(message.metadata["raw"])
    assert payload["metadata"]["phone_number_id"] == PHONE_NUMBER_ID
    assert payload["contact"] == {"wa_id": "16505551234", "profile": {"name": "Kerry Fisher"}}
    assert payload["echo"] is False


def test_a_message_built_in_code_cannot_become_a_job() -> None:
    message = _messages(text_webhook("hi"))[0]
    bare = Message(id=message.id, lead=message.lead, text="hi", date=message.date, type="text")
    with pytest.raises(ValueError, match="raw JSON"):
        job_payload("whatsapp", bare)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"v": 99}, "v"),
        ({"name": ""}, "name"),
        ({"message": None}, "message"),
        ({"metadata": "x"}, "metadata"),
        ({"contact": []}, "contact"),
        ({"message": {"id": "wamid.X", "type": "text"}}, "timestamp"),
        ({"metadata": {"display_phone_number": "1"}}, "phone_number_id"),
    ],
)
def test_a_broken_payload_raises_payload_error(change: dict[str, Any], where: str) -> None:
    payload = job_payload("whatsapp", _messages(text_webhook("hi"))[0])
    payload.update(change)
    with pytest.raises(PayloadError) as caught:
        message_from_job(payload)
    assert where in caught.value.where


def test_load_message_completes_the_lead_from_the_contact() -> None:
    raw = {"from": "", "from_user_id": "US.1349", "id": "wamid.Y", "timestamp": "1700000000"}
    raw.update({"type": "text", "text": {"body": "hey"}})
    message = load_message(
        raw,
        metadata={"phone_number_id": PHONE_NUMBER_ID, "display_phone_number": "1555"},
        contact={"wa_id": "16505550000", "user_id": "US.1349", "profile": {"name": "Ana"}},
    )
    assert (message.lead.id, message.lead.phone, message.lead.user_id) == (
        "16505550000",
        "16505550000",
        "US.1349",
    )
    assert message.lead.name == "Ana"
    assert message.metadata["display_phone_number"] == "1555"
    assert message.metadata["waba_id"] is None


# -- deferred waits --------------------------------------------------------------------


def _outbox(graph: FakeGraphAPI) -> Outbox:
    client = GraphClient(TOKEN, graph.base_url, retry=RetryPolicy(attempts=3, total_time=60))
    return Outbox(client, PHONE_NUMBER_ID)


def test_a_long_wait_keeps_that_send_and_every_later_one_without_sleeping(
    graph: FakeGraphAPI,
) -> None:
    outbox = _outbox(graph)
    graph.fail_next(status=429, code=130429, message="throughput", retry_after=30)
    started = time.monotonic()
    with deferring(2.0) as deferral:
        assert outbox.send_text({"to": "16505551234"}, "one") is None
        assert outbox.send_text({"to": "16505551234"}, "two") is None
        outbox.mark_read("wamid.Z")
    assert time.monotonic() - started < 1.0
    assert deferral.holding and deferral.wait == 30
    assert [payload.get("text", {}).get("body") for _, payload in deferral.kept] == [
        "one",
        "two",
        None,
    ]
    assert {number for number, _ in deferral.kept} == {PHONE_NUMBER_ID}
    assert graph.sent_texts() == ["one"]  # the refused try was the only request
    assert current_deferral() is None


def test_the_pair_rate_limit_is_deferred_too(graph: FakeGraphAPI) -> None:
    outbox = _outbox(graph)
    graph.fail_next(status=400, code=131056, message="pair rate")
    with deferring(2.0) as deferral:
        outbox.send_text({"to": "16505551234"}, "one")
    assert 5.9 < deferral.wait <= 6.0  # RetryPolicy.pair_rate_delay
    assert len(deferral.kept) == 1


def test_a_short_wait_is_waited_for_and_sent(graph: FakeGraphAPI) -> None:
    outbox = _outbox(graph)
    graph.fail_next(status=429, code=130429, message="throughput", retry_after=0.2)
    with deferring(2.0) as deferral:
        assert outbox.send_text({"to": "16505551234"}, "one")
    assert not deferral.holding
    assert graph.sent_texts() == ["one", "one"]  # refused, then sent after the wait


def test_without_a_deferral_the_wait_is_as_before(graph: FakeGraphAPI) -> None:
    outbox = _outbox(graph)
    graph.fail_next(status=429, code=130429, message="throughput", retry_after=0.3)
    started = time.monotonic()
    assert outbox.send_text({"to": "16505551234"}, "one")
    assert time.monotonic() - started >= 0.3
    assert graph.sent_texts() == ["one", "one"]


def test_waits_outside_a_send_are_never_deferred(graph: FakeGraphAPI) -> None:
    client = GraphClient(TOKEN, graph.base_url, retry=RetryPolicy(attempts=2, total_time=60))
    media_id = graph.add_media(b"picture", mime_type="image/jpeg")
    graph.fail_next(status=429, code=130429, retry_after=0.2, match=lambda r: r.method == "GET")
    with deferring(0.1) as deferral:
        client.request("GET", media_id)  # waited for, not deferred: only sends are kept
    assert not deferral.holding


def test_send_deferred_is_a_rate_limit_error() -> None:
    assert issubclass(SendDeferredError, RateLimitError)
    assert SendDeferredError(3.5).seconds == 3.5
