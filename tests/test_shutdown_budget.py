"""SIGTERM with the Graph API down: the worker logs every message it leaves, then ends on its own.

gunicorn kills a worker ``graceful_timeout`` seconds after SIGTERM. Before,
the shutdown waited out its drain and then joined each busy thread for a
second: past the kill, with nothing logged, and every accepted message lost
without a trace. Now the whole shutdown fits the time left, and the ids of
the messages it could not answer are logged before anything that can block.
"""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cel_whatsapp.testing import encode, envelope, text_message
from cel_whatsapp.testing.webhooks import change_value

from .components import free_port, gunicorn
from .test_load import post

pytestmark = pytest.mark.integration

APP = "tests.shutdown_app:create_app()"
ENDED = "worker process ended on its own"  # printed by tests/shutdown_app.py (not imported here)
MESSAGES = 300
GRACEFUL_TIMEOUT = 4
_NOT_ANSWERED = re.compile(
    r"shutdown: not answered, (?:in progress|queued) \(\d+-\d+ of \d+\): (.*)"
)


@contextmanager
def refusing_graph() -> Iterator[str]:
    """A Graph API base URL where nothing listens: every send is refused, then retried."""
    yield f"http://127.0.0.1:{free_port()}/v25.0"


@contextmanager
def hanging_graph() -> Iterator[str]:
    """A Graph API that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v25.0"


@pytest.mark.parametrize("graph", [refusing_graph, hanging_graph], ids=["refused", "hanging"])
def test_sigterm_logs_every_unanswered_message_and_the_worker_ends_before_the_kill(
    graph: object, tmp_path: Path
) -> None:
    log_path = tmp_path / "gunicorn.log"
    ids = [f"wamid.LEFT{index:04d}" for index in range(MESSAGES)]
    # 250 leads: the 8 threads are all busy, and some leads have a queue.
    batch = [
        text_message("hi", id=wamid, sender=f"1555{index % 250:07d}", timestamp=1_700_000_000)
        for index, wamid in enumerate(ids)
    ]
    with graph() as graph_url:  # type: ignore[operator]
        env = {"CEL_TEST_GRAPH_URL": graph_url, "GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT)}
        with gunicorn(APP, workers=1, env=env, log_path=log_path) as (url, arbiter):
            assert post(url, encode(envelope(change_value(batch))))[0] == 200
            arbiter.send_signal(signal.SIGTERM)
            arbiter.wait(timeout=GRACEFUL_TIMEOUT + 30)
    assert arbiter.returncode == 0
    log = log_path.read_text(errors="replace")
    # The worker was not killed at graceful_timeout: it reached its last exit handler.
    assert ENDED in log, log[-4000:]
    logged = [wamid for line in _NOT_ANSWERED.findall(log) for wamid in line.split()]
    assert sorted(logged) == ids, log[-4000:]
    assert "exited with unanswered messages" in log
    assert "Traceback" not in log, log[-4000:]
