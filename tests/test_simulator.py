"""The simulator over real sockets: page API -> hub -> signed webhook -> bot -> Graph API -> page."""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from cel_whatsapp import ConfigurationError, Message, WhatsappConnector
from cel_whatsapp.simulator import HubLink, Simulator, SimulatorHub
from cel_whatsapp.simulator.hub_client import HubClient
from cel_whatsapp.testing import FakeGraphAPI

Assistant = Callable[[Message], Any]

#: Characters that need an emoji (or symbol) font: arrows, technical symbols,
#: shapes, dingbats, pictographs and the emoji presentation selector.
PICTOGRAPHS = re.compile(
    "[\u2190-\u21ff\u2300-\u23ff\u25a0-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff]"
)


class Served:
    """A simulator app under a real threaded server, and a session to drive it."""

    def __init__(self, app: Flask, base: str, received: list[dict[str, Any]]) -> None:
        self.app = app
        self.base = base
        self.received = received  # every webhook body the bot got, decoded
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["X-Simulator-Page"] = "1"  # what the page sends

    @property
    def hub(self) -> SimulatorHub:
        hub = Simulator.hub_of(self.app)
        assert hub is not None
        return hub

    def send(self, **message: Any) -> requests.Response:
        return self.session.post(f"{self.base}/sim/api/messages", json=message, timeout=10)

    def events(self, after: int = 0, epoch: str = "") -> dict[str, Any]:
        params = {"after": after, "epoch": epoch}
        response = self.session.get(f"{self.base}/sim/api/events", params=params, timeout=30)
        assert response.status_code == 200
        data: dict[str, Any] = response.json()
        return data

    def wait(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            events = self.events()["events"]
            if predicate(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"timed out; events were {[e['kind'] for e in events]}")


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    servers: list[Any] = []
    apps: list[Flask] = []

    def start(assistant: Assistant, **simulator_options: Any) -> Served:
        app = Flask("simulated_bot")
        simulator_options.setdefault("share", False)
        Simulator(app, **simulator_options)
        # Inline: the events below are asserted in the order one request makes them.
        # Every message type reaches the assistant, reactions included, so the
        # tests see everything the page sends.
        WhatsappConnector(assistant=assistant, dispatch="inline", assistant_types="all").init_app(
            app
        )
        received: list[dict[str, Any]] = []
        inner = app.wsgi_app

        def recording(environ: dict[str, Any], start_response: Any) -> Any:
            if environ["PATH_INFO"] == "/whatsapp" and environ["REQUEST_METHOD"] == "POST":
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                received.append(json.loads(body))
                import io

                environ["wsgi.input"] = io.BytesIO(body)
            return inner(environ, start_response)

        app.wsgi_app = recording  # type: ignore[method-assign]
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        apps.append(app)
        return Served(app, f"http://127.0.0.1:{server.server_port}", received)

    yield start
    for app in apps:
        hub = Simulator.hub_of(app)
        if hub is not None:
            hub.stop()
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in events]


def bots(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["payload"] for e in events if e["kind"] == "bot"]


def test_a_text_goes_through_the_webhook_and_each_sentence_comes_back(
    serve: Callable[..., Served],
) -> None:
    seen: list[Message] = []

    def bot(message: Message) -> Iterator[str]:
        seen.append(message)
        yield "One. "
        yield "Two. "
        yield "Three."

    served = serve(bot, user_name="Ada")
    response = served.send(type="text", text="  hello bot ")
    assert response.status_code == 200
    user_event = response.json()["event"]
    assert user_event["kind"] == "user" and user_event["message"]["text"] == {"body": "hello bot"}

    events = served.wait(lambda ev: "delivery" in kinds(ev))
    assert kinds(events) == ["cleared", "user", "read", "typing", "bot", "bot", "bot", "delivery"][
        1:
    ] or (kinds(events)[:7] == ["user", "read", "typing", "bot", "bot", "bot", "delivery"])
    assert [p["text"]["body"] for p in bots(events)] == ["One.", "Two.", "Three."]
    assert events[-1]["ok"] is True and events[-1]["id"] == user_event["id"]
    # The bot got a signed, Meta-shaped webhook, with the user's name and number.
    [message] = seen
    assert (message.text, message.lead.name, message.lead.phone) == (
        "hello bot",
        "Ada",
        "15551234567",
    )
    assert served.received[0]["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"] == {
        "name": "Ada"
    }


