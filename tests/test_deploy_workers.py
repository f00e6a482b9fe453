"""The package's gunicorn settings under each worker class docs/deployment.rst names.

``gunicorn -c python:cel_whatsapp.gunicorn_conf -k sync|gthread|gevent``: a
signed webhook is answered, and a SIGTERM that comes while answers are still
running lets them finish before the workers end (the graceful-shutdown hooks
work under each worker class).
"""

from __future__ import annotations

import importlib.util
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cel_whatsapp.testing import FakeGraphAPI, encode, text_webhook

from .components import gunicorn, skip_or_fail
from .conftest import TOKEN
from .test_load import APP, post

pytestmark = pytest.mark.integration

CONFIG = "python:cel_whatsapp.gunicorn_conf"
WORKER_CLASSES = {
    "sync": (),
    "gthread": ("--threads", "4"),
    "gevent": (),
}


@pytest.fixture
def fake_graph() -> Iterator[FakeGraphAPI]:
    with FakeGraphAPI(token=TOKEN) as graph:
        yield graph


@pytest.mark.parametrize("worker_class", list(WORKER_CLASSES))
def test_a_webhook_is_answered_and_a_sigterm_finishes_the_answers(
    worker_class: str, fake_graph: FakeGraphAPI, tmp_path: Path
) -> None:
    if worker_class == "gevent" and importlib.util.find_spec("gevent") is None:
        skip_or_fail("gevent is not installed (the test extra has it)")
    log_path = tmp_path / "gunicorn.log"
    args = ("-k", worker_class, *WORKER_CLASSES[worker_class])
    # Each answer takes 1 s, so most are still running when SIGTERM comes.
    env = {"CEL_TEST_GRAPH_URL": fake_graph.base_url, "CEL_TEST_DELAY": "1.0"}
    served = gunicorn(APP, workers=1, env=env, log_path=log_path, extra_args=args, config=CONFIG)
    with served as (url, arbiter):
        ids = [f"wamid.{worker_class.upper()}{index}" for index in range(3)]
        for index, wamid in enumerate(ids):
            body = text_webhook(
                "hi", id=wamid, sender="15550004343", timestamp=1_700_000_000 + index
            )
            assert post(url, encode(body))[0] == 200
        assert fake_graph.wait_for(lambda g: len(g.sent()) >= 1, timeout=10), "no answer"
        stopped_at = time.monotonic()
        arbiter.send_signal(signal.SIGTERM)
        arbiter.wait(timeout=40)
    log = log_path.read_text(errors="replace")
    assert arbiter.returncode == 0, log[-3000:]
    replies = fake_graph.sent()
    assert sorted(r.json["text"]["body"] for r in replies) == [f"re {i}" for i in ids], log[-3000:]
    assert any(r.at > stopped_at for r in replies)  # answered after the SIGTERM
    assert "unanswered" not in log and "Traceback" not in log, log[-3000:]
    assert f"Using worker: {worker_class}" in log
