"""Scenario 8: instructions and modelled cycles per answered webhook, by valgrind (issue 13).

The CPU rows under load move by 10-30 % from run to run on a shared
2-core machine, which hides a change of a few percent. These do not move:
each row's app answers signed text webhooks called straight through WSGI
(no server, no load generator) in a Python run under
``valgrind --tool=cachegrind``, twice (100 and 400 webhooks), and the
difference divided by 300 is what one webhook costs, start-up and imports
left out. A run that builds the same bodies and answers none is subtracted,
so the figure is the app's alone. The fake Graph API runs natively in its
own process (valgrind does not follow children), so its work is not counted.

Instructions alone undercount what Python code of many small calls costs:
an interpreter spread over Flask, requests, urllib3, http.client and
marshmallow misses its instruction cache and mispredicts its branches far
more often than a tight loop, so two rows of equal instructions can differ
in time. cachegrind also simulates the caches and the branch predictor;
the modelled cycles weigh each first-level miss 12 cycles, each last-level
miss 150 and each mispredicted branch 20 (the order of a current x86 core's
penalties) over one cycle per instruction. On this machine the modelled
ratio of the echo rows came within a few hundredths of their ratio of CPU
time measured in-process (0.82 vs 0.86, public floor 0.65 vs 0.65, on
7 December), where the instruction ratio was 0.78 and 0.62. The load rows
stay the judge of issue 13's targets; these show which way a change went.

``python -m bench --only instructions`` (about 2 minutes; needs
``valgrind``: ``apt-get install -y valgrind``) or ``python -m bench.instructions``.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .constants import WEBHOOK_PATH
from .results import table

#: The rows: (kind, what it is). "none" builds the bodies and answers nothing.
ROWS = (
    ("none", "bodies built, nothing answered (subtracted from the others)"),
    ("floor", "floor: bare Flask view, JSON parsed, 'OK'"),
    ("prepared", "hand-written view, prepared request, Session.send (public floor)"),
    ("silent", "connector, assistant answers nothing (no send)"),
    ("echo", "1. echo, inline (signature on, FULL, no read receipts)"),
    ("pywa", "pywa echo, in the request (signature on)"),
)
#: Webhooks answered before counting starts (connections opened, caches filled).
WARMUP = 30
SMALL, LARGE = 100, 400


#: Modelled cycles: one per instruction, plus these per simulated event.
PENALTIES = {"I1": 12, "D1": 12, "LL": 150, "MP": 20}
#: The events cachegrind reports, by the label of its summary lines.
_EVENTS = {
    "I": "I   refs",
    "I1": "I1  misses",
    "D1": "D1  misses",
    "LL": "LL misses",
    "MP": "Mispredicts",
}


@dataclass
class InstructionRow:
    name: str
    per_webhook: float | None  # instructions, "none" subtracted
    x_floor: float | None = None
    x_pywa: float | None = None
    cycles: float | None = None  # modelled, "none" subtracted
    cycles_x_pywa: float | None = None


def modelled_cycles(events: dict[str, float]) -> float:
    """One cycle per instruction plus :data:`PENALTIES` per cache miss and mispredict."""
    return events["I"] + sum(weight * events[name] for name, weight in PENALTIES.items())


def available() -> bool:
    return shutil.which("valgrind") is not None


def measure() -> list[InstructionRow]:
    """Count every row; rows whose app cannot be built (pywa missing) are left out."""
    kinds = [kind for kind, _ in ROWS if kind != "pywa" or _has_pywa()]
    counts: dict[str, dict[str, float]] = {}
    # Two children at a time: the two counts of one row run side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for kind in kinds:
            small, large = pool.map(lambda n, k=kind: _count(k, n), (SMALL, LARGE))
            counts[kind] = {
                event: (large[event] - small[event]) / (LARGE - SMALL) for event in _EVENTS
            }
    base = counts.pop("none")
    own = {
        kind: {e: value - base[e] for e, value in events.items()} for kind, events in counts.items()
    }
    floor = own["floor"]["I"]
    pywa = own.get("pywa")
    rows = []
    for kind, name in ROWS:
        if kind not in own:
            continue
        events = own[kind]
        cycles = modelled_cycles(events)
        rows.append(
            InstructionRow(
                name,
                events["I"],
                x_floor=events["I"] / floor,
                x_pywa=events["I"] / pywa["I"] if pywa else None,
                cycles=cycles,
                cycles_x_pywa=cycles / modelled_cycles(pywa) if pywa else None,
            )
        )
    return rows


def instructions_table(rows: Iterable[InstructionRow]) -> str:
    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    body = [
        [
            row.name,
            fmt(row.per_webhook and row.per_webhook / 1000, ",.0f"),
            fmt(row.x_floor, ".2f"),
            fmt(row.x_pywa, ".2f"),
            fmt(row.cycles and row.cycles / 1000, ",.0f"),
            fmt(row.cycles_x_pywa, ".3f"),
        ]
        for row in rows
    ]
    return table(
        [
            "scenario (in-process, WSGI called directly)",
            "k instructions/webhook",
            "x floor",
            "x pywa",
            "k modelled cycles",
            "x pywa",
        ],
        body,
        {1, 2, 3, 4, 5},
    )


def _has_pywa() -> bool:
    from .apps import pywa_version

    return pywa_version() is not None


def _count(kind: str, webhooks: int) -> dict[str, int]:
    """Instructions, cache misses and mispredicts of a child answering ``webhooks`` webhooks."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=yes",
        "--branch-sim=yes",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        kind,
        str(webhooks),
    ]
    # The same hash seed for both counts of a row: dict and set layouts match.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    events = {}
    for event, label in _EVENTS.items():
        found = re.search(label + r":\s+([\d,]+)", done.stderr)
        if found is None:
            break
        events[event] = int(found.group(1).replace(",", ""))
    if done.returncode != 0 or len(events) != len(_EVENTS):
        raise RuntimeError(f"counting {kind!r} failed:\n{done.stderr[-2000:]}")
    return events


