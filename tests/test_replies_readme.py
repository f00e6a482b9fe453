"""The rich-reply and proactive-sending examples of the docs (replies, sending) run as written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN, post_webhook
from .doc_blocks import code_block, page


def _pizzeria(graph: FakeGraphAPI) -> tuple[dict[str, Any], Flask]:
    path = page("replies")
    block = code_block(path, "def pizzeria")
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own docs
    app = Flask(__name__)
    app.config.update(
        WHATSAPP_TOKEN=TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_BASE_URL=graph.base_url,
    )
    namespace["whatsapp"].read_receipts = False
    namespace["whatsapp"].init_app(app)
    return namespace, app


def test_the_pizzeria_uses_buttons_a_list_and_an_image(graph: FakeGraphAPI) -> None:
    namespace, app = _pizzeria(graph)
    client = app.test_client()
    for said in ("hello", "See the menu", "Margherita"):
        assert post_webhook(client, text_webhook(said)).status_code == 200
    assert namespace["whatsapp"].drain(10)  # the example's connector answers in the background
    kinds = [
        r.json["interactive"]["type"] if r.json["type"] == "interactive" else r.json["type"]
        for r in graph.sent()
    ]
    assert kinds == ["text", "button", "image", "list", "text", "button"]
    menu = graph.sent()[3].json["interactive"]["action"]
    assert [s["title"] for s in menu["sections"]] == ["Classics", "Specials"]
    assert graph.sent_texts()[-1] == "Good choice, a Margherita takes 20 minutes."


def test_the_proactive_example_sends_text_a_template_and_uploads(
    graph: FakeGraphAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace, app = _pizzeria(graph)
    namespace["app"] = app
    path = page("sending")
    block = code_block(path, "whatsapp.send(")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "menu.pdf").write_bytes(b"%PDF-1.4 menu")
    exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own docs
    types = [r.json["type"] for r in graph.sent()]
    assert types == ["text", "template", "image"]
    assert graph.sent()[1].json["template"]["name"] == "order_ready"
    assert len(graph.uploads) == 2
    assert namespace["wamids"][0].startswith("wamid.")
    [receipt] = graph.read_receipts()
    assert receipt.json["typing_indicator"] == {"type": "text"}
