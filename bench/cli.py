"""The command line: run every scenario, print the tables, judge the targets.

``python -m bench`` takes about four minutes on two cores and exits with
status 1 when a target fails. ``python -m bench --smoke`` runs a few seconds
of each kind of measurement with no targets, so CI notices when the bench
itself breaks.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from . import instructions, metrics_cost, parse_cost, rate_control, scenarios, throughput
from .load import wrk_available
from .results import load_table, parse_table, stream_table
from .server import FakeGraphProcess, byte_compile


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds per measurement, no targets"
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds of measured load per row, split in rounds (default 9, smoke 1)",
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="concurrent connections (default 16)"
    )
    parser.add_argument(
        "--python-load", action="store_true", help="use the Python load generator, not wrk"
    )
    parser.add_argument(
        "--only",
        choices=(
            "load",
            "stream",
            "parse",
            "throughput",
            "rates",
            "metrics",
            "celery",
            "instructions",
        ),
        action="append",
        help="run only these parts (repeatable)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    parts = set(args.only or ("load", "stream", "parse", "throughput", "rates", "metrics"))
    duration = args.duration or (1.0 if args.smoke else 9.0)
    rounds = 1 if args.smoke else 3
    use_wrk = False if args.python_load else wrk_available()
    started = time.monotonic()
    print(_header(args.smoke, duration, rounds, args.connections, use_wrk), flush=True)
    pywa_note = scenarios.pywa_line() if "load" in parts else None
    if pywa_note:
        print(f"\n{pywa_note}", flush=True)

    failed = False
    byte_compile("cel_whatsapp", "bench")
    with tempfile.TemporaryDirectory(prefix="cel-bench-") as workdir:
        settings = scenarios.Settings(
            duration=duration,
            warmup=1.0,
            rounds=rounds,
            connections=args.connections,
            smoke=args.smoke,
            use_wrk=use_wrk,
            workdir=Path(workdir),
        )
        # Parse costs first, before any child process of the bench competes.
        parse = parse_cost.measure(smoke=args.smoke) if "parse" in parts else []
        with FakeGraphProcess() as fake:
            if "load" in parts:
                rows = scenarios.load_rows(fake, settings)
                print("\nWebhooks under load\n")
                print(load_table(rows), flush=True)
                failed |= any(t.passed is False for r in rows for t in r.targets)
            if "stream" in parts:
                stream = scenarios.stream_rows(fake, settings)
                print("\n3. Time to first message (assistant streams 3 sentences over 1.5 s)\n")
                print(stream_table(stream), flush=True)
                failed |= any(t.passed is False for r in stream for t in r.targets)
            if "metrics" in parts:
                metrics = metrics_cost.measure(fake.base_url, smoke=args.smoke)
                print("\n7. Prometheus metrics, CPU per answered message off and on, in-process\n")
                print(metrics_cost.metrics_table(metrics), flush=True)
                failed |= any(t.passed is False for r in metrics for t in r.targets)
        if parse:
            print("\n4. Parse cost in-process (best of repeats, all payloads timed in turns)\n")
            print(parse_table(parse), flush=True)
            failed |= any(t.passed is False for r in parse for t in r.targets)
        if "throughput" in parts:
            rows = throughput.measure(
                Path(workdir), duration=duration, rounds=rounds, use_wrk=use_wrk, smoke=args.smoke
            )
            print("\n5. Background dispatch: answered messages/s, and CPU against inline\n")
            print(throughput.throughput_table(rows), flush=True)
            failed |= any(t.passed is False for r in rows for t in r.targets)

        if "rates" in parts:
            rate_rows = rate_control.measure(smoke=args.smoke)
            print("\n6. Delivery rate control: a streamed answer of 3 sentences to one user\n")
            print(rate_control.rate_table(rate_rows), flush=True)
            failed |= any(t.passed is False for r in rate_rows for t in r.targets)

        if "celery" in parts:  # only when asked: it needs the celery extra and redis-server
            from . import celery_rows

            rows = celery_rows.measure(
                Path(workdir), duration=duration, use_wrk=use_wrk, smoke=args.smoke
            )
            print("\nCelery dispatch: Graph API answering after 150 ms, 1,000 senders\n")
            print(celery_rows.celery_table(rows), flush=True)

        if "instructions" in parts:  # only when asked: it needs valgrind, about 2 minutes
            if instructions.available():
                print("\n8. Instructions per answered webhook (valgrind), in-process\n")
                print(instructions.instructions_table(instructions.measure()), flush=True)
            else:
                print("\n8. Instructions: skipped, valgrind is not installed", flush=True)

    took = time.monotonic() - started
    if pywa_note:
        print(f"\n{pywa_note}")
    print(f"\nDone in {took:.0f} s." + (" Some targets FAILED." if failed else ""))
    if failed and not args.smoke:
        sys.exit(1)


def _header(smoke: bool, duration: float, rounds: int, connections: int, use_wrk: bool) -> str:
    tool = "wrk" if use_wrk else "the Python load generator (wrk not found)"
    mode = "SMOKE run: no targets judged. " if smoke else ""
    cpus = os.cpu_count()
    return (
        f"{mode}cel_whatsapp bench: Python {platform.python_version()}, {cpus} CPU(s), "
        f"load by {tool}, {connections} connections, {duration:g} s per row in {rounds} "
        "round(s) taken in turns with the other rows.\n"
        "CPU us/webhook: the gunicorn workers' own CPU time (/proc/<pid>/stat) divided "
        "by the webhooks answered (median of the rounds); x floor compares it with the "
        "bare Flask view on the same kind of server; p99 is the worst round's. Our code "
        "is byte-compiled first, as pip does when it installs a wheel."
    )
