"""The simulator in a real headless browser: Debian's chromium driven by Playwright.

Runs the README's first command (``python -m sample_app``), types a message,
watches the streamed sentences arrive as separate bubbles, clicks a reply
button and a list row, and writes a screenshot under the pytest tmp dir.
Then the page's rough edges, one test each: icons drawn as SVG (no emoji
font needed), Clear asking first, a stopped server (the typed text stays,
the header says offline, then online again), the counter at the text limit
and the empty chat's hint.
Skipped when chromium or Playwright is missing, unless
``CEL_WHATSAPP_REQUIRE_COMPONENTS=1`` (set by ``.ci/run``), where that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .components import ROOT, free_port, skip_or_fail
from .test_simulator import PICTOGRAPHS

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_browser() -> Any:
    missing = []
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing.append("Debian's chromium package (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append('Playwright for Python (pip install -e ".[test]")')
    if missing:
        skip_or_fail("browser test needs " + " and ".join(missing))
    return sync_playwright


class SampleBot:
    """``python -m sample_app`` on a fixed free port, with no Meta credentials.

    ``stop`` and ``start`` again on the same port play a server that went
    away and came back (a new process: a new, empty conversation).
    """

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self.session.trust_env = False

    def start(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WHATSAPP_", "OPENAI_", "CEL_WHATSAPP_SIMULATOR"))
            and k not in ("SIMULATOR", "SERVER_SOFTWARE", "DEMO_IMAGE_URL")
            and not k.lower().endswith("_proxy")
        }
        env.update({"PORT": str(self.port), "PYTHONPATH": str(ROOT)})
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sample_app"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.session.get(self.base + "/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(self.log_path.read_text())
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@pytest.fixture
def sample_bot(tmp_path: Path) -> Iterator[SampleBot]:
    """The demo bot, served on a free port for one test."""
    bot = SampleBot(tmp_path / "sample_app.log")
    try:
        bot.start()
        yield bot
    finally:
        bot.stop()
        bot.session.close()


class Tab:
    """A page of headless chromium, with what went wrong in it."""

    def __init__(self, page: Any) -> None:
        self.page = page
        #: Uncaught exceptions and console errors.
        self.errors: list[str] = []
        #: Every URL the page asked for.
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: message.type == "error" and self.errors.append(message.text),
        )

    def script_errors(self) -> list[str]:
        """The errors, less the browser's own lines about requests that failed."""
        return [e for e in self.errors if "net::ERR_" not in e]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for the module (each test gets its own context)."""
    sync_playwright = _require_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
            headless=True,
            args=FLAGS,
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def chromium(browser: Any) -> Iterator[Callable[[str], Tab]]:
    """Opens a URL in a fresh browser context (no shared cookies or storage)."""
    context = browser.new_context(viewport={"width": 900, "height": 1400})

    def open_tab(url: str) -> Tab:
        tab = Tab(context.new_page())
        tab.page.goto(url)
        tab.page.wait_for_selector(".note")  # the page has loaded its conversation
        return tab

    try:
        yield open_tab
    finally:
        context.close()


def test_chat_in_a_real_browser(
    sample_bot: SampleBot, chromium: Callable[[str], Tab], tmp_path: Path
) -> None:
    tab = chromium(sample_bot.base + "/")
    page = tab.page
    # Record when each bot bubble appears, to see the stream arrive in pieces.
    page.evaluate(
        """() => {
            window.arrivals = [];
            new MutationObserver((changes) => {
                for (const change of changes)
                    for (const node of change.addedNodes)
                        if (node.classList && node.classList.contains("in"))
                            window.arrivals.push(performance.now());
            }).observe(document.getElementById("messages"), { childList: true });
        }"""
    )
    page.fill("#text", "hello simulator")
    page.press("#text", "Enter")
    page.wait_for_function(
        "document.querySelectorAll('#messages .msg.in').length >= 5", timeout=20_000
    )
    bubbles = page.locator("#messages .msg.in .text").all_inner_texts()
    assert bubbles == [
        "Hi Alex!",
        "You wrote 2 words.",
        "Here it is back: hello simulator",
        "Each sentence of this answer arrives as its own WhatsApp message.",
        "Type menu to see what I can do.",
    ]
    arrivals = page.evaluate("window.arrivals")
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] > 300, arrivals  # streamed, not all at once
    # The bot marked the message read: blue ticks.
    page.wait_for_selector(".msg.out .ticks.read", timeout=10_000)
    assert page.locator(".msg.out .text").all_inner_texts() == ["hello simulator"]

    # A menu with reply buttons; clicking one sends a button_reply webhook.
    page.fill("#text", "menu")
    page.press("#text", "Enter")
    page.get_by_role("button", name="Stream a story").click(timeout=20_000)
    story = page.locator(".msg.in .text", has_text="Here is a story")
    story.wait_for(timeout=20_000)
    page.wait_for_function(
        "[...document.querySelectorAll('.msg.in .text')].some(n => n.textContent === 'Type menu to go back.')",
        timeout=20_000,
    )
    assert page.locator(".msg.out", has_text="Stream a story").count() == 1

    # A list: open it, pick a row, get its answer.
    page.get_by_role("button", name="Show a list").last.click()
    page.locator(".list-open").last.click(timeout=20_000)
    page.get_by_role("button", name="Rich replies").click()
    page.locator(".msg.in .text", has_text="An assistant can yield text").wait_for(timeout=20_000)

    # A photo from the page: uploaded, delivered by media id, echoed back and reacted to.
    page.set_input_files("#file", str(ROOT / "sample_app" / "static" / "picture.png"))
    page.locator(".msg.in .caption", has_text="echoed by media id").wait_for(timeout=20_000)
    page.wait_for_function(
        "[...document.querySelectorAll('.msg img.media')].filter("
        "i => i.complete && i.naturalWidth === 480).length >= 2",
        timeout=20_000,
    )
    assert page.locator(".msg.out.has-reaction .reaction").count() == 1
    # A location: the bot sends the same pin back.
    page.click("#share-location")
    page.click("#location-send")
    page.locator(".msg.in .place", has_text="Eiffel Tower").wait_for(timeout=20_000)

    screenshot = tmp_path / "simulator.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    # Clearing (once confirmed) starts a new conversation, which goes on working.
    page.click("#clear")
    page.click("#clear-confirm")
    page.wait_for_function("document.querySelectorAll('#messages .msg').length === 0")
    page.fill("#text", "menu")
    page.press("#text", "Enter")
    page.get_by_role("button", name="Send a picture").wait_for(timeout=20_000)
    assert page.locator("#messages .msg.out").count() == 1
    assert tab.errors == []


def test_icons_are_drawn_without_an_emoji_font(
    sample_bot: SampleBot, chromium: Callable[[str], Tab]
) -> None:
    tab = chromium(sample_bot.base + "/")
    page = tab.page
    page.fill("#text", "menu")
    page.press("#text", "Enter")
    page.get_by_role("button", name="Show a list").click(timeout=20_000)
    page.locator(".list-open").wait_for(timeout=20_000)
    page.click("#share-location")
    page.click("#location-send")
    page.locator(".msg.in .place").wait_for(timeout=20_000)
    page.wait_for_selector(".msg.out .ticks.read", timeout=10_000)

    # Each icon is an inline <svg> whose drawing is found and has a size.
    drawn = page.evaluate(
        """() => [...document.querySelectorAll(
                "#app button.icon, #send, .avatar, .list-open, .place, .ticks")].map((node) => {
            const use = node.querySelector("svg > use");
            const box = use && use.getBBox();
            const href = use && use.getAttribute("href");
            return {
                node: node.id || node.className,
                ok: !!(use && document.querySelector(href) && box.width > 0 && box.height > 0
                    && node.querySelector("svg").getBoundingClientRect().width > 0),
            };
        })"""
    )
    kinds = {d["node"] for d in drawn}
    assert {"clear", "attach", "share-location", "send", "avatar", "list-open"} <= kinds
    assert {"place", "ticks read"} <= kinds
    assert [d for d in drawn if not d["ok"]] == []
    # Screen readers get a name for every icon button.
    for name in ("Attach a file", "Share a location", "Send", "Clear the conversation"):
        assert page.get_by_role("button", name=name, exact=True).count() == 1
    # And no character of the page needs an emoji font.
    text = page.evaluate("document.body.textContent")
    assert PICTOGRAPHS.findall(text) == []
    # Nothing comes from elsewhere (a web font, a CDN): the page works offline.
    assert [url for url in tab.requests if not url.startswith(sample_bot.base + "/")] == []
    assert tab.errors == []


def test_clear_asks_first(sample_bot: SampleBot, chromium: Callable[[str], Tab]) -> None:
    tab = chromium(sample_bot.base + "/")
    page = tab.page
    page.fill("#text", "menu")
    page.press("#text", "Enter")
    page.get_by_role("button", name="Send a picture").wait_for(timeout=20_000)
    shown = page.locator("#messages .msg").count()
    dialog = page.locator("#clear-dialog")

    def conversation() -> list[str]:
        events = sample_bot.session.get(sample_bot.base + "/sim/api/events", timeout=5)
        return [event["kind"] for event in events.json()["events"]]

    page.click("#clear")
    assert dialog.is_visible()
    assert "Clear this conversation?" in dialog.inner_text()
    page.click("#clear-cancel")
    dialog.wait_for(state="hidden")
    page.click("#clear")
    page.keyboard.press("Escape")  # Escape cancels too
    dialog.wait_for(state="hidden")
    time.sleep(0.5)  # a clear would reach the page within milliseconds
    assert "user" in conversation()
    assert page.locator("#messages .msg").count() == shown

    page.click("#clear")
    page.click("#clear-confirm")
    page.wait_for_function("document.querySelectorAll('#messages .msg').length === 0")
    assert "user" not in conversation()

    # After a confirmed clear, Escape still cancels (a <dialog> remembers its last answer).
    page.fill("#text", "menu")
    page.press("#text", "Enter")
    page.get_by_role("button", name="Send a picture").wait_for(timeout=20_000)
    page.click("#clear")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    time.sleep(0.5)
    assert "user" in conversation()
    assert page.locator("#messages .msg.out").count() == 1
    assert tab.errors == []


def test_offline_keeps_the_text_and_says_so(
    sample_bot: SampleBot, chromium: Callable[[str], Tab]
) -> None:
    tab = chromium(sample_bot.base + "/")
    page = tab.page
    status = page.locator("#bot-status")
    assert status.inner_text() == "online"

    sample_bot.stop()
    # The page's waiting poll fails: the header says so at once.
    page.wait_for_function(
        "document.getElementById('bot-status').textContent === 'offline — retrying'",
        timeout=10_000,
    )
    page.fill("#text", "are you there?")
    page.press("#text", "Enter")
    page.locator("#notice", has_text="Not sent").wait_for(timeout=10_000)
    assert page.input_value("#text") == "are you there?"  # not lost
    assert page.locator("#messages .msg").count() == 0
    assert status.inner_text() == "offline — retrying"

    sample_bot.start()  # back, on the same port
    page.wait_for_function(
        "document.getElementById('bot-status').textContent === 'online'", timeout=10_000
    )
    page.press("#text", "Enter")
    page.locator(".msg.out .text", has_text="are you there?").wait_for(timeout=10_000)
    assert page.input_value("#text") == ""
    page.locator(".msg.in .text", has_text="Type menu to see what I can do.").wait_for(
        timeout=20_000
    )
    # The browser logs the refused connections; the page itself raised nothing.
    assert tab.script_errors() == []


def test_counter_near_the_text_limit(sample_bot: SampleBot, chromium: Callable[[str], Tab]) -> None:
    tab = chromium(sample_bot.base + "/")
    page = tab.page
    counter = page.locator("#counter")
    page.fill("#text", "a" * 3899)
    assert counter.is_hidden()
    page.fill("#text", "a" * 3900)
    assert counter.is_visible()
    assert counter.inner_text() == "3,900 / 4,096"
    assert "full" not in (counter.get_attribute("class") or "")

    page.fill("#text", "b" * 5000)  # a paste past the limit is cut, and the page says so
    assert len(page.input_value("#text")) == 4096
    assert counter.inner_text() == "limit reached: 4,096 / 4,096"
    assert "full" in (counter.get_attribute("class") or "")
    page.press("#text", "c")
    assert len(page.input_value("#text")) == 4096
    page.press("#text", "Backspace")
    assert counter.inner_text() == "4,095 / 4,096"

    # What the box allows, the server accepts.
    page.press("#text", "d")
    page.press("#text", "Enter")
    sent = page.locator(".msg.out .text")
    sent.wait_for(timeout=10_000)
    assert len(sent.inner_text()) == 4096
    assert page.input_value("#text") == ""
    assert counter.is_hidden()
    assert tab.errors == []


def test_the_empty_chat_says_what_to_type(
    sample_bot: SampleBot, chromium: Callable[[str], Tab]
) -> None:
    tab = chromium(sample_bot.base + "/")
    page = tab.page
    hint = page.locator("#empty-hint")
    hint.wait_for()
    assert "No messages yet" in hint.inner_text()
    assert hint.get_by_role("button").all_inner_texts() == ["menu", "Hello! What can you do?"]

    hint.get_by_role("button", name="menu").click()  # an example is sent as typed
    hint.wait_for(state="hidden")
    page.get_by_role("button", name="Send a picture").wait_for(timeout=20_000)
    assert page.locator(".msg.out .text").all_inner_texts() == ["menu"]

    page.reload()  # a page opened on a conversation shows no hint
    page.locator(".msg.out").wait_for()
    assert hint.is_hidden()

    page.click("#clear")
    page.click("#clear-confirm")
    hint.wait_for()  # an empty chat again
    assert tab.errors == []