def test_statuses_reach_the_bot_like_meta_sends_them(serve: Callable[..., Served]) -> None:
    served = serve(lambda m: "Just one sentence here")
    served.send(type="text", text="hi")
    events = served.wait(lambda ev: "delivery" in kinds(ev))
    [wamid] = [e["id"] for e in events if e["kind"] == "bot"]
    seen = served.session.post(
        f"{served.base}/sim/api/seen", json={"ids": [wamid, wamid, "wamid.nope"]}
    )
    assert seen.json() == {"read": 1}
    assert served.hub.wait_idle()
    statuses = [
        (s["id"], s["status"], s["recipient_id"])
        for body in served.received
        for s in body["entry"][0]["changes"][0]["value"].get("statuses", [])
    ]
    assert statuses == [
        (wamid, "sent", "15551234567"),
        (wamid, "delivered", "15551234567"),
        (wamid, "read", "15551234567"),
    ]


def test_buttons_list_rows_locations_and_reactions_become_webhooks(
    serve: Callable[..., Served],
) -> None:
    seen: list[dict[str, Any]] = []
    served = serve(lambda m: seen.append(dict(m.raw)))
    assert served.send(
        type="button_reply", id="story", title="Stream a story", reply_to="wamid.MENU"
    ).ok
    assert served.send(
        type="list_reply",
        id="topic:rich",
        title="Rich replies",
        description="Buttons",
        reply_to="wamid.LIST",
    ).ok
    assert served.send(type="location", latitude=48.8584, longitude=2.2945, name="Eiffel Tower").ok
    assert served.send(type="reaction", message_id="wamid.BOT", emoji="\N{THUMBS UP SIGN}").ok
    served.wait(lambda ev: kinds(ev).count("delivery") == 4)
    button, row, place, reaction = seen
    assert button["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "story", "title": "Stream a story"},
    }
    assert button["context"]["id"] == "wamid.MENU"
    assert row["interactive"]["list_reply"] == {
        "id": "topic:rich",
        "title": "Rich replies",
        "description": "Buttons",
    }
    assert row["context"]["id"] == "wamid.LIST"
    assert place["location"] == {"latitude": 48.8584, "longitude": 2.2945, "name": "Eiffel Tower"}
    assert reaction["reaction"] == {"message_id": "wamid.BOT", "emoji": "\N{THUMBS UP SIGN}"}


def test_a_photo_from_the_page_can_be_downloaded_by_the_bot(serve: Callable[..., Served]) -> None:
    seen: list[dict[str, Any]] = []
    served = serve(lambda m: seen.append(dict(m.raw)))
    picture = secrets.token_bytes(50_000)
    response = served.session.post(
        f"{served.base}/sim/api/media",
        files={"file": ("cat.png", picture, "image/png")},
        data={"caption": "my cat"},
    )
    assert response.status_code == 200
    served.wait(lambda ev: "delivery" in kinds(ev))
    [message] = seen
    image = message["image"]
    assert (image["caption"], image["mime_type"]) == ("my cat", "image/png")
    # What a connector does with a media id: Graph lookup, then download with the token.
    config = served.app.config
    bearer = {"Authorization": f"Bearer {config['WHATSAPP_TOKEN']}"}
    plain = requests.Session()
    plain.trust_env = False
    meta = plain.get(f"{config['WHATSAPP_BASE_URL']}/{image['id']}", headers=bearer).json()
    assert meta["mime_type"] == "image/png" and meta["file_size"] == str(len(picture))
    assert meta["sha256"] == image["sha256"]
    assert plain.get(meta["url"], headers=bearer).content == picture
    assert plain.get(meta["url"]).status_code == 401
    # And the page shows it through the app.
    assert served.session.get(f"{served.base}/sim/api/media/{image['id']}").content == picture


