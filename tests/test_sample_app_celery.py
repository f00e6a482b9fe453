"""``python -m sample_app --celery``: the web server, a Celery worker and a redis-server it starts.

The simulator still works: a message typed on the page goes through the
webhook, a job, the worker, and back to the page.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .components import ROOT, free_port, require, skip_or_fail, wait_for_port

pytestmark = pytest.mark.integration


def _call(base: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - a local URL of ours
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Simulator-Page": "1"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def test_celery_mode_answers_the_simulator_through_a_worker(tmp_path: Path) -> None:
    require("redis-server", "the Celery mode starts one")
    try:
        import celery  # noqa: F401
    except ImportError:
        skip_or_fail('celery is not installed (pip install -e ".[test]")')
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WHATSAPP_", "OPENAI_")) and key not in ("REDIS_URL", "CELERY")
    }
    env.update(PORT=str(port), SIMULATOR="1", CELERY_CONCURRENCY="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    log = (tmp_path / "sample.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "sample_app", "--celery"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, 30, process)
        helpers = _children(process.pid)
        assert len(helpers) == 2  # redis-server and the worker
        _call(base, "POST", "/sim/api/messages", {"type": "text", "text": "menu"})
        deadline = time.monotonic() + 40
        kinds: list[str] = []
        while time.monotonic() < deadline:
            events = _call(base, "GET", "/sim/api/events?after=0")["events"]
            kinds = [e["payload"]["type"] for e in events if e["kind"] == "bot"]
            if "interactive" in kinds:
                break
            time.sleep(0.2)
        assert kinds[:1] == ["text"] and "interactive" in kinds, (
            tmp_path / "sample.log"
        ).read_text()
        assert "cel_whatsapp.answer" in (tmp_path / "sample.log").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(40)
        finally:
            log.close()
    # The worker and redis-server ended with it.
    for pid in helpers:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text()
