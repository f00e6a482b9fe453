"""Under real gunicorn (4 workers) with a shared real Redis and the fake Graph API.

All traffic stays on 127.0.0.1 and every loop is bounded in count and time.
Run with ``pytest tests/test_load.py -s`` to see the figures.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cel_whatsapp.core.signature import sign
from cel_whatsapp.testing import FakeGraphAPI, encode, text_webhook

from .components import gunicorn
from .conftest import APP_SECRET, TOKEN
from .gunicorn_app import CALLS_KEY

pytestmark = pytest.mark.integration

APP = "tests.gunicorn_app:create_app()"
WORKERS = 4
MESSAGES = 2000
LEADS = 200
CONCURRENCY = 32


@pytest.fixture
def fake_graph() -> Iterator[FakeGraphAPI]:
    with FakeGraphAPI(token=TOKEN) as graph:
        yield graph


@pytest.fixture
def served(
    fake_graph: FakeGraphAPI, redis_url: str, redis_client: Any, tmp_path: Path
) -> Iterator[str]:
    """gunicorn with 4 workers sharing the test Redis; yields its base URL."""
    env = {"CEL_TEST_GRAPH_URL": fake_graph.base_url, "CEL_TEST_REDIS_URL": redis_url}
    with gunicorn(APP, workers=WORKERS, env=env, log_path=tmp_path / "gunicorn.log") as (url, _):
        yield url
    log = (tmp_path / "gunicorn.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]


def post(base_url: str, raw: bytes, timeout: float = 30) -> tuple[int, float]:
    """POST one signed webhook; return (status, seconds)."""
    host, port = base_url.removeprefix("http://").split(":")
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request(
            "POST",
            "/whatsapp",
            body=raw,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(raw, APP_SECRET),
            },
        )
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def replies_by_message(graph: FakeGraphAPI, prefix: str) -> Counter[str]:
    """Replies per message id, for the ids starting with ``prefix``."""
    ids = (text.removeprefix("re ") for text in graph.sent_texts())
    return Counter(wamid for wamid in ids if wamid.startswith(prefix))


def answer_one_more_per_lead(served: str, graph: FakeGraphAPI, leads: list[str]) -> None:
    """Post one more message to each lead and wait until all of them are answered.

    A lead's messages are answered one at a time in (timestamp, arrival)
    order across the workers (the queues in Redis), so once this last one is
    answered, any copy accepted before it was answered too: nothing can come
    late any more, without sleeping to see.
    """
    bodies = [encode(text_webhook("last", sender=lead, id=f"wamid.LAST{lead}")) for lead in leads]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        statuses = [status for status, _ in pool.map(lambda raw: post(served, raw), bodies)]
    assert statuses == [200] * len(bodies)
    expected = {f"re wamid.LAST{lead}" for lead in leads}
    assert graph.wait_for(lambda g: expected <= set(g.sent_texts()), timeout=60)


def test_2000_webhooks_each_redelivered_answered_exactly_once(
    served: str, fake_graph: FakeGraphAPI, redis_client: Any
) -> None:
    rng = random.Random(5)
    bodies = []
    leads = [f"1555{index:07d}" for index in range(LEADS)]
    for index in range(MESSAGES):
        lead = leads[index % LEADS]
        body = text_webhook(f"load {index}", sender=lead, id=f"wamid.LOAD{index:06d}")
        bodies.append(encode(body))
    deliveries = bodies + bodies  # every webhook delivered twice...
    rng.shuffle(deliveries)  # ...in any order, copies sometimes at the same moment

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(lambda raw: post(served, raw), deliveries))
    posting = time.monotonic() - started

    statuses = Counter(status for status, _ in results)
    assert statuses == {200: 2 * MESSAGES}, statuses
    answered = fake_graph.wait_for(lambda g: len(g.sent()) >= MESSAGES, timeout=90)
    all_answered = time.monotonic() - started
    assert answered, f"only {len(replies_by_message(fake_graph, 'wamid.LOAD'))} of {MESSAGES}"
    answer_one_more_per_lead(served, fake_graph, leads)  # would a copy be answered late?
    replies = replies_by_message(fake_graph, "wamid.LOAD")
    assert len(replies) == MESSAGES
    assert set(replies.values()) == {1}, [m for m, n in replies.items() if n > 1][:10]
    calls = {k.decode(): int(v) for k, v in redis_client.hgetall(CALLS_KEY).items()}
    calls = {wamid: count for wamid, count in calls.items() if wamid.startswith("wamid.LOAD")}
    assert len(calls) == MESSAGES and set(calls.values()) == {1}

    latencies = sorted(seconds for _, seconds in results)
    print(  # noqa: T201 - the figures the issue asks for, shown with -s
        f"\nload: {2 * MESSAGES} POSTs ({MESSAGES} distinct, each delivered twice), "
        f"{LEADS} leads, {WORKERS} gunicorn workers, concurrency {CONCURRENCY}\n"
        f"  posting took {posting:.1f}s ({2 * MESSAGES / posting:.0f} webhooks/s); "
        f"webhook latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms\n"
        f"  all {MESSAGES} answered {all_answered:.1f}s after the first POST; "
        f"replies per message: {sorted(Counter(replies.values()).items())}; "
        f"statuses: {dict(statuses)}"
    )


def test_same_webhook_five_times_at_once_one_call_one_reply(
    served: str, fake_graph: FakeGraphAPI, redis_client: Any
) -> None:
    rounds = 20
    for index in range(rounds):
        raw = encode(text_webhook("five copies", id=f"wamid.FIVE{index:03d}", sender="15550009999"))
        barrier = threading.Barrier(5)

        def deliver(raw: bytes = raw, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            return post(served, raw)[0]

        with ThreadPoolExecutor(5) as pool:
            assert list(pool.map(lambda _: deliver(), range(5))) == [200] * 5
    assert fake_graph.wait_for(lambda g: len(g.sent()) >= rounds, timeout=30)
    answer_one_more_per_lead(served, fake_graph, ["15550009999"])  # would a copy come late?
    replies = replies_by_message(fake_graph, "wamid.FIVE")
    assert replies == Counter({f"wamid.FIVE{index:03d}": 1 for index in range(rounds)})
    calls = {k.decode(): int(v) for k, v in redis_client.hgetall(CALLS_KEY).items()}
    assert calls == {f"wamid.FIVE{index:03d}": 1 for index in range(rounds)} | {
        "wamid.LAST15550009999": 1
    }


def test_one_lead_stays_in_order_across_workers(served: str, fake_graph: FakeGraphAPI) -> None:
    # Earlier messages take longer: a worker free to start the next message of
    # the lead while another still answers would overtake it.
    durations = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    for index, seconds in enumerate(durations):
        body = text_webhook(
            f"sleep={seconds}",
            id=f"wamid.ORDER{index}",
            sender="15550001234",
            timestamp=1_700_000_000 + index,
        )
        assert post(served, encode(body))[0] == 200
    assert fake_graph.wait_for(lambda g: len(g.sent()) >= len(durations), timeout=30)
    assert fake_graph.sent_texts() == [f"re wamid.ORDER{i}" for i in range(len(durations))]


def test_chunked_body_over_the_cap_is_413_without_reading_it_all(served: str) -> None:
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /whatsapp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 65536
        sent = 0
        try:
            for _ in range(200):  # up to 13 MB, far past the 3.5 MB cap
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all: expected
        sock.settimeout(10)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
    if body:
        assert json.loads(body.split(b"}")[0] + b"}")["error"].startswith("body larger than")