@pytest.mark.parametrize(
    ("filename", "mime_type", "kind"),
    [
        ("a.pdf", "application/pdf", "document"),
        ("v.ogg", "audio/ogg", "audio"),
        ("s.webp", "image/webp", "sticker"),
        ("m.mp4", "video/mp4", "video"),
    ],
)
def test_files_become_the_right_message_type(
    serve: Callable[..., Served], filename: str, mime_type: str, kind: str
) -> None:
    seen: list[dict[str, Any]] = []
    served = serve(lambda m: seen.append(dict(m.raw)))
    served.session.post(
        f"{served.base}/sim/api/media", files={"file": (filename, b"data", mime_type)}
    )
    served.wait(lambda ev: "delivery" in kinds(ev))
    assert seen[0]["type"] == kind
    if kind == "document":
        assert seen[0]["document"]["filename"] == "a.pdf"


def test_the_bot_can_upload_media_and_send_it_by_id(serve: Callable[..., Served]) -> None:
    served = serve(lambda m: None)
    config = served.app.config
    bearer = {"Authorization": f"Bearer {config['WHATSAPP_TOKEN']}"}
    upload_url = f"{config['WHATSAPP_BASE_URL']}/{config['WHATSAPP_PHONE_NUMBER_ID']}/media"
    plain = requests.Session()
    plain.trust_env = False
    uploaded = plain.post(
        upload_url,
        headers=bearer,
        files={"file": ("report.pdf", b"%PDF-1.4 fake", "application/pdf")},
        data={"messaging_product": "whatsapp", "type": "application/pdf"},
    )
    assert uploaded.status_code == 200
    media_id = uploaded.json()["id"]
    page_copy = served.session.get(f"{served.base}/sim/api/media/{media_id}")
    assert page_copy.content == b"%PDF-1.4 fake"
    assert 'filename="report.pdf"' in page_copy.headers["Content-Disposition"]
    refused = plain.post(upload_url, headers=bearer, files={"file": ("x", b"1", "text/plain")})
    assert refused.status_code == 400 and "messaging_product" in refused.text
    assert plain.delete(f"{config['WHATSAPP_BASE_URL']}/{media_id}", headers=bearer).json() == {
        "success": True
    }


def test_a_refused_send_is_shown(serve: Callable[..., Served]) -> None:
    served = serve(lambda m: "This will be refused")
    served.hub.fail_next(
        status=400, code=131047, message="Re-engagement message", match=lambda r: r.is_message
    )
    served.send(type="text", text="hi")
    events = served.wait(lambda ev: "refused" in kinds(ev) and "delivery" in kinds(ev))
    [refused] = [e for e in events if e["kind"] == "refused"]
    assert refused["error"]["code"] == 131047 and refused["payload"]["type"] == "text"
    assert "bot" not in kinds(events)


