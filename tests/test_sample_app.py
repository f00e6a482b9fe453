"""The sample bot: its demo assistant, tested with the testing kit, and its modes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask

import sample_app
from cel_whatsapp.testing import (
    WhatsappTestClient,
    audio_message,
    button_reply_message,
    contact_card,
    contacts_message,
    document_message,
    image_message,
    list_reply_message,
    location_message,
    reaction_message,
)
from sample_app import assistant, create_app, wants_simulator


@pytest.fixture(autouse=True)
def _no_demo_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "SIMULATOR", "DEMO_IMAGE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(assistant, "PACE", 0.0)


@pytest.fixture
def bot(whatsapp: WhatsappTestClient) -> Flask:
    """The sample app in real mode, its WHATSAPP_* settings pointing at the fake."""
    app = create_app()
    assert "cel_whatsapp.simulator" not in app.extensions
    return app


def interactive(payload: dict[str, Any]) -> dict[str, Any]:
    assert payload["type"] == "interactive"
    result: dict[str, Any] = payload["interactive"]
    return result


def test_menu_streams_a_greeting_then_buttons(bot: Flask, whatsapp: WhatsappTestClient) -> None:
    assert whatsapp.send_text(bot, "Menu").status_code == 200
    assert whatsapp.sent_texts() == [
        "Hi Kerry Fisher!",
        "I am the cel_whatsapp demo bot.",
        "Pick something to try:",
    ]
    menu = interactive(whatsapp.sent()[-1])
    assert menu["type"] == "button"
    assert [b["reply"]["id"] for b in menu["action"]["buttons"]] == ["story", "topics", "picture"]
    assert all(len(b["reply"]["title"]) <= 20 for b in menu["action"]["buttons"])


def test_story_button_streams_one_message_per_sentence(
    bot: Flask, whatsapp: WhatsappTestClient
) -> None:
    whatsapp.send(bot, button_reply_message("story", "Stream a story"))
    texts = whatsapp.sent_texts()
    assert len(texts) == 5
    assert texts[0] == "Here is a story, streamed the way a language model writes."
    assert texts[-1] == "Type *menu* to go back."


def test_list_button_and_rows(bot: Flask, whatsapp: WhatsappTestClient) -> None:
    whatsapp.send(bot, button_reply_message("topics", "Show a list"))
    menu = interactive(whatsapp.sent()[0])
    assert menu["type"] == "list"
    rows = [row for section in menu["action"]["sections"] for row in section["rows"]]
    assert len(rows) == 4 and len({r["id"] for r in rows}) == 4
    assert all(len(r["title"]) <= 24 and len(r["description"]) <= 72 for r in rows)
    whatsapp.graph.reset()
    whatsapp.send(bot, list_reply_message("topic:rich", "Rich replies"))
    assert whatsapp.sent_texts()[0] == "An assistant can yield text and reply objects in any order."


def test_picture_is_sent_by_link_to_the_app_itself(
    bot: Flask, whatsapp: WhatsappTestClient
) -> None:
    whatsapp.send(bot, button_reply_message("picture", "Send a picture"))
    [sent] = whatsapp.sent()
    assert sent["type"] == "image"
    link = sent["image"]["link"]
    assert link == "http://localhost/demo/picture.png"
    with bot.test_client().get("/demo/picture.png") as served:
        assert served.status_code == 200 and served.data.startswith(b"\x89PNG")


def test_picture_link_from_the_environment(
    bot: Flask, whatsapp: WhatsappTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_IMAGE_URL", "https://example.com/cat.jpg")
    whatsapp.send(bot, button_reply_message("picture", "Send a picture"))
    assert whatsapp.sent()[0]["image"]["link"] == "https://example.com/cat.jpg"


@pytest.mark.parametrize(
    ("message", "kind", "label"),
    [
        (image_message(media_id="111", caption="cat"), "image", "image"),
        (audio_message(media_id="222", voice=True), "audio", "voice note"),
        (document_message(media_id="333", filename="cv.pdf"), "document", "document"),
    ],
)
def test_media_is_echoed_by_id_with_a_reaction(
    bot: Flask, whatsapp: WhatsappTestClient, message: dict[str, Any], kind: str, label: str
) -> None:
    whatsapp.send(bot, message)
    reaction, *texts, echo = whatsapp.sent()
    assert reaction["reaction"] == {"message_id": message["id"], "emoji": "\N{THUMBS UP SIGN}"}
    assert [t["text"]["body"] for t in texts][-1] == "Here it is back:"
    assert f"Got your {label}" in texts[0]["text"]["body"]
    assert echo["type"] == kind and echo[kind]["id"] == message[kind]["id"]
    if kind == "document":
        assert echo["document"]["filename"] == "cv.pdf"


def test_location_is_sent_back(bot: Flask, whatsapp: WhatsappTestClient) -> None:
    whatsapp.send(bot, location_message(48.8584, 2.2945, name="Eiffel Tower"))
    assert whatsapp.sent_texts()[0] == "You are at 48.8584, 2.2945 (Eiffel Tower)."
    pin = whatsapp.sent()[-1]
    assert pin["location"] == {"latitude": 48.8584, "longitude": 2.2945, "name": "Eiffel Tower"}


def test_reactions_are_thanked_for(bot: Flask, whatsapp: WhatsappTestClient) -> None:
    # Reactions go to on_reaction by default; the sample app lets its assistant see them.
    whatsapp.send(bot, reaction_message("wamid.BOT", "\N{RED APPLE}"))
    whatsapp.send(bot, reaction_message("wamid.BOT", None))
    assert whatsapp.sent_texts() == ["Thanks for the \N{RED APPLE}!"]


def test_contacts_and_other_text(bot: Flask, whatsapp: WhatsappTestClient) -> None:
    whatsapp.send(bot, contacts_message([contact_card("Ann Lee")]))
    assert whatsapp.sent_texts() == ["Thanks for the contact card of Ann Lee."]
    whatsapp.graph.reset()
    whatsapp.send_text(bot, "how are you")
    assert whatsapp.sent_texts()[:3] == [
        "Hi Kerry Fisher!",
        "You wrote 3 words.",
        "Here it is back: how are you",
    ]


# -- the OpenAI-compatible model ----------------------------------------------------------


class FakeChatServer:
    """A local OpenAI-compatible endpoint that streams a canned answer."""

    def __init__(self, chunks: list[str], status: int = 200) -> None:
        self.chunks = chunks
        self.status = status
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.requests.append(
                    {
                        "path": self.path,
                        "auth": self.headers.get("Authorization"),
                        **json.loads(body),
                    }
                )
                self.send_response(fake.status)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if fake.status != 200:
                    return
                for chunk in fake.chunks:
                    event = {"choices": [{"index": 0, "delta": {"content": chunk}}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b": keep-alive comment\n\ndata: [DONE]\n\n")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def chat_server() -> Iterator[FakeChatServer]:
    server = FakeChatServer(["Paris is ", "the capital of France. ", "It is on the Seine."])
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_llm_answer_is_streamed_sentence_by_sentence(
    whatsapp: WhatsappTestClient, chat_server: FakeChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_MODEL", "tiny-model")
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    app = create_app()
    whatsapp.send_text(app, "What is the capital of France?")
    assert whatsapp.sent_texts() == ["Paris is the capital of France.", "It is on the Seine."]
    [request] = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-local"
    assert request["model"] == "tiny-model" and request["stream"] is True
    assert request["messages"][0]["role"] == "system"
    assert request["messages"][-1] == {"role": "user", "content": "What is the capital of France?"}
    # The next question carries the conversation so far.
    whatsapp.send_text(app, "And Italy?")
    roles = [m["role"] for m in chat_server.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_llm_failure_gives_a_polite_answer(
    whatsapp: WhatsappTestClient, chat_server: FakeChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat_server.status = 500
    monkeypatch.setenv("OPENAI_MODEL", "tiny-model")
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.url)
    whatsapp.send_text(create_app(), "hello there, model")
    assert whatsapp.sent_texts() == ["Sorry, the language model cannot be reached right now."]


def test_menu_still_works_with_a_model(
    whatsapp: WhatsappTestClient, chat_server: FakeChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_MODEL", "tiny-model")
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.url)
    whatsapp.send_text(create_app(), "menu")
    assert whatsapp.sent_types()[-1] == "interactive"
    assert chat_server.requests == []


# -- modes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, True),
        ({"WHATSAPP_TOKEN": "t", "WHATSAPP_PHONE_NUMBER_ID": "1"}, True),
        (
            {"WHATSAPP_TOKEN": "t", "WHATSAPP_PHONE_NUMBER_ID": "1", "WHATSAPP_VERIFY_TOKEN": "v"},
            False,
        ),
        (
            {
                "WHATSAPP_TOKEN": "t",
                "WHATSAPP_PHONE_NUMBER_ID": "1",
                "WHATSAPP_VERIFY_TOKEN": "v",
                "SIMULATOR": "1",
            },
            True,
        ),
        ({"SIMULATOR": "off"}, False),
    ],
)
def test_simulator_mode_is_chosen_by_the_environment(
    environ: dict[str, str], expected: bool
) -> None:
    assert wants_simulator(environ) is expected


def test_without_credentials_the_app_serves_the_simulator() -> None:
    app = create_app()
    try:
        client = app.test_client()
        page = client.get("/")
        assert page.status_code == 200
        assert b"simulator.js" in page.data
        # The webhook still checks signatures: the simulator signs with the app's secret.
        assert client.post("/whatsapp", json={"entry": []}).status_code == 401
        assert app.config["WHATSAPP_BASE_URL"].startswith("http://127.0.0.1:")
    finally:
        hub = sample_app_hub(app)
        hub.stop()


def sample_app_hub(app: Flask) -> Any:
    from cel_whatsapp.simulator import Simulator

    hub = Simulator.hub_of(app)
    assert hub is not None
    return hub


def test_module_exports_the_factory() -> None:
    assert sample_app.create_app is create_app
