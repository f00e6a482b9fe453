"""Celery dispatch: answered messages/s with 1, 2 and 4 worker processes, and the webhook's ack.

Issue 14. A redis-server (broker and store) and the lean fake Graph API,
answering every send after 150 ms as the real one does (100-300 ms), each in
its own process; read receipts off, ``FULL`` stream mode, an echo assistant,
delivery rate control at 1,000 messages a second for the one business number
(Meta's upgraded tier; its default 80 would be the ceiling measured).

- **Answered messages per second.** Jobs for messages from 1,000 distinct
  senders are published first (through the webhook, in this process), then
  N ``celery worker`` processes are started and answer them. *answered/s*
  is the replies the fake received per second between the 10th and the
  90th percentile of their arrivals (worker start-up left out); *CPU
  ms/answer* is the workers' own CPU time over the same stretch (every
  process of theirs, ``/proc/<pid>/stat``) per reply. Two pools: Celery's
  default ``prefork`` (each process answers one message at a time, so a
  process answers about 1 / 150 ms) and ``--pool threads`` with
  :data:`THREADS` threads per process (the answers mostly wait on the Graph
  API, so threads overlap them).
- **Webhook ack.** gunicorn (2 sync workers) serving the connector with a
  ``CeleryDispatcher``, driven as the other load rows are (16 connections,
  no pause): p50/p99 of the acks, the webhook rate, and the gunicorn
  workers' CPU per webhook (*CPU ms/item*). Once with no worker running
  (the jobs wait in the broker: the webhook's own cost), once with 2 worker
  processes answering on the same two cores.

Run it with ``python -m bench --only celery`` (needs ``pip install -e
".[celery]"`` and redis-server). This module is also what the bench's
gunicorn (``bench.celery_rows:web_app()``) and workers (``celery -A
bench.celery_rows worker``, with ``BENCH_CELERY_WORKER=1``) import.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from cel_whatsapp.core.signature import sign
from cel_whatsapp.testing import encode

from . import payloads
from .constants import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN, WEBHOOK_PATH
from .load import run_load
from .results import table
from .server import ROOT, FakeGraphProcess, Gunicorn, children_of, cpu_seconds, free_port

#: What the fake Graph API waits before each answer (seconds).
GRAPH_DELAY = 0.150
#: Distinct senders the messages come from.
SENDERS = 1000
#: Worker processes of the answered rows.
WORKER_COUNTS = (1, 2, 4)
#: Threads per worker process with ``--pool threads``.
THREADS = 32
#: Most jobs published for one row (the fastest rows answer them in about 10 s).
MAX_JOBS = 4000
#: Messages a second the business number may send (delivery rate control).
BUSY_NUMBER_THROUGHPUT = 1000.0


# -- what gunicorn and the workers import --------------------------------------------------


def _echo(message: Any) -> str | None:
    text: str | None = message.text
    return text


def _build(redis_url: str, graph_url: str) -> tuple[Any, Any]:
    from celery import Celery

    from cel_whatsapp import RateControl, RedisStore, WhatsappConnector
    from cel_whatsapp.celery import CeleryDispatcher

    celery_app = Celery("bench", broker=redis_url)
    celery_app.conf.update(
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    connector = WhatsappConnector(
        TOKEN,
        PHONE_NUMBER_ID,
        VERIFY_TOKEN,
        WEBHOOK_PATH,
        "full",
        assistant=_echo,
        app_secret=APP_SECRET,
        base_url=graph_url,
        read_receipts=False,
        store=RedisStore.from_url(redis_url),
        dispatch=CeleryDispatcher(celery_app),
        # One business number sends every reply here: at Meta's default 80
        # messages a second, rate control would be what is measured. 1,000 a
        # second is the tier Meta upgrades busy numbers to.
        delivery_rate_control=RateControl(messages_per_second=BUSY_NUMBER_THROUGHPUT),
    )
    return celery_app, connector


def web_app(redis_url: str | None = None, graph_url: str | None = None) -> Flask:
    """The webhook with a ``CeleryDispatcher`` (gunicorn ``bench.celery_rows:web_app()``)."""
    _, connector = _build(
        redis_url or os.environ["BENCH_REDIS_URL"], graph_url or os.environ["BENCH_GRAPH_URL"]
    )
    app = Flask("bench_celery")
    connector.init_app(app)
    return app


if os.environ.get("BENCH_CELERY_WORKER") == "1":
    celery_app, connector = _build(os.environ["BENCH_REDIS_URL"], os.environ["BENCH_GRAPH_URL"])


# -- the runner ------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table."""

    name: str
    answered: float | None = None
    jobs: int = 0
    cpu_ms: float | None = None
    rate: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    note: str = ""


