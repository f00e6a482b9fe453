"""``flask --app sample_app whatsapp send`` next to a running ``python -m sample_app``.

Before issue 17 the command printed a wamid and exited 0, but the message
never appeared in the open chat: loading the app had started a private
simulator in the command's own process. Now WHATSAPP_BASE_URL or
``--base-url`` (the hub address ``python -m sample_app`` logs) lands the
message in the chat the running server's page shows, and without either the
command refuses, naming the running simulator.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import sample_app
from cel_whatsapp.simulator import Simulator

from .components import ROOT, free_port

pytestmark = pytest.mark.integration

USER = "15551234567"  # the simulator's default user, whose chat the page shows
HINT = re.compile(r"whatsapp send --base-url (\S+) --to (\d+)")


def _environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # FLASK_RUN_FROM_CLI, left by a FlaskGroup run in this process, stops app.run().
        if not key.startswith(("WHATSAPP_", "OPENAI_", "CEL_WHATSAPP_SIMULATOR", "FLASK_"))
        and key not in ("SIMULATOR", "SERVER_SOFTWARE", "DEMO_IMAGE_URL", "PORT", "HOST")
        and not key.lower().endswith("_proxy")
    }
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``python -m sample_app`` on a free port; yields its site URL and its hub's address."""
    port = free_port()
    log_path = tmp_path / "sample_app.log"
    with (
        log_path.open("wb") as log,
        subprocess.Popen(
            [sys.executable, "-m", "sample_app"],
            env={**_environment(), "PORT": str(port)},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as server,
    ):
        try:
            deadline = time.monotonic() + 30
            found = None
            while found is None and time.monotonic() < deadline and server.poll() is None:
                found = HINT.search(log_path.read_text(errors="replace"))
                time.sleep(0.05)
            assert found is not None, log_path.read_text(errors="replace")
            assert found.group(2) == USER
            yield f"http://127.0.0.1:{port}", found.group(1)
        finally:
            server.terminate()
            server.wait(10)


def _flask(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "flask", "--app", "sample_app", "whatsapp", "send", *args],
        capture_output=True,
        text=True,
        env={**_environment(), **env},
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def _chat(site: str) -> list[dict[str, Any]]:
    """The bot's messages in the chat the running server's page shows."""
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(f"{site}/sim/api/events", params={"after": "0"}, timeout=10)
    response.raise_for_status()
    return [e["payload"] for e in response.json()["events"] if e["kind"] == "bot"]


def test_what_the_cli_sends_lands_in_the_running_simulators_chat(
    running: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site, hub = running
    # With WHATSAPP_BASE_URL, in a `flask` process of its own.
    by_env = _flask("--to", f"+{USER}", "hello from the env", WHATSAPP_BASE_URL=hub)
    assert by_env.returncode == 0, by_env.stderr
    assert by_env.stdout.startswith("wamid.")
    # With --base-url, through click's runner; loading the app starts a
    # private hub here, but the message goes to the running one.
    app = sample_app.create_app()
    try:
        result = app.test_cli_runner().invoke(
            args=["whatsapp", "send", "--base-url", hub, "--to", USER, "hello from the option"]
        )
        assert result.exit_code == 0, result.output
    finally:
        app.extensions["cel_whatsapp.simulator"].link.close()
    texts = [p["text"]["body"] for p in _chat(site) if p["type"] == "text" and p["to"] == USER]
    assert texts == ["hello from the env", "hello from the option"]
    # With neither: no wamid, one line naming the running simulator, status 2.
    lonely = _flask("--to", USER, "lost?")
    assert lonely.returncode == 2
    assert lonely.stdout == ""
    [line] = lonely.stderr.splitlines()
    assert "--base-url" in line and hub in line  # with others, if more run on this machine
    assert len(_chat(site)) == 2
    assert Simulator.hub_of(app) is None  # closed
