"""Metrics under 4 real gunicorn workers, in prometheus_client's multiprocess mode.

gunicorn runs with the sample app's config file, which empties
``PROMETHEUS_MULTIPROC_DIR`` at start, serves the sum of every worker's
figures from the master on ``METRICS_PORT``, and marks dead workers in
``child_exit``. Webhooks land on whichever worker accepts them; the totals
scraped must equal what was posted. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cel_whatsapp.testing import FakeGraphAPI, encode, text_webhook

from .components import free_port, gunicorn
from .conftest import TOKEN
from .exposition import Samples, parse, series
from .test_load import post

pytestmark = pytest.mark.integration
pytest.importorskip("prometheus_client", reason='needs prometheus_client: pip install -e ".[test]"')

APP = "tests.gunicorn_app:create_app()"
WORKERS = 4
WEBHOOKS = 400
CONCURRENCY = 16


@pytest.fixture
def fake_graph() -> Iterator[FakeGraphAPI]:
    with FakeGraphAPI(token=TOKEN) as graph:
        yield graph


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return parse(answer.read().decode("utf-8"))


def pids_with_files(directory: Path, prefix: str) -> set[int]:
    found = (re.fullmatch(rf"{prefix}_(\d+)\.db", path.name) for path in directory.iterdir())
    return {int(match.group(1)) for match in found if match}


def test_four_workers_add_up_to_the_webhooks_posted(
    fake_graph: FakeGraphAPI, tmp_path: Path
) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    stale = directory / "counter_999999.db"
    stale.write_bytes(b"left by an earlier run")
    metrics_port = free_port()
    env = {
        "CEL_TEST_GRAPH_URL": fake_graph.base_url,
        "CEL_TEST_METRICS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "METRICS_PORT": str(metrics_port),
    }
    log_path = tmp_path / "gunicorn.log"
    with gunicorn(APP, workers=WORKERS, env=env, log_path=log_path) as (url, _arbiter):
        assert not stale.exists()  # on_starting emptied the directory
        bodies = [
            encode(text_webhook(f"hello {index}", sender=f"1555{index:07d}", id=f"wamid.M{index}"))
            for index in range(WEBHOOKS)
        ]
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            statuses = [status for status, _ in pool.map(lambda raw: post(url, raw), bodies)]
        assert statuses == [200] * WEBHOOKS
        assert fake_graph.wait_for(lambda g: len(g.sent()) == WEBHOOKS, timeout=60)

        def settled() -> Samples:
            # The last replies' counts are written just after Meta accepted them.
            deadline = time.monotonic() + 10
            while True:
                samples = scrape(metrics_port)
                done = samples.get(series("whatsapp_first_reply_seconds_count"), 0)
                if done == WEBHOOKS or time.monotonic() > deadline:
                    return samples
                time.sleep(0.05)

        samples = settled()
        assert samples[series("whatsapp_webhooks_total", status="200")] == WEBHOOKS
        assert samples[series("whatsapp_webhook_seconds_count")] == WEBHOOKS
        assert samples[series("whatsapp_messages_received_total", type="text")] == WEBHOOKS
        assert samples[series("whatsapp_messages_sent_total", kind="text")] == WEBHOOKS
        assert samples[series("whatsapp_assistant_seconds_count")] == WEBHOOKS
        assert samples[series("whatsapp_first_reply_seconds_count")] == WEBHOOKS
        assert samples[series("whatsapp_dispatch_pending")] == 0
        # The figures came from several workers, each writing its own files.
        writers = pids_with_files(directory, "counter")
        assert len(writers) >= 2, writers
        # Not on the public port: the webhook's server has no /metrics.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/metrics", timeout=10)  # noqa: S310 - a local URL
        assert refused.value.code == 404
        refused.value.close()

        # A worker dies: child_exit drops its live gauge; its counts stay in the totals.
        victim = sorted(writers)[0]
        assert victim in pids_with_files(directory, "gauge_livesum")
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while victim in pids_with_files(directory, "gauge_livesum"):
            assert time.monotonic() < deadline, "child_exit did not mark the worker dead"
            time.sleep(0.05)
        after = scrape(metrics_port)
        assert after[series("whatsapp_webhooks_total", status="200")] == WEBHOOKS
        assert after[series("whatsapp_dispatch_pending")] == 0
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]