def _redis_executable() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    return path


@contextmanager
def _redis(workdir: Path) -> Iterator[tuple[str, Any]]:
    import redis

    port = free_port()
    process = subprocess.Popen(
        [
            *(_redis_executable(), "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, client
    finally:
        client.close()
        process.terminate()
        process.wait(10)


class Workers:
    """``count`` ``celery worker`` processes answering with ``pool``."""

    def __init__(self, count: int, pool: str, env: dict[str, str]) -> None:
        concurrency = str(THREADS) if pool == "threads" else "1"
        self.log = tempfile.TemporaryFile(prefix="cel-bench-celery-")  # noqa: SIM115 - closed in close()
        self.processes = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "bench.celery_rows", "worker"),
                    *("--pool", pool, "--concurrency", concurrency, "--loglevel", "WARNING"),
                    *("--hostname", f"bench{index}@%h", "--without-gossip", "--without-mingle"),
                ],
                cwd=ROOT,
                env={**os.environ, **env, "BENCH_CELERY_WORKER": "1"},
                stdout=self.log,
                stderr=self.log,
            )
            for index in range(count)
        ]

    def cpu(self) -> float:
        """CPU seconds of every worker process and its pool's children."""
        total = 0.0
        for process in self.processes:
            for pid in (process.pid, *children_of(process.pid)):
                try:
                    total += cpu_seconds(pid)
                except OSError:
                    continue
        return total

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _publish(redis_url: str, graph_url: str, count: int, first: int) -> None:
    """Post ``count`` signed text webhooks through the Celery webhook, in this process."""
    client = web_app(redis_url, graph_url).test_client()
    for index in range(first, first + count):
        body = payloads.text_body(
            index, text=f"Hello number {index}", sender=f"1555{index % SENDERS:07d}"
        )
        raw = encode(body)
        response = client.post(
            WEBHOOK_PATH,
            data=raw,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(raw, APP_SECRET),
            },
        )
        if response.status_code != 200:
            raise RuntimeError(f"the webhook answered {response.status_code}")


def _answered_row(
    count: int, pool: str, jobs: int, env: dict[str, str], fake: FakeGraphProcess, first: int
) -> Row:
    _publish(env["BENCH_REDIS_URL"], env["BENCH_GRAPH_URL"], jobs, first)
    fake.reset()
    low, high = int(jobs * 0.1), int(jobs * 0.9)
    cpu_at: dict[str, float] = {}
    slots = "1 at a time" if pool == "prefork" else f"{THREADS} threads"
    name = f"{count} worker process{'es' if count > 1 else ''}, {pool} ({slots} each)"
    with Workers(count, pool, env) as workers:
        deadline = time.monotonic() + 30 + jobs * GRAPH_DELAY
        while time.monotonic() < deadline:
            received = int(fake.stats()["messages"])
            if received >= low and "low" not in cpu_at:
                cpu_at["low"] = workers.cpu()
            if received >= high and "high" not in cpu_at:
                cpu_at["high"] = workers.cpu()
            if received >= jobs:
                break
            time.sleep(0.05)
    arrivals = sorted(fake.stats()["arrivals"])
    row = Row(name, jobs=jobs)
    if len(arrivals) < jobs:
        row.note = f"only {len(arrivals)} of {jobs} answered in time"
    if len(arrivals) > high > low and arrivals[high] > arrivals[low]:
        row.answered = (high - low) / ((arrivals[high] - arrivals[low]) / 1e9)
        if "high" in cpu_at and "low" in cpu_at:
            row.cpu_ms = (cpu_at["high"] - cpu_at["low"]) / (high - low) * 1000
    return row


