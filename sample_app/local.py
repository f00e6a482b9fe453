"""Local mode: a fake Graph API and a minimal chat page, no Meta account needed."""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass

from flask import Blueprint, Flask, current_app, redirect, request, url_for
from werkzeug.wrappers import Response

from cel_whatsapp.testing import FakeGraphAPI, encode, signed_headers, text_webhook
from cel_whatsapp.testing.webhooks import DEFAULT_PHONE_NUMBER_ID

_USER = "15551234567"


@dataclass
class LocalGraph:
    fake: FakeGraphAPI
    token: str
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID


_started: LocalGraph | None = None


def start_local_graph() -> LocalGraph:
    """Start (once per process) the fake Graph API on a free local port."""
    global _started
    if _started is None:
        token = "local-" + secrets.token_hex(8)
        _started = LocalGraph(FakeGraphAPI(token=token).start(), token)
    return _started


_PAGE = """<!doctype html><meta charset="utf-8"><title>cel_whatsapp sample bot</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;background:#efeae2}}
.b{{padding:.5em .8em;margin:.3em 0;border-radius:.5em;max-width:80%;white-space:pre-wrap}}
.me{{background:#d9fdd3;margin-left:auto}}.bot{{background:#fff}}</style>
<h1>cel_whatsapp sample bot (local mode)</h1>
<div style="display:flex;flex-direction:column">{bubbles}</div>
<form method="post"><input name="text" autofocus size="50" placeholder="Type a message">
<button>Send</button></form>"""


def chat_blueprint(graph: LocalGraph, app_secret: str) -> Blueprint:
    """``/``: type a message, it goes through the real webhook as a signed POST."""
    blueprint = Blueprint("local_chat", __name__)
    transcript: list[tuple[str, str]] = []

    @blueprint.get("/")
    def page() -> str:
        bubbles = "".join(
            f'<div class="b {who}">{html.escape(text)}</div>' for who, text in transcript
        )
        return _PAGE.format(bubbles=bubbles)

    @blueprint.post("/")
    def send() -> Response:
        text = request.form.get("text", "").strip()
        if text:
            transcript.append(("me", text))
            before = len(graph.fake.sent())
            raw = encode(text_webhook(text, sender=_USER))
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            app.test_client().post("/whatsapp", data=raw, headers=signed_headers(raw, app_secret))
            for sent in graph.fake.sent()[before:]:
                if sent.json.get("type") == "text":
                    transcript.append(("bot", sent.json["text"]["body"]))
        return redirect(url_for("local_chat.page"))

    return blueprint
