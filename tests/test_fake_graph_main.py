"""``python -m cel_whatsapp.testing.fake_graph``: the fake Graph API run on its own, for curl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from cel_whatsapp.testing.fake_graph.__main__ import READY

from .components import ROOT, free_port


@contextmanager
def standalone(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The fake in a process of its own; yields it and its base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "cel_whatsapp.testing.fake_graph", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            first = process.stdout.readline()
            assert first.startswith(READY), first + process.stderr.read()
            yield process, first.split("WHATSAPP_BASE_URL=")[1].split()[0]
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.wait(10)


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never through a proxy from the environment
    return session


def test_it_answers_like_meta_and_prints_each_request_without_headers() -> None:
    with standalone("--port", "0") as (process, base_url), _session() as session:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v25.0")
        payload = {"messaging_product": "whatsapp", "to": "16505551234", "type": "text"}
        ok = session.post(
            f"{base_url}/106540352242922/messages",
            json={**payload, "text": {"body": "hello"}},
            headers={"Authorization": "Bearer secret-token-123"},
            timeout=5,
        )
        assert ok.status_code == 200
        assert ok.json()["messages"][0]["id"].startswith("wamid.")
        refused = session.post(
            f"{base_url}/106540352242922/messages",
            json={**payload, "text": {"body": ""}},
            timeout=5,
        )
        assert refused.status_code == 400 and refused.json()["error"]["code"] == 100
        assert process.stdout is not None
        sent, error = process.stdout.readline(), process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0  # SIGTERM is a normal stop
    assert sent.startswith("POST /v25.0/106540352242922/messages 200 ")
    assert json.loads(sent.split(" 200 ", 1)[1])["text"] == {"body": "hello"}
    assert error.startswith("POST /v25.0/106540352242922/messages 400 ")
    assert "The parameter text['body'] is required" in error
    assert "secret-token-123" not in sent + error


def test_token_makes_it_refuse_other_tokens() -> None:
    with standalone("--port", "0", "--token", "right") as (_, base_url), _session() as session:
        body = {"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "x"}}
        url = f"{base_url}/1/messages"
        wrong = session.post(url, json=body, headers={"Authorization": "Bearer wrong"}, timeout=5)
        right = session.post(url, json=body, headers={"Authorization": "Bearer right"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == 190
    assert right.status_code == 200


def test_a_taken_port_is_one_line_and_status_2() -> None:
    port = free_port()
    with standalone("--port", str(port)):
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "cel_whatsapp.testing.fake_graph", "--port", str(port)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in result.stderr
