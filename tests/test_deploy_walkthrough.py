"""docs/deployment.rst's "Trying a deployment without Meta", run as written.

Its three shell blocks, each in a bash of its own as in three terminals (the
ports moved to free ones): the standalone fake Graph API, gunicorn with the
package's settings serving the sample bot, then curl with a body signed by
openssl. The bot's answer must show in the fake's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from .components import ROOT, free_port, require, wait_for_app
from .doc_blocks import code_blocks, page

pytestmark = pytest.mark.integration

TITLE = "Trying a deployment without Meta"


def _blocks() -> list[str]:
    return code_blocks(page("deployment"), "bash", under=TITLE)


def _environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WHATSAPP_", "OPENAI_", "CEL_WHATSAPP_SIMULATOR", "FLASK_"))
        and key not in ("SIMULATOR", "PYTHONPATH", "DEMO_IMAGE_URL")
        and not key.lower().endswith("_proxy")
    }
    # As in a checkout with the package installed: python, gunicorn on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def _terminal(script: str, output: IO[str] | int) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - the docs' own commands
        ["bash", "-c", script],  # noqa: S607 - bash from PATH, as a user's terminal
        cwd=ROOT,
        env=_environment(),
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, ended as a whole
    )


def _end(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def test_the_docs_walkthrough_answers_a_curl_webhook(tmp_path: Path) -> None:
    require("curl", "the walkthrough uses it")
    require("openssl", "the walkthrough signs the body with it")
    fake_block, server_block, curl_block = _blocks()
    fake_port, app_port = free_port(), free_port()

    assert "--port 8089" in fake_block
    assert "127.0.0.1:8089" in server_block and "127.0.0.1:8000" in server_block
    assert "127.0.0.1:8000" in curl_block

    def ported(block: str) -> str:
        block = block.replace("--port 8089", f"--port {fake_port}")
        block = block.replace("127.0.0.1:8089", f"127.0.0.1:{fake_port}")
        return block.replace("127.0.0.1:8000", f"127.0.0.1:{app_port}")

    lines: queue.Queue[str] = queue.Queue()
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(_terminal(ported(fake_block), subprocess.PIPE))
        assert fake.stdout is not None
        stdout = fake.stdout
        reader = threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True)
        reader.start()
        # Last in, first out: the fake ends, its reader sees the end, then the pipe closes.
        stack.callback(reader.join, 10)
        stack.callback(_end, fake)
        log = stack.enter_context((tmp_path / "gunicorn.log").open("w"))
        server = stack.enter_context(_terminal(ported(server_block), log))
        stack.callback(_end, server)
        _check(app_port, ported(curl_block), lines)
    assert "any-token" not in "".join(list(lines.queue))
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()


def _check(app_port: int, curl_block: str, lines: queue.Queue[str]) -> None:
    """The curl block's output, then the bot's greeting among the fake's lines."""
    wait_for_app(app_port, 30)
    result = subprocess.run(  # noqa: S603 - the docs' own commands
        ["bash", "-c", curl_block],  # noqa: S607 - bash from PATH
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("42"), result.stdout
    assert "HTTP/1.1 200 OK" in result.stdout, result.stdout
    texts = []
    deadline = time.monotonic() + 20
    while "Hi Ana!" not in texts and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if "/messages 200 " in line:
            payload = json.loads(line.split(" 200 ", 1)[1])
            texts.append(payload.get("text", {}).get("body"))
    assert "Hi Ana!" in texts, texts  # the sample bot's greeting
