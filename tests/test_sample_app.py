"""The sample bot runs without Meta credentials and answers through the real webhook."""

from __future__ import annotations

import re

from sample_app import create_app


def test_local_mode_chat_round_trip() -> None:
    app = create_app()
    client = app.test_client()
    assert client.get("/").status_code == 200
    response = client.post("/", data={"text": "hello bot"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    bubbles = re.findall(r'<div class="b bot">(.*?)</div>', page, flags=re.S)
    assert bubbles == [
        "Hi Kerry Fisher!",
        "You wrote 2 words.",
        "Here it is back: hello bot",
        "Each sentence of this answer arrives as its own WhatsApp message.",
    ]


def test_webhook_refuses_unsigned_posts_in_local_mode() -> None:
    client = create_app().test_client()
    response = client.post("/whatsapp", json={"entry": []})
    assert response.status_code == 401
