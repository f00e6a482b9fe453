"""The fake Graph API refuses send payloads Meta refuses, so the other tests mean something."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from cel_whatsapp.testing import FakeGraphAPI

from .conftest import PHONE_NUMBER_ID, TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _post(graph: FakeGraphAPI, payload: dict[str, Any]) -> requests.Response:
    body = {"messaging_product": "whatsapp", "to": "16505551234", **payload}
    return requests.post(
        f"{graph.base_url}/{PHONE_NUMBER_ID}/messages", json=body, headers=AUTH, timeout=5
    )


def _buttons(*titles: str) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "b"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": f"id{i}", "title": t}}
                    for i, t in enumerate(titles)
                ]
            },
        },
    }


def _list(rows: int, **interactive: Any) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "b"},
            "action": {
                "button": "Menu",
                "sections": [{"rows": [{"id": str(i), "title": f"R{i}"} for i in range(rows)]}],
            },
            **interactive,
        },
    }


GOOD = [
    _buttons("Yes", "No", "Maybe"),
    _list(10),
    {"type": "image", "image": {"id": "1", "caption": "c"}},
    {"type": "audio", "audio": {"link": "https://e.x/a.ogg", "voice": True}},
    {"type": "location", "location": {"latitude": "37.4", "longitude": -122.1}},
    {"type": "contacts", "contacts": [{"name": {"formatted_name": "A", "first_name": "A"}}]},
    {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": ""}},
    {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}},
]

BAD = [
    (_buttons("Yes", "No", "Maybe", "Later"), 131009, "1 to 3 buttons"),
    (_buttons("A" * 21), 131009, "Max length: 20"),
    (_buttons("Same", "Same"), 131009, "unique"),
    (_list(11), 131009, "at most 10 rows"),
    (_list(1, header={"type": "image", "image": {"id": "1"}}), 100, "not supported"),
    (_list(1, footer=None), 100, "null"),
    (_list(1, footer={"text": "f" * 61}), 131009, "Max length: 60"),
    ({"type": "image", "image": {"id": "1", "link": "https://e.x"}}, 100, "exactly one"),
    ({"type": "audio", "audio": {"id": "1", "caption": "c"}}, 100, "caption is not supported"),
    ({"type": "image", "image": {"id": "1", "caption": "c" * 1025}}, 131009, "1024"),
    ({"type": "location", "location": {"latitude": 91, "longitude": 0}}, 131009, "between"),
    ({"type": "contacts", "contacts": []}, 100, "1 to 257"),
    ({"type": "reaction", "reaction": {"emoji": "x"}}, 100, "message_id"),
    ({"type": "template", "template": {"name": "t"}}, 100, "language"),
    ({"type": "text", "text": {"body": "x"}, "context": {"message_id": None}}, 100, "null"),
    ({"type": "carousel", "carousel": {}}, 100, "not a message type"),
]


@pytest.mark.parametrize("payload", GOOD, ids=lambda p: p["type"])
def test_the_fake_accepts_valid_sends(graph: FakeGraphAPI, payload: dict[str, Any]) -> None:
    response = _post(graph, payload)
    assert response.status_code == 200, response.text
    assert response.json()["messages"][0]["id"].startswith("wamid.")


@pytest.mark.parametrize(("payload", "code", "detail"), BAD, ids=lambda v: str(v)[:40])
def test_the_fake_refuses_what_meta_refuses(
    graph: FakeGraphAPI, payload: dict[str, Any], code: int, detail: str
) -> None:
    response = _post(graph, payload)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert detail in error["error_data"]["details"]


def test_upload_needs_messaging_product(graph: FakeGraphAPI) -> None:
    response = requests.post(
        f"{graph.base_url}/{PHONE_NUMBER_ID}/media",
        data={"type": "image/png"},
        files={"file": ("a.png", b"png", "image/png")},
        headers=AUTH,
        timeout=5,
    )
    assert response.status_code == 400
    assert "messaging_product" in response.json()["error"]["error_data"]["details"]
    assert graph.uploads == {}


def test_upload_must_be_multipart(graph: FakeGraphAPI) -> None:
    response = requests.post(
        f"{graph.base_url}/{PHONE_NUMBER_ID}/media",
        json={"messaging_product": "whatsapp"},
        headers=AUTH,
        timeout=5,
    )
    assert response.status_code == 400


def test_upload_size_limit(graph: FakeGraphAPI) -> None:
    response = requests.post(
        f"{graph.base_url}/{PHONE_NUMBER_ID}/media",
        data={"messaging_product": "whatsapp", "type": "image/webp"},
        files={"file": ("s.webp", b"x" * (500 * 1024 + 1), "image/webp")},
        headers=AUTH,
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 131053