def test_an_unreachable_bot_is_reported(serve: Callable[..., Served]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    served = serve(lambda m: "x", webhook_url=f"http://127.0.0.1:{closed_port}/whatsapp")
    served.send(type="text", text="anyone?")
    events = served.wait(lambda ev: "delivery" in kinds(ev))
    assert events[-1]["ok"] is False and events[-1]["status"] is None


@pytest.mark.parametrize(
    "message",
    [
        {"type": "text", "text": ""},
        {"type": "text", "text": "x" * 5000},
        {"type": "text", "text": 42},
        {"type": "location", "latitude": 91, "longitude": 0},
        {"type": "location", "latitude": "north", "longitude": 0},
        {"type": "button_reply", "title": "no id"},
        {"type": "template", "name": "x"},
    ],
)
def test_bad_input_gets_a_400(serve: Callable[..., Served], message: dict[str, Any]) -> None:
    served = serve(lambda m: "x")
    response = served.send(**message)
    assert response.status_code == 400
    assert response.json()["error"]


def test_other_bad_requests(serve: Callable[..., Served]) -> None:
    served = serve(lambda m: "x")
    s, base = served.session, served.base
    assert s.post(f"{base}/sim/api/messages", data="not json").status_code == 400
    assert s.post(f"{base}/sim/api/media", data={"caption": "no file"}).status_code == 400
    assert s.post(f"{base}/sim/api/seen", json={"ids": "nope"}).status_code == 400
    assert s.get(f"{base}/sim/api/media/..%2F..%2Fetc").status_code == 404
    assert s.get(f"{base}/sim/api/media/999").status_code == 404
    # Posts from anywhere but the page (a cross-site form, say) are refused.
    assert requests.post(f"{base}/sim/api/clear", timeout=5).status_code == 403
    forged = requests.post(
        f"{base}/sim/api/media", files={"file": ("a.png", b"x", "image/png")}, timeout=5
    )
    assert forged.status_code == 403
    # The hub itself wants its token.
    assert s.get(f"{served.hub.root_url}/_simulator/events").status_code == 401


def test_polling_adapts_to_the_server(serve: Callable[..., Served]) -> None:
    served = serve(lambda m: "pong")
    # A threaded server can hold the request open until something happens.
    first = served.events()  # a page that just opened is answered at once
    assert first["poll_ms"] == 0 and first["events"] == []
    feed = served.hub.feed
    read = feed.after
    waiting = threading.Event()

    def after(seq: int, *, user: str | None = None, wait: float = 0.0) -> Any:
        if wait > 0:
            waiting.set()  # the page's request is in the hub, ready to wait for news
        return read(seq, user=user, wait=wait)

    feed.after = after  # type: ignore[method-assign]
    result: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: result.update(served.events(after=first["last"], epoch=first["epoch"]))
    )
    waiter.start()
    assert waiting.wait(10)
    served.send(type="text", text="ping")
    waiter.join(20)
    assert result["events"][0]["kind"] == "user"
    # Synchronous workers (no threads) get an immediate answer and a poll interval.
    quick = served.app.test_client().get("/sim/api/events?after=0")
    assert quick.json["poll_ms"] > 0


def test_a_page_that_knew_another_conversation_is_answered_at_once(
    serve: Callable[..., Served],
) -> None:
    served = serve(lambda m: "pong")
    current = served.events()["epoch"]
    # After a restart or a clear, a long poll with the old epoch must not wait
    # 20 s for news: the page has to start over now.
    started = time.monotonic()
    stale = served.events(after=7, epoch="an-older-one")
    assert time.monotonic() - started < 5
    assert stale["epoch"] == current
    # A page that lost the server asks with wait=0, so it sees at once that it is back.
    started = time.monotonic()
    response = served.session.get(
        f"{served.base}/sim/api/events",
        params={"after": 0, "epoch": current, "wait": "0"},
        timeout=30,
    )
    assert response.status_code == 200 and time.monotonic() - started < 5


def test_clear_starts_a_new_conversation(serve: Callable[..., Served]) -> None:
    served = serve(lambda m: "pong")
    served.send(type="text", text="ping")
    served.wait(lambda ev: "delivery" in kinds(ev))
    before = served.events()["epoch"]
    assert served.session.post(f"{served.base}/sim/api/clear").status_code == 200
    after = served.events()
    assert after["epoch"] != before and kinds(after["events"]) == ["cleared"]


