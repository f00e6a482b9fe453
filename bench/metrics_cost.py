"""Scenario 5: what Prometheus metrics cost per answered message (issue 16).

Two connectors in one process, the same but for ``metrics=``, answer signed
webhooks posted through Flask's test client: signature, parse, dedup,
inline dispatch, the assistant (an echo), a read receipt and the reply sent
to the bench's fake Graph API (its own process, so its CPU is not counted),
without delivery rate control (every reply goes to the same user).
The figure is this process's CPU time (``time.process_time``) per answered
message, the median over every message: the two connectors answer in turns,
message by message, so a busy moment of a shared machine weighs on both
alike. Each webhook holds a new message id (a copy would be skipped).

Two children run it: one in prometheus_client's default single-process
mode, one in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before the
import, as under gunicorn), where every value is written to a memory-mapped
file. OpenTelemetry's API, when installed, is there for both connectors.

``python -m bench.metrics_cost`` prints the table alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .constants import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN, WEBHOOK_PATH
from .results import Target, table

#: Metrics may cost at most this share of the CPU an answered message takes.
TARGET_OVERHEAD = 0.05

MODES = {
    "single": "metrics on, single process (prometheus_client's default)",
    "multiprocess": "metrics on, multiprocess mode (files, as under gunicorn)",
}


@dataclass
class MetricsRow:
    """Metrics off against on, for one prometheus_client mode."""

    mode: str
    messages: int = 0
    off_us: float | None = None
    on_us: float | None = None
    targets: list[Target] = field(default_factory=list)
    note: str = ""

    @property
    def overhead(self) -> float | None:
        if self.off_us is None or self.on_us is None:
            return None
        return self.on_us / self.off_us - 1


def measure(graph_url: str, *, smoke: bool) -> list[MetricsRow]:
    """One child process per mode (prometheus_client picks its mode at import)."""
    batch, rounds = (40, 2) if smoke else (500, 8)
    rows = []
    for mode in MODES:
        row = MetricsRow(MODES[mode])
        with tempfile.TemporaryDirectory(prefix="cel-bench-metrics-") as directory:
            env = {**os.environ}
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            if mode == "multiprocess":
                env["PROMETHEUS_MULTIPROC_DIR"] = directory
            command = [sys.executable, "-m", "bench.metrics_cost", "--child", graph_url]
            command += ["--batch", str(batch), "--rounds", str(rounds)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            row.note = f"failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
            rows.append(row)
            continue
        figures = json.loads(lines[-1])
        if figures.get("skipped"):
            row.note = figures["skipped"]
            rows.append(row)
            continue
        row.messages, row.off_us, row.on_us = batch * rounds, figures["off"], figures["on"]
        overhead = row.overhead
        row.targets.append(
            Target(
                f"<= {TARGET_OVERHEAD:.0%} more CPU",
                None if smoke or overhead is None else overhead <= TARGET_OVERHEAD,
            )
        )
        rows.append(row)
    return rows


def metrics_table(rows: list[MetricsRow]) -> str:
    headers = [
        "mode",
        "messages each",
        "off: CPU us/message",
        "on: CPU us/message",
        "on/off",
        "target",
        "result",
    ]
    cells = []
    for row in rows:
        overhead = row.overhead
        cells.append(
            [
                row.mode,
                str(row.messages) if row.messages else "-",
                "-" if row.off_us is None else f"{row.off_us:.0f}",
                "-" if row.on_us is None else f"{row.on_us:.0f}",
                "-" if overhead is None else f"{1 + overhead:.3f} ({overhead:+.1%})",
                row.note or "; ".join(t.text for t in row.targets),
                " ".join(t.verdict for t in row.targets),
            ]
        )
    return table(headers, cells, right={1, 2, 3, 4})


# -- the child ------------------------------------------------------------------------


def _poster(graph_url: str, metrics: bool) -> Callable[[int], None]:
    """A function posting the webhook of message number ``n`` to a new app."""
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from cel_whatsapp import InMemoryStore, WhatsappConnector

    from .payloads import signed, text_body

    connector = WhatsappConnector(
        TOKEN,
        PHONE_NUMBER_ID,
        VERIFY_TOKEN,
        app_secret=APP_SECRET,
        base_url=graph_url,
        assistant=lambda message: f"You said: {message.text}",
        dispatch="inline",
        store=InMemoryStore(max_entries=1_000_000),
        metrics=CollectorRegistry() if metrics else False,
        # Every reply goes to one user: pacing would hold each for seconds.
        delivery_rate_control=False,
    )
    app = Flask(f"bench_metrics_{'on' if metrics else 'off'}")
    connector.init_app(app)
    client = app.test_client()
    # Each connector gets its own message ids, so neither skips the other's.
    offset = 500_000_000 if metrics else 0

    def post(number: int) -> None:
        raw, headers = signed(text_body(offset + number))
        response = client.post(WEBHOOK_PATH, data=raw, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"the webhook answered {response.status_code}")

    return post


def _child(graph_url: str, batch: int, rounds: int) -> dict[str, Any]:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return {"skipped": 'needs prometheus_client: pip install -e ".[metrics]"'}
    off, on = _poster(graph_url, False), _poster(graph_url, True)
    clock = time.process_time
    for number in range(max(20, batch // 5)):  # warm: imports, caches, connections
        off(number)
        on(number)
    first = max(20, batch // 5)
    times: dict[str, list[float]] = {"off": [], "on": []}
    # Message by message in turns, so a busy moment of the machine weighs on both.
    for number in range(first, first + batch * rounds):
        for name, post in (("off", off), ("on", on)) if number % 2 else (("on", on), ("off", off)):
            started = clock()
            post(number)
            times[name].append(clock() - started)
    return {name: statistics.median(values) * 1e6 for name, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__)
    parser.add_argument("--child", metavar="GRAPH_URL", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=300, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=9, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, no targets")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.batch, args.rounds)), flush=True)
        return
    from .server import FakeGraphProcess

    with FakeGraphProcess() as fake:
        rows = measure(fake.base_url, smoke=args.smoke)
    print(metrics_table(rows))


if __name__ == "__main__":
    main()
