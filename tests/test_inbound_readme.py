"""The examples for callbacks and media download (docs/inbound.rst) run as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cel_whatsapp.testing import FakeGraphAPI

from .conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN, post_webhook
from .doc_blocks import code_block, page

DATA = Path(__file__).parent / "data"


def test_callbacks_and_download_examples(
    graph: FakeGraphAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    path = page("inbound")
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    for marker in ("@whatsapp.on_status", "whatsapp.download_media("):
        exec(compile(code_block(path, marker), str(path), "exec"), namespace)  # noqa: S102 - our docs

    app = Flask("docs_app")
    app.config.update(
        WHATSAPP_TOKEN=TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_BASE_URL=graph.base_url,
    )
    namespace["whatsapp"].init_app(app)
    client = app.test_client()

    photo = b"\xff\xd8\xff" + b"jpeg bytes" * 100
    media_id = graph.add_media(photo, mime_type="image/jpeg")
    image = json.loads((DATA / "image.json").read_text(encoding="utf-8"))
    message = image["entry"][0]["changes"][0]["value"]["messages"][0]
    message["image"].update(id=media_id, sha256=None, url=None)
    for body in (
        image,
        (DATA / "reaction.json").read_bytes(),
        (DATA / "status_failed.json").read_bytes(),
        (DATA / "system_user_changed_number.json").read_bytes(),
        (DATA / "errors.json").read_bytes(),
    ):
        assert post_webhook(client, body).status_code == 200

    assert namespace["whatsapp"].drain(10)  # the example's connector answers in the background
    assert graph.sent_texts() == [f"Thanks for the image/jpeg ({len(photo)} bytes)."]
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "update Message",
        "update Message",
        "5511987654321 reacted \N{THUMBS UP SIGN} to wamid.OURS0002",
        "update StatusEvent",
        "wamid.OUT03 failed: [131047]",
        "update Message",
        "user_changed_number 5511912345678",
        "WhatsApp error 130429 Rate limit hit",
    ]
