"""Graceful shutdown under real gunicorn: SIGTERM while answers are still running."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cel_whatsapp.testing import FakeGraphAPI, encode, text_webhook

from .components import gunicorn
from .conftest import TOKEN
from .test_load import APP, post

pytestmark = pytest.mark.integration


@pytest.fixture
def fake_graph() -> Iterator[FakeGraphAPI]:
    with FakeGraphAPI(token=TOKEN) as graph:
        yield graph


def test_sigterm_finishes_accepted_messages_before_exiting(
    fake_graph: FakeGraphAPI, tmp_path: Path
) -> None:
    log_path = tmp_path / "gunicorn.log"
    env = {"CEL_TEST_GRAPH_URL": fake_graph.base_url, "CEL_TEST_DELAY": "1.0"}
    with gunicorn(APP, workers=2, env=env, log_path=log_path) as (url, arbiter):
        ids = [f"wamid.TERM{index}" for index in range(5)]
        for index, wamid in enumerate(ids):
            # One lead: the five answers run one after another, about 5 s of work.
            body = text_webhook(
                "slow", id=wamid, sender="15550004242", timestamp=1_700_000_000 + index
            )
            assert post(url, encode(body))[0] == 200
        stopped_at = time.monotonic()
        arbiter.send_signal(signal.SIGTERM)
        arbiter.wait(timeout=40)
        exited_after = time.monotonic() - stopped_at
    assert arbiter.returncode == 0
    replies = fake_graph.sent()
    assert sorted(r.json["text"]["body"] for r in replies) == sorted(f"re {i}" for i in ids)
    # Each worker got some of the five and answers them one at a time, 1 s
    # each: most were still to be answered when SIGTERM came.
    assert sum(r.at > stopped_at for r in replies) >= 3
    assert exited_after < 30  # within gunicorn's graceful_timeout
    log = log_path.read_text(errors="replace")
    assert "unanswered" not in log and "Traceback" not in log, log[-3000:]
