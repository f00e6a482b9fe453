"""Generated payloads: whatever a message's content holds, parsing never crashes.

Each fixture's type-specific object (``image``, ``interactive``, ``system``...)
and status fields are replaced by generated JSON, biased towards the field
names Meta uses. A message is then either delivered or skipped (counted),
never an exception, and its neighbours in the batch are unaffected.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cel_whatsapp.core.parsing import parse_webhook
from cel_whatsapp.testing.webhooks import text_message

DATA = Path(__file__).parent / "data"
PNID = "106540352242922"
BODIES = {
    path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DATA.glob("*.json"))
}
SINGLE_MESSAGE = sorted(
    name
    for name, body in BODIES.items()
    if len(body["entry"][0]["changes"][0]["value"].get("messages", [])) == 1
)
FIELD_NAMES = [
    "id",
    "type",
    "body",
    "caption",
    "mime_type",
    "sha256",
    "url",
    "voice",
    "animated",
    "filename",
    "latitude",
    "longitude",
    "name",
    "phones",
    "emails",
    "button_reply",
    "list_reply",
    "nfm_reply",
    "response_json",
    "title",
    "description",
    "payload",
    "text",
    "message_id",
    "emoji",
    "product_items",
    "quantity",
    "item_price",
    "wa_id",
    "user_id",
    "original_message_id",
    "message",
    "code",
    "error_data",
    "details",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=12,
)


def _value(body: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = body["entry"][0]["changes"][0]["value"]
    return value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(SINGLE_MESSAGE), content=json_values, context=json_values)
def test_any_content_is_delivered_or_skipped(name: str, content: Any, context: Any) -> None:
    body = copy.deepcopy(BODIES[name])
    value = _value(body)
    [message] = value["messages"]
    message[message["type"]] = content
    message["context"] = context
    value["messages"].append(text_message("still here", sender="111", id="wamid.NEIGHBOUR"))

    parsed = parse_webhook(body, phone_number_id=PNID)

    assert len(parsed.messages) + parsed.skipped == 2
    assert parsed.messages[-1].id == "wamid.NEIGHBOUR"
    assert parsed.messages[-1].text == "still here"


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([n for n in BODIES if n.startswith("status_")]),
    key=st.sampled_from(["id", "status", "timestamp", "recipient_id", "errors", "pricing"]),
    replacement=json_values,
)
def test_any_status_field_is_delivered_or_skipped(name: str, key: str, replacement: Any) -> None:
    body = copy.deepcopy(BODIES[name])
    value = _value(body)
    value["statuses"][0][key] = replacement
    value["statuses"].append({"id": "wamid.OK", "status": "read", "timestamp": "1750000000"})

    parsed = parse_webhook(body, phone_number_id=PNID)

    assert len(parsed.statuses) + parsed.skipped == 2
    assert parsed.statuses[-1].message_id == "wamid.OK"


@settings(max_examples=200, deadline=None)
@given(errors=json_values, contacts=json_values, statuses=json_values)
def test_side_arrays_never_hide_the_messages(errors: Any, contacts: Any, statuses: Any) -> None:
    body = copy.deepcopy(BODIES["text"])
    value = _value(body)
    value.update(errors=errors, contacts=contacts, statuses=statuses)

    parsed = parse_webhook(body, phone_number_id=PNID)

    [message] = parsed.messages
    assert message.text == "Is the blue one still in stock?"
    assert message.lead.phone == "5511987654321"
