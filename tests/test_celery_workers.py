"""Real Celery workers: two ``celery worker`` processes, a real redis-server as broker and another as store.

The webhook runs here (Flask's test client) with a ``CeleryDispatcher``;
the workers import :mod:`tests.celery_app` and answer through the fake Graph
API, which counts what reaches it. What is checked: every acknowledged
message answered exactly once; each lead answered one message at a time in
timestamp order across both workers; a worker process killed mid-answer
(SIGKILL) and its message answered all the same; a done job delivered again
sending nothing; a long Graph API wait not holding a worker; the broker down
giving 503, and nothing lost once it is back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from cel_whatsapp import WhatsappConnector
from cel_whatsapp.core.dedup import message_key
from cel_whatsapp.core.jobs import job_payload
from cel_whatsapp.core.parsing import parse_webhook
from cel_whatsapp.testing import FakeGraphAPI, text_message, webhook

from .components import ROOT, free_port, require, skip_or_fail, stop, wait_for_port
from .conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN, make_app, post_webhook

pytestmark = pytest.mark.integration

EVENTS = "test:events"
NOW = int(time.time())


class Redis:
    """A redis-server on a port of its own, which a test may stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.executable = require("redis-server", "the Celery tests' broker and store")
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.directory / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
            [
                self.executable,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_port(self.port, 10, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@dataclass
class Cluster:
    """What the tests drive: the webhook's client and connector, the workers and their Redis."""

    client: FlaskClient
    connector: WhatsappConnector
    broker: Redis
    store: Any  # a redis.Redis client of the store
    gates: Path
    workers: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def post(self, body: dict[str, Any]) -> int:
        return int(post_webhook(self.client, body).status_code)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(item) for item in self.store.lrange(EVENTS, 0, -1)]

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, _graph_server: FakeGraphAPI
) -> Iterator[Cluster]:
    try:
        import celery  # noqa: F401
        import redis
    except ImportError:
        skip_or_fail('celery is not installed (pip install -e ".[test]")')
    from .celery_app import OPEN_ALL, build

    directory = tmp_path_factory.mktemp("celery")
    gates = directory / "gates"
    gates.mkdir()
    broker, store = Redis(directory), Redis(directory)
    broker.start()
    store.start()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "CEL_TEST_BROKER": broker.url,
        "CEL_TEST_STORE": store.url,
        "CEL_TEST_GATES": str(gates),
        "CEL_TEST_LEASE_TTL": "2",
        "WHATSAPP_TOKEN": TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_BASE_URL": _graph_server.base_url,
    }
    workers, logs = [], []
    try:
        for index in range(2):
            log_path = directory / f"worker-{index}.log"
            with log_path.open("wb") as log:
                workers.append(
                    subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
                        [
                            *(sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker"),
                            *("--pool", "prefork", "--concurrency", "2", "--loglevel", "INFO"),
                            *("--hostname", f"w{index}@%h", "--without-gossip", "--without-mingle"),
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            logs.append(log_path)
        _, connector = build(
            broker.url,
            store.url,
            token=TOKEN,
            phone_number_id=PHONE_NUMBER_ID,
            verify_token=VERIFY_TOKEN,
            app_secret=APP_SECRET,
            base_url=_graph_server.base_url,
        )
        ready = Cluster(
            make_app(connector).test_client(),
            connector,
            broker,
            redis.Redis.from_url(store.url),
            gates,
            workers,
            logs,
        )
        _wait(lambda: ready.log_text().count(" ready.") >= 2, 60, "both workers to be ready")
        yield ready
    finally:
        (gates / OPEN_ALL).touch()  # no answer stays blocked
        for worker in workers:
            stop(worker, timeout=20)
        broker.stop()
        store.stop()


def _texts(graph: FakeGraphAPI) -> Counter[str]:
    return Counter(graph.sent_texts())


def test_200_webhooks_answered_exactly_once(cluster: Cluster, graph: FakeGraphAPI) -> None:
    bodies = [
        webhook(text_message(f"m{i}", sender=f"1631600{i % 50:04d}", timestamp=NOW + i // 50))
        for i in range(200)
    ]
    for body in bodies:
        assert cluster.post(body) == 200
    for body in bodies[::10]:  # Meta delivers some again
        assert cluster.post(body) == 200
    expected = {f"echo: m{i}" for i in range(200)}
    _wait(lambda: expected <= set(graph.sent_texts()), 60, "200 answers")
    time.sleep(0.5)  # anything sent twice would have arrived by now
    texts = _texts(graph)
    assert set(texts) == expected
    assert set(texts.values()) == {1}


def test_each_lead_is_answered_in_order_one_at_a_time_across_two_workers(
    cluster: Cluster, graph: FakeGraphAPI
) -> None:
    cluster.store.delete(EVENTS)
    leads = [f"lead{i}" for i in range(4)]

    def message(lead: str, n: int) -> dict[str, Any]:
        return text_message(
            f"order {lead} {n}", sender=f"1632{leads.index(lead):07d}", timestamp=NOW + n
        )

    for lead in leads:  # the first three in one POST, latest first
        assert cluster.post(webhook(*(message(lead, n) for n in (3, 2, 1)))) == 200
    for n in (4, 5, 6):
        for lead in leads:
            assert cluster.post(webhook(message(lead, n))) == 200
    _wait(lambda: len(graph.sent_texts()) >= 24, 60, "24 answers")
    events = cluster.events()
    for lead in leads:
        mine = [e for e in events if lead in (e.get("start"), e.get("end"))]
        assert [e["n"] for e in mine] == [n for n in range(1, 7) for _ in (0, 1)], mine
        assert [("start" in e) for e in mine] == [True, False] * 6, "two answers overlapped"
        sent = [t for t in graph.sent_texts() if t.startswith(f"answer {lead} ")]
        assert sent == [f"answer {lead} {n}" for n in range(1, 7)]
    # Both workers took part.
    for path in cluster.logs:
        assert "succeeded" in path.read_text()


def test_a_worker_process_killed_mid_answer_still_answers_the_message(
    cluster: Cluster, graph: FakeGraphAPI
) -> None:
    cluster.store.delete(EVENTS)
    body = webhook(text_message("block k1", sender="16330000001"))
    assert cluster.post(body) == 200
    _wait(lambda: len(cluster.events()) == 1, 30, "the answer to start")
    assert graph.sent_texts() == ["first half of k1."]
    os.kill(cluster.events()[0]["pid"], signal.SIGKILL)
    # The job comes back (rejected on worker loss), waits for the dead run's
    # lease to expire, and runs again from the start.
    _wait(lambda: len(cluster.events()) == 2, 30, "the answer to run again")
    (cluster.gates / "k1").touch()
    _wait(lambda: "second half of k1." in graph.sent_texts(), 30, "the end of the answer")
    time.sleep(0.3)
    assert _texts(graph) == {"first half of k1.": 2, "second half of k1.": 1}
    assert cluster.events()[1]["pid"] != cluster.events()[0]["pid"]
    message = parse_webhook(body, phone_number_id=None).messages[0]
    assert cluster.store.get(f"cel_whatsapp:dedup:{message_key(PHONE_NUMBER_ID, message.id)}") == (
        b"done"
    )


def test_a_done_job_delivered_again_sends_nothing(cluster: Cluster, graph: FakeGraphAPI) -> None:
    body = webhook(text_message("just once", sender="16340000001"))
    assert cluster.post(body) == 200
    _wait(lambda: graph.sent_texts() == ["echo: just once"], 30, "the answer")
    message = parse_webhook(body, phone_number_id=None).messages[0]
    # As if a worker had died after marking it done, before acknowledging it.
    cluster.connector.dispatcher.task.apply_async(  # type: ignore[attr-defined]
        kwargs={"payload": job_payload("whatsapp", message), "member": None}
    )
    _wait(
        lambda: f"message {message.id} was answered already" in cluster.log_text(),
        30,
        "the copy to be run",
    )
    time.sleep(0.3)
    assert graph.sent_texts() == ["echo: just once"]


def test_a_long_graph_api_wait_holds_no_worker(cluster: Cluster, graph: FakeGraphAPI) -> None:
    # Four answers told to wait 3 s (131056: each pair paused, other users not)
    # would hold all four worker processes if they slept.
    graph.fail_next(status=400, code=131056, message="pair rate", times=4)
    for i in range(4):
        assert cluster.post(webhook(text_message(f"slow {i}", sender=f"1635000000{i}"))) == 200
    _wait(lambda: len(graph.sent_texts()) >= 4, 30, "the four refused sends")
    refused_at = time.monotonic()
    assert cluster.post(webhook(text_message("quick", sender="16359999999"))) == 200
    _wait(lambda: "echo: quick" in graph.sent_texts(), 30, "the quick answer")
    assert time.monotonic() - refused_at < 2.5
    assert not any(t == "echo: slow 0" for t in graph.sent_texts()[4:])
    _wait(lambda: len(graph.sent_texts()) >= 9, 30, "the deferred answers")
    assert _texts(graph) == {**{f"echo: slow {i}": 2 for i in range(4)}, "echo: quick": 1}
    assert time.monotonic() - refused_at >= 2.5


def test_broker_down_answers_503_and_loses_nothing(cluster: Cluster, graph: FakeGraphAPI) -> None:
    body = webhook(text_message("while down", sender="16360000001"))
    message = parse_webhook(body, phone_number_id=None).messages[0]
    cluster.broker.stop()
    try:
        assert cluster.post(body) == 503
        # Not claimed any more: Meta's next delivery is answered.
        key = f"cel_whatsapp:dedup:{message_key(PHONE_NUMBER_ID, message.id)}"
        assert cluster.store.exists(key) == 0
    finally:
        cluster.broker.start()
    assert cluster.post(body) == 200
    _wait(lambda: "echo: while down" in graph.sent_texts(), 60, "the workers to reconnect")
    time.sleep(0.3)
    assert graph.sent_texts() == ["echo: while down"]