def _child(kind: str, webhooks: int) -> None:
    """Answer ``WARMUP + webhooks`` signed text webhooks with ``kind``'s app."""
    from .payloads import signed, text_body
    from .server import FakeGraphProcess

    with FakeGraphProcess() as fake:
        os.environ["BENCH_GRAPH_URL"] = fake.base_url
        app = _app(kind)
        for index in range(WARMUP + webhooks):
            # A new sender each time: the connector's pair rate is never reached.
            sender = f"1555{index:07d}"
            raw, headers = signed(text_body(index, text=f"Hello number {index}", sender=sender))
            environ = _environ(raw, headers["X-Hub-Signature-256"])
            if app is not None:
                for _ in app(environ, _start):
                    pass


def _app(kind: str) -> Callable[..., Any] | None:
    from . import apps

    builders: dict[str, Callable[[], Any]] = {
        "floor": lambda: apps.build("floor"),
        "prepared": lambda: apps.build("handwritten", transport="requests-prepared"),
        "silent": lambda: apps.build("connector", assistant="silent", dispatch="inline"),
        "echo": lambda: apps.build(
            "connector", assistant="echo", dispatch="inline", stream_mode="full"
        ),
        "pywa": lambda: apps.build("pywa"),
    }
    return None if kind == "none" else builders[kind]()


def _environ(raw: bytes, signature: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": WEBHOOK_PATH,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "HTTP_X_HUB_SIGNATURE_256": signature,
    }


def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    if not status.startswith("200"):
        raise RuntimeError(f"the app answered {status}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "WEBHOOKS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    if not available():
        sys.exit("valgrind is not installed: apt-get install -y valgrind")
    print(instructions_table(measure()))


if __name__ == "__main__":
    main()
