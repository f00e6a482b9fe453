"""The sample bot's simulator under a real gunicorn with sync workers.

One sync worker: the bot sends its replies inline, over HTTP, to the hub,
which serves from its own threads, so the worker never waits on itself.
Two workers: the page's requests land on either, and both see one
conversation because they share one hub; if the worker hosting it dies, the
hub comes back on the same port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Gunicorn:
    def __init__(self, workers: int, *, preload: bool = False) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WHATSAPP_", "OPENAI_", "CEL_WHATSAPP_SIMULATOR"))
            and k not in ("SIMULATOR", "SERVER_SOFTWARE", "DEMO_IMAGE_URL")
            and not k.lower().endswith("_proxy")
        }
        env["PYTHONPATH"] = str(ROOT)
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and config
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "sample_app" / "gunicorn.conf.py"),
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                str(workers),
                "--worker-class",
                "sync",
                *(["--preload"] if preload else []),
                "sample_app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a stuck worker can be ended too
        )
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["X-Simulator-Page"] = "1"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # never leave a gunicorn behind for the next tests
            raise

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{self.output()}")
            try:
                if self.session.get(self.base + "/", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet, or too busy to answer (a loaded CI machine)
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not start:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-5000:]

    def stop(self) -> None:
        try:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            pass
        finally:
            # The master is gone (or stuck): end whatever is left of its group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            self.log.close()

    # -- the page's calls ----------------------------------------------------------------

    def send(self, **message: Any) -> dict[str, Any]:
        response = self.session.post(f"{self.base}/sim/api/messages", json=message, timeout=10)
        assert response.status_code == 200, response.text
        event: dict[str, Any] = response.json()["event"]
        return event

    def events(self) -> dict[str, Any]:
        response = self.session.get(f"{self.base}/sim/api/events?after=0", timeout=10)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def wait(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            events = self.events()["events"]
            if predicate(events):
                return events
            time.sleep(0.1)
        raise AssertionError(f"timed out with {[e['kind'] for e in events]}\n{self.output()}")


@pytest.fixture
def gunicorn() -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def start(workers: int, preload: bool = False) -> Gunicorn:
        server = Gunicorn(workers, preload=preload)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()  # never raises past its cleanup, so every server is stopped


def bot_texts(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["payload"]["text"]["body"]
        for e in events
        if e["kind"] == "bot" and e["payload"]["type"] == "text"
    ]


def menu_then_story(server: Gunicorn) -> list[dict[str, Any]]:
    server.send(type="text", text="menu")
    events = server.wait(
        lambda ev: any(e["kind"] == "bot" and e["payload"]["type"] == "interactive" for e in ev)
    )
    [menu] = [e for e in events if e["kind"] == "bot" and e["payload"]["type"] == "interactive"]
    assert bot_texts(events)[0] == "Hi Alex!"
    server.send(type="button_reply", id="story", title="Stream a story", reply_to=menu["id"])
    return server.wait(lambda ev: "Type *menu* to go back." in bot_texts(ev))


@pytest.mark.parametrize(
    ("workers", "preload"), [(1, False), (2, False), (2, True)], ids=["1", "2", "2-preload"]
)
def test_the_simulator_works_under_sync_workers(
    gunicorn: Callable[..., Gunicorn], workers: int, preload: bool
) -> None:
    # With --preload the app, and so the hub, is created once, in gunicorn's master.
    server = gunicorn(workers, preload)
    events = menu_then_story(server)
    story = bot_texts(events)[3:]
    assert story[0] == "Here is a story, streamed the way a language model writes."
    assert len(story) == 5
    assert [e["ok"] for e in events if e["kind"] == "delivery"] == [True, True]
    # Whichever worker answers, the page sees the same conversation.
    counts = {len(server.events()["events"]) for _ in range(12)}
    assert counts == {len(events)}


def test_the_hub_survives_the_death_of_its_worker(gunicorn: Callable[..., Gunicorn]) -> None:
    server = gunicorn(2)
    menu_then_story(server)
    rendezvous = Path(tempfile.gettempdir()) / (
        f"cel-whatsapp-simulator-{os.getuid()}-gunicorn-{server.process.pid}.json"
    )
    hosting = json.loads(rendezvous.read_text())["pid"]
    os.kill(hosting, signal.SIGKILL)
    # The next request revives the hub (same port, so every connector still reaches it).
    deadline = time.monotonic() + 20
    while True:
        try:
            server.send(type="text", text="menu")
            break
        except (AssertionError, requests.RequestException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    events = server.wait(
        lambda ev: any(e["kind"] == "bot" and e["payload"]["type"] == "interactive" for e in ev)
    )
    assert bot_texts(events)[0] == "Hi Alex!"
    assert json.loads(rendezvous.read_text())["pid"] != hosting
