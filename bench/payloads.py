"""Webhook bodies for the bench: one per message type, batches, signed load files.

Shapes follow Meta's ``messages`` webhook reference
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).
When ``tests/data/`` holds JSON fixtures, the parse benchmark measures those too.
Text messages carry the sender's business-scoped user id beside the phone
number (``contacts[].user_id``, ``from_user_id``), as Meta sends them since
2026; pywa's reference row needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cel_whatsapp.core.signature import sign
from cel_whatsapp.testing import encode, envelope
from cel_whatsapp.testing.webhooks import change_value, text_message

from .constants import APP_SECRET, PHONE_NUMBER_ID

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "tests" / "data"
SENDER = "16315551181"
TIMESTAMP = 1_700_000_000


def _message(kind: str, content: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return {
        "from": SENDER,
        "id": f"wamid.BENCH{kind.upper()}{index:08d}",
        "timestamp": str(TIMESTAMP),
        "type": kind,
        kind: content,
    }


def _single(message: dict[str, Any]) -> dict[str, Any]:
    return envelope(change_value([message], phone_number_id=PHONE_NUMBER_ID))


def user_id(phone: str) -> str:
    """A business-scoped user id for ``phone`` (country code, dot, 19 digits)."""
    return f"US.{int(phone):019d}"


def text_body(
    index: int = 0, text: str = "Hello, is the shop open today?", sender: str = SENDER
) -> dict[str, Any]:
    """One text message, the commonest webhook there is."""
    return _single(
        text_message(
            text,
            sender=sender,
            user_id=user_id(sender),
            id=f"wamid.BENCH{index:012d}",
            timestamp=TIMESTAMP,
        )
    )


def _reply() -> dict[str, Any]:
    message = text_message("Yes please", sender=SENDER, timestamp=TIMESTAMP, reply_to="wamid.PREV")
    return _single(message)


def _image() -> dict[str, Any]:
    return _single(
        _message(
            "image",
            {
                "caption": "Is this the right part?",
                "mime_type": "image/jpeg",
                "sha256": "0f9d1f1c1e1b1a1918171615141312111000f0e0d0c0b0a09080706050403020",
                "id": "1003383421387256",
            },
        )
    )


def _voice() -> dict[str, Any]:
    return _single(
        _message(
            "audio",
            {
                "mime_type": "audio/ogg; codecs=opus",
                "sha256": "aa0b4c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e",
                "id": "2014925012345678",
                "voice": True,
            },
        )
    )


def _location() -> dict[str, Any]:
    return _single(
        _message(
            "location",
            {
                "latitude": 37.4847,
                "longitude": -122.1477,
                "name": "Main office",
                "address": "1 Hacker Way, Menlo Park, CA 94025",
            },
        )
    )


def _button_reply() -> dict[str, Any]:
    return _single(
        _message(
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "confirm-yes", "title": "Yes"}},
        )
    )


def _reaction() -> dict[str, Any]:
    return _single(_message("reaction", {"message_id": "wamid.PREV", "emoji": "\U0001f44d"}))


def _status() -> dict[str, Any]:
    status = {
        "id": "wamid.OUT0001",
        "status": "delivered",
        "timestamp": str(TIMESTAMP),
        "recipient_id": SENDER,
        "conversation": {"id": "b1a2c3d4e5f6", "origin": {"type": "service"}},
        "pricing": {"billable": True, "pricing_model": "PMP", "category": "service"},
    }
    return envelope(change_value(statuses=[status], contacts=[], phone_number_id=PHONE_NUMBER_ID))


def batch_body(count: int = 100) -> dict[str, Any]:
    """``count`` text messages from ``count`` senders in one change, as Meta may batch them."""
    messages = [
        text_message(
            f"Message number {i}",
            sender=f"1631555{i:04d}",
            user_id=user_id(f"1631555{i:04d}"),
            id=f"wamid.BATCH{i:08d}",
            timestamp=TIMESTAMP,
        )
        for i in range(count)
    ]
    return envelope(change_value(messages, phone_number_id=PHONE_NUMBER_ID))


#: name -> builder, in the order of the table.
BUILT_IN: dict[str, Callable[[], dict[str, Any]]] = {
    "text": text_body,
    "text, reply to a message": _reply,
    "image with caption": _image,
    "voice note": _voice,
    "location": _location,
    "button reply": _button_reply,
    "reaction": _reaction,
    "status (delivered)": _status,
}


def fixture_files() -> dict[str, bytes]:
    """The JSON webhook bodies under ``tests/data/`` (empty when there are none)."""
    if not FIXTURES_DIR.is_dir():
        return {}
    found = {}
    for path in sorted(FIXTURES_DIR.rglob("*.json")):
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, dict) and "entry" in data:
            found[str(path.relative_to(FIXTURES_DIR))] = raw
    return found


def write_load_file(path: Path, count: int, *, first: int = 0) -> None:
    """Write ``count`` distinct signed text webhooks, one ``signature\\tbody`` per line.

    Message ids are numbered from ``first``, so two files never share one.
    """
    with path.open("w", encoding="ascii") as out:
        for index in range(first, first + count):
            # Many users, as in production: background dispatch answers one
            # user's messages one at a time.
            sender = f"1555{index % 1_000_000:07d}"
            raw = encode(text_body(index, text=f"Hello number {index}", sender=sender))
            out.write(f"{sign(raw, APP_SECRET)}\t{raw.decode('ascii')}\n")


def signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A body encoded like Meta's, with the headers of a signed POST."""
    raw = encode(body)
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, APP_SECRET)}
    return raw, headers