def test_page_is_served_with_its_config_escaped(serve: Callable[..., Served]) -> None:
    served = serve(lambda m: "x", url_prefix="/chat", user_name="</script><b>")
    page = served.session.get(f"{served.base}/chat/")
    assert page.status_code == 200
    assert "</script><b>" not in page.text and "\\u003c/script>\\u003cb>" in page.text
    config = json.loads(page.text.split('type="application/json">')[1].split("</script>")[0])
    assert config["api"] == "/chat/sim/api"
    assert config["maxText"] == 4096  # what the server accepts, the box allows
    assert config["examples"] == ["menu", "Hello! What can you do?"]
    assert served.session.get(f"{served.base}/chat/sim/static/simulator.js").status_code == 200
    assert served.session.get(f"{served.base}/chat/sim/api/events").status_code == 200


def test_the_simulator_must_come_before_the_connector() -> None:
    with FakeGraphAPI() as graph:
        app = Flask("late")
        WhatsappConnector("t", "1", "v", base_url=graph.base_url, assistant=lambda m: "x").init_app(
            app
        )
        with pytest.raises(ConfigurationError, match="before registering"):
            Simulator(app, share=False)


def test_processes_share_one_hub_and_revive_it() -> None:
    key = f"test-{secrets.token_hex(4)}"
    first = HubLink(key)
    second = HubLink(key)
    try:
        assert first.hosted_here and not second.hosted_here
        assert second.settings.root_url == first.settings.root_url
        assert second.settings.app_secret == first.settings.app_secret
        assert HubClient(second).request("GET", "ping").status_code == 200
        port = first.settings.root_url
        assert first.hub is not None
        first.hub.stop()  # the worker hosting the hub died
        # The next call finds it gone, starts a new hub on the same port, and goes on.
        assert HubClient(second).request("GET", "ping").status_code == 200
        assert second.hosted_here and second.settings.root_url == port
        assert second.settings.token == first.settings.token
    finally:
        first.close()
        second.close()


def test_the_docs_simulator_example_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    from .doc_blocks import code_block, page

    block = code_block(page("simulator"), "Simulator(app")
    monkeypatch.setenv("SIMULATOR", "1")
    monkeypatch.delenv("SERVER_SOFTWARE", raising=False)
    namespace: dict[str, Any] = {"__name__": "docs_example", "my_assistant": lambda m: "hi"}
    exec(compile(block, "simulator.rst", "exec"), namespace)  # noqa: S102 - our own docs
    app = namespace["app"]
    try:
        assert app.test_client().get("/").status_code == 200
        assert app.config["WHATSAPP_BASE_URL"] == Simulator.hub_of(app).base_url  # type: ignore[union-attr]
    finally:
        Simulator.hub_of(app).stop()  # type: ignore[union-attr]


def test_the_empty_chat_suggests_what_the_bot_understands(serve: Callable[..., Served]) -> None:
    for examples, shown in ((["order 42", "help"], ["order 42", "help"]), ("status", ["status"])):
        served = serve(lambda m: "x", examples=examples)
        page = served.session.get(f"{served.base}/").text
        config = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
        assert config["examples"] == shown


def test_the_page_draws_its_icons_itself() -> None:
    """No file of the page needs an emoji font: every icon is an inline SVG symbol."""
    assets = resources.files("cel_whatsapp.simulator").joinpath("page-assets")
    for name in ("index.html", "simulator.js", "simulator.css"):
        text = assets.joinpath(name).read_text(encoding="utf-8")
        assert PICTOGRAPHS.findall(text) == [], name
    page = assets.joinpath("index.html").read_text(encoding="utf-8")
    symbols = set(re.findall(r'<symbol id="(i-[a-z]+)"', page))
    used = set(re.findall(r'href="#(i-[a-z]+)"', page))
    script = assets.joinpath("simulator.js").read_text(encoding="utf-8")
    used |= {f"i-{name}" for name in re.findall(r'icon\("([a-z]+)"\)', script)}
    assert used and used <= symbols, used - symbols
