"""The simulator in a real headless browser: Debian's chromium driven by Playwright.

Runs the README's first command (``python -m sample_app``), types a message,
watches the streamed sentences arrive as separate bubbles, clicks a reply
button and a list row, and writes a screenshot under the pytest tmp dir.
Skipped when chromium or Playwright is missing, unless
``CEL_WHATSAPP_REQUIRE_COMPONENTS=1`` (set by ``.ci/run``), where that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .components import ROOT, free_port, skip_or_fail

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


@pytest.fixture
def sample_bot(tmp_path: Path) -> Iterator[str]:
    """``python -m sample_app`` on a free port, with no Meta credentials."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WHATSAPP_", "OPENAI_", "CEL_WHATSAPP_SIMULATOR"))
        and k not in ("SIMULATOR", "SERVER_SOFTWARE", "DEMO_IMAGE_URL")
        and not k.lower().endswith("_proxy")
    }
    env.update({"PORT": str(port), "PYTHONPATH": str(ROOT)})
    log = (tmp_path / "sample_app.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "sample_app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if session.get(base + "/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "sample_app.log").read_text())
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def test_chat_in_a_real_browser(sample_bot: str, tmp_path: Path) -> None:
    sync_playwright = _require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
            headless=True,
            args=FLAGS,
            viewport={"width": 900, "height": 1400},
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(sample_bot + "/")
            page.wait_for_selector(".note")  # the page has loaded its conversation

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
            page.locator(".msg.in .text", has_text="An assistant can yield text").wait_for(
                timeout=20_000
            )

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

            # Clearing starts a new conversation, which goes on working.
            page.click("#clear")
            page.wait_for_function("document.querySelectorAll('#messages .msg').length === 0")
            page.fill("#text", "menu")
            page.press("#text", "Enter")
            page.get_by_role("button", name="Send a picture").wait_for(timeout=20_000)
            assert page.locator("#messages .msg.out").count() == 1
            assert errors == []
        finally:
            browser.close()
