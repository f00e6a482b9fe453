"""Rate control shared through a real redis-server by two real worker processes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from cel_whatsapp.testing import FakeGraphAPI

from .components import ROOT

pytestmark = pytest.mark.integration

RATE = 20


def start_sender(
    redis_url: str, graph: FakeGraphAPI, count: int, first: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
        [
            sys.executable,
            "-m",
            "tests.rate_sender",
            redis_url,
            graph.base_url,
            str(count),
            str(first),
            str(RATE),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out.strip()


def most_in_window(times: list[float], seconds: float = 1.0) -> int:
    """The largest number of arrivals inside any window of ``seconds``."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_two_workers_share_one_numbers_budget(
    redis_client: Any, redis_url: str, graph: FakeGraphAPI
) -> None:
    workers = [start_sender(redis_url, graph, 200, first) for first in (0, 1000)]
    outputs = [finish(worker, timeout=90) for worker in workers]

    assert outputs == ["sent=200 failed=0"] * 2
    arrivals = [request.at for request in graph.sent()]
    assert len(arrivals) == 400
    # A token bucket lets through at most one bucket (RATE) plus RATE a second
    # in any window: one worker pacing on its own would double that.
    assert most_in_window(arrivals, 1.0) <= RATE + RATE
    assert most_in_window(arrivals, 5.0) <= RATE + 5 * RATE
    # And it was not slower than it had to be: 380 messages at 20/s is 19 s.
    start = min(arrivals)
    assert max(arrivals) - start < (400 - RATE) / RATE + 3


def test_a_throughput_error_on_one_worker_pauses_the_other(
    redis_client: Any, redis_url: str, graph: FakeGraphAPI
) -> None:
    graph.fail_next(status=429, code=130429, message="Rate limit hit", retry_after=2)
    workers = [start_sender(redis_url, graph, 30, first) for first in (0, 1000)]
    outputs = [finish(worker, timeout=60) for worker in workers]
    assert outputs == ["sent=30 failed=0"] * 2

    requests = graph.requests
    first_failure = next(i for i, r in enumerate(requests) if r.is_message)
    refused_at = requests[first_failure].at
    # Requests already on their way when the 130429 came back may land just after it;
    # after that, nothing from either worker for the 2 s Meta asked for.
    later = [r.at - refused_at for r in requests[first_failure + 1 :]]
    early = [t for t in later if 0.2 < t < 1.9]
    assert early == []
    senders = {r.json["to"][-4:-3] for r in requests if r.at - refused_at >= 1.9}
    assert senders == {"0", "1"}  # both workers went on after the pause
    assert len([r for r in requests if r.is_message]) == 61  # 60 messages and the refused try