def _ack_rows(env: dict[str, str], workdir: Path, duration: float, use_wrk: bool) -> list[Row]:
    bodies = workdir / "celery-bodies.txt"
    with bodies.open("w", encoding="ascii") as out:
        for index in range(50_000_000, 50_000_000 + 60_000):
            body = payloads.text_body(
                index, text=f"Hello number {index}", sender=f"1555{index % SENDERS:07d}"
            )
            raw = encode(body)
            out.write(f"{sign(raw, APP_SECRET)}\t{raw.decode('ascii')}\n")
    rows = []
    with Gunicorn("bench.celery_rows:web_app()", env=env) as web:
        run_load(web.url + WEBHOOK_PATH, bodies, duration=1.0, use_wrk=use_wrk)  # warm-up
        for answering in (0, 2):
            with contextlib.ExitStack() as stack:
                if answering:
                    stack.enter_context(Workers(answering, "threads", env))
                    time.sleep(3)  # started, and busy with the jobs already published
                before = web.sample()
                load = run_load(web.url + WEBHOOK_PATH, bodies, duration=duration, use_wrk=use_wrk)
                after = web.sample()
            where = (
                f"{answering} worker processes answering on the same cores"
                if answering
                else "no worker running (jobs wait in the broker)"
            )
            rows.append(
                Row(
                    f"webhook ack, Celery dispatch, 2 sync gunicorn workers; {where}",
                    rate=load.rate,
                    p50_ms=load.p50_ms,
                    p99_ms=load.p99_ms,
                    cpu_ms=(after.cpu - before.cpu) / load.requests * 1000
                    if load.requests
                    else None,
                    errors=load.errors,
                    note=f"{load.requests} webhooks in {load.seconds:.1f} s by {load.tool}",
                )
            )
    return rows


def measure(workdir: Path, *, duration: float, use_wrk: bool, smoke: bool) -> list[Row]:
    """Every row: the answered rates first, then the webhook's ack under load."""
    rows: list[Row] = []
    with _redis(workdir) as (redis_url, client), FakeGraphProcess(delay=GRAPH_DELAY) as fake:
        env = {"BENCH_REDIS_URL": redis_url, "BENCH_GRAPH_URL": fake.base_url}
        counts = WORKER_COUNTS[:1] if smoke else WORKER_COUNTS
        first = 1_000_000
        for pool in ("prefork", "threads"):
            for count in counts:
                per_second = count * (THREADS if pool == "threads" else 1) / GRAPH_DELAY
                jobs = max(40, min(MAX_JOBS, int(per_second * max(duration, 1.0))))
                rows.append(_answered_row(count, pool, jobs, env, fake, first))
                first += jobs
                client.flushdb()
        fake.reset()
        rows.extend(_ack_rows(env, workdir, duration, use_wrk))
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def celery_table(rows: list[Row]) -> str:
    headers = ["scenario", "jobs", "answered/s", "CPU ms/item", "webhooks/s", "ack p50 ms"]
    headers += ["ack p99 ms", "errors"]
    cells = [
        [
            row.name,
            str(row.jobs) if row.jobs else "-",
            _fmt(row.answered, ".1f"),
            _fmt(row.cpu_ms, ".2f"),
            _fmt(row.rate, ".0f"),
            _fmt(row.p50_ms, ".1f"),
            _fmt(row.p99_ms, ".1f"),
            str(row.errors),
        ]
        for row in rows
    ]
    notes = [f"  {row.name}: {row.note}" for row in rows if row.note]
    text = table(headers, cells, right={1, 2, 3, 4, 5, 6, 7})
    return text + ("\n\nNotes:\n" + "\n".join(notes) if notes else "")
