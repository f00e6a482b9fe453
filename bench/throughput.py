"""Background dispatch against a slow Graph API, and what handing messages to it costs.

Issue 14, item 6. Two measurements, each with real gunicorns (2 sync workers)
and the lean fake Graph API in its own process:

- **Answered messages per second.** The fake answers every send after
  150 ms, as the real Graph API does (100-300 ms). Webhooks from 1,000
  distinct senders (one text message each, all ids distinct) are posted at a
  set rate (wrk, each connection pausing before each request). *answered/s*
  is the replies the fake received per second over the load's steady part
  (its first seconds left out); *ack p50/p99* are the webhook's latencies seen
  by the load generator at that rate. A second run offers more than the pool
  can answer, to show its ceiling; past ``max_pending`` per worker the webhook
  answers 503 (counted as errors), as documented.
- **CPU per answered message**, background against inline dispatch, with an
  instant Graph API: the workers' own CPU time (``/proc/<pid>/stat``) from
  just before the load until the last reply arrived, divided by the replies.
  The two servers are measured in turns, round after round, at the same
  paced rate (each message then costs a hand-over to a sleeping thread, as
  in production, where webhooks arrive spaced out); the ratio is the median
  of the rounds' ratios.

Run it with ``python -m bench --only throughput``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from cel_whatsapp.core.signature import sign
from cel_whatsapp.testing import encode

from . import payloads
from .constants import APP_SECRET, WEBHOOK_PATH
from .load import LoadResult, run_load
from .results import Target, table
from .server import FakeGraphProcess, Gunicorn

#: What the fake Graph API waits before each answer (seconds).
GRAPH_DELAY = 0.150
#: Distinct senders the webhooks come from.
SENDERS = 1000
#: Target: replies per second with the slow Graph API...
ANSWERED_PER_S = 400.0
#: ... while the webhook's p99 stays at or below this, at that rate.
ACK_P99_MS = 25.0
#: Target: background dispatch's CPU per answered message, as a multiple of inline's.
CPU_RATIO = 1.15
#: Webhooks per second offered in the paced runs: a little over the target.
OFFERED_PER_S = 440.0
#: ... and in the run that shows the ceiling.
OVERLOAD_PER_S = 1000.0
#: Paced runs: connections, each pausing before every request.
PACED_CONNECTIONS = 20
#: Paced runs: the most time per request (ms, beyond the pause) believed.
MAX_OVERHEAD_MS = 8.0
#: Leading seconds of a paced run left out of the answered rate (threads starting).
STEADY_AFTER = 2.0


@dataclass
class Row:
    """One line of the table."""

    name: str
    offered: float | None = None
    answered: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us: float | None = None
    errors: int = 0
    threads: int | None = None
    rss_mib: float | None = None
    targets: list[Target] = field(default_factory=list)
    note: str = ""


#: The business number's messages per second for the delivery rate control:
#: Meta's upgraded tier. At its default 80 the pacer, not the pool, would be
#: measured (one number sends everything here).
NUMBER_THROUGHPUT = 1000.0


def _app(dispatch: str) -> str:
    options = f"assistant='echo', throughput={NUMBER_THROUGHPUT!r}"
    if dispatch == "inline":
        return f"bench.apps:build('connector', {options}, dispatch='inline')"
    return f"bench.apps:build('connector', {options}, dispatch='background', defaults=True)"


def write_bodies(path: Path, count: int, *, first: int) -> None:
    """``count`` distinct signed text webhooks from :data:`SENDERS` senders, in turn."""
    with path.open("w", encoding="ascii") as out:
        for index in range(first, first + count):
            sender = f"1555{index % SENDERS:07d}"
            body = payloads.text_body(index, text=f"Hello number {index}", sender=sender)
            raw = encode(body)
            out.write(f"{sign(raw, APP_SECRET)}\t{raw.decode('ascii')}\n")


class Runner:
    """Starts what the measurements need and paces the load."""

    def __init__(self, workdir: Path, *, duration: float, rounds: int, use_wrk: bool) -> None:
        self.workdir = workdir
        self.duration = duration
        self.rounds = rounds
        self.use_wrk = use_wrk
        self._files = 0
        self._overhead: dict[str, float] = {}  # ms per request beyond the pause, by server

    def bodies(self, count: int) -> Path:
        """A new load file: ids never used before in this run."""
        self._files += 1
        path = self.workdir / f"throughput-{self._files}.txt"
        write_bodies(path, count + 200, first=(200 + self._files) * 1_000_000)
        return path

    def paced(self, gunicorn: Gunicorn, rate: float, seconds: float) -> LoadResult:
        """Post at about ``rate`` a second for ``seconds``.

        Each connection waits, then posts: C / (pause + time per request) a
        second. The time per request (connecting, the answer) is learnt from
        the previous run on the same server; the warm-up gives the first.
        """
        overhead = self._overhead.get(gunicorn.url, 2.0)
        pause = max(1.0, PACED_CONNECTIONS * 1000 / rate - overhead)
        load = run_load(
            gunicorn.url + WEBHOOK_PATH,
            self.bodies(int(rate * seconds * 1.2) + 100),
            duration=seconds,
            connections=PACED_CONNECTIONS,
            use_wrk=self.use_wrk,
            pause_ms=pause,
        )
        if load.rate > 0 and seconds >= 2:
            cycle = PACED_CONNECTIONS * 1000 / load.rate
            self._overhead[gunicorn.url] = min(MAX_OVERHEAD_MS, max(0.0, cycle - round(pause)))
        return load

    def warm_up(self, gunicorn: Gunicorn) -> None:
        """Imports and connections first, then a run that learns the time per request."""
        self.paced(gunicorn, OFFERED_PER_S, 1.0)
        self.paced(gunicorn, OFFERED_PER_S, 2.0)


def _threads(gunicorn: Gunicorn) -> int:
    counts = []
    for pid in gunicorn.worker_pids():
        try:
            counts.append(len(list(Path(f"/proc/{pid}/task").iterdir())))
        except OSError:
            continue
    return max(counts, default=0)


def _wait_for_quiet(fake: FakeGraphProcess, settle: float, timeout: float) -> int:
    """Wait until no reply came for ``settle`` seconds; return the replies counted."""
    deadline = time.monotonic() + timeout
    previous = -1
    while True:
        count = int(fake.stats()["messages"])
        if count == previous or time.monotonic() > deadline:
            return count
        previous = count
        time.sleep(settle)


def answered_rows(runner: Runner, smoke: bool) -> list[Row]:
    """Answered messages per second with the slow Graph API, paced and overloaded."""
    rows = []
    with (
        FakeGraphProcess(delay=GRAPH_DELAY) as fake,
        Gunicorn(_app("background"), env={"BENCH_GRAPH_URL": fake.base_url}) as gunicorn,
    ):
        runner.warm_up(gunicorn)
        _wait_for_quiet(fake, 0.5, 30)
        runs = [("paced", OFFERED_PER_S)]
        if not smoke:
            runs.append(("overloaded", OVERLOAD_PER_S))
        for kind, rate in runs:
            _wait_for_quiet(fake, 0.5, 60)
            fake.reset()
            started = time.monotonic_ns()
            load = runner.paced(gunicorn, rate, runner.duration)
            ended = started + int(load.seconds * 1e9)
            steady_from = started + int(min(STEADY_AFTER, load.seconds / 2) * 1e9)
            arrivals = fake.stats()["arrivals"]
            steady = [t for t in arrivals if steady_from <= t <= ended]
            seconds = (ended - steady_from) / 1e9
            row = Row(
                name=(
                    f"background, Graph API {GRAPH_DELAY * 1000:.0f} ms, {SENDERS:,} senders"
                    + (", overloaded" if kind == "overloaded" else "")
                ),
                offered=load.rate,
                answered=len(steady) / seconds if seconds > 0 else None,
                p50_ms=load.p50_ms,
                p99_ms=load.p99_ms,
                errors=load.errors,
                threads=_threads(gunicorn),
            )
            if load.errors:
                row.note = f"{load.errors} webhooks answered 503 (queue full: max_pending)"
            if kind == "paced":
                judged = not smoke and row.answered is not None
                row.targets += [
                    Target(
                        f"answered/s >= {ANSWERED_PER_S:.0f}",
                        row.answered >= ANSWERED_PER_S if judged and row.answered else None,
                    ),
                    Target(
                        f"ack p99 <= {ACK_P99_MS:.0f} ms",
                        load.p99_ms <= ACK_P99_MS if judged else None,
                    ),
                ]
                if judged and load.rate < ANSWERED_PER_S:
                    row.targets.append(Target(f"offered >= {ANSWERED_PER_S:.0f}/s", False))
            else:
                ceiling = (
                    "the ceiling: more offered than answered"
                    if row.answered is not None and row.answered < 0.95 * load.rate
                    else "answered all it was offered: the ceiling is higher"
                )
                row.note = "; ".join(n for n in (ceiling, row.note) if n)
            rows.append(row)
        rss = gunicorn.peak_rss_kib() / 1024
        for row in rows:
            row.rss_mib = rss
    rows.append(_floor_row(runner))
    return rows


def _floor_row(runner: Runner) -> Row:
    """A bare Flask view at the same rate: the ack latency the machine itself allows."""
    with Gunicorn("bench.apps:build('floor')", env={}) as gunicorn:
        runner.warm_up(gunicorn)
        load = runner.paced(gunicorn, OFFERED_PER_S, runner.duration / 2)
        return Row(
            name="reference: bare Flask view, JSON parsed, 'OK'",
            offered=load.rate,
            p50_ms=load.p50_ms,
            p99_ms=load.p99_ms,
            errors=load.errors,
            threads=_threads(gunicorn),
            rss_mib=gunicorn.peak_rss_kib() / 1024,
            note="the ack p99 of the machine itself at this rate, for the rows above",
        )


@dataclass
class _Server:
    dispatch: str
    gunicorn: Gunicorn
    rounds: list[tuple[float, LoadResult]] = field(default_factory=list)


def cpu_rows(runner: Runner, smoke: bool) -> list[Row]:
    """CPU per answered message with an instant Graph API, inline against background."""
    servers: list[_Server] = []
    with FakeGraphProcess() as fake:
        env = {"BENCH_GRAPH_URL": fake.base_url}
        try:
            for dispatch in ("inline", "background"):
                gunicorn = Gunicorn(_app(dispatch), env=env)
                servers.append(_Server(dispatch, gunicorn))
                runner.warm_up(gunicorn)
            # Twice the rounds, half as long: each round's ratio compares two
            # runs a few seconds apart, which the rest of the machine disturbs less.
            rounds = 2 * runner.rounds
            seconds = runner.duration / rounds
            for _ in range(rounds):
                for server in servers:
                    _wait_for_quiet(fake, 0.3, 30)
                    fake.reset()
                    before = server.gunicorn.sample()
                    load = runner.paced(server.gunicorn, OFFERED_PER_S, seconds)
                    replies = _wait_for_quiet(fake, 0.3, 30)
                    after = server.gunicorn.sample()
                    cpu_us = (after.cpu - before.cpu) / replies * 1e6 if replies else 0.0
                    server.rounds.append((cpu_us, load))
            return [_cpu_row(server, servers[0]) for server in servers]
        finally:
            for server in servers:
                server.gunicorn.close()


def _cpu_row(server: _Server, inline: _Server) -> Row:
    cpu = statistics.median(cpu for cpu, _ in server.rounds)
    loads = [load for _, load in server.rounds]
    row = Row(
        name=f"echo, {server.dispatch} dispatch, instant Graph API",
        offered=sum(load.requests for load in loads) / sum(load.seconds for load in loads),
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=max(load.p99_ms for load in loads),
        cpu_us=cpu,
        errors=sum(load.errors for load in loads),
        threads=_threads(server.gunicorn),
        rss_mib=server.gunicorn.peak_rss_kib() / 1024,
    )
    if server is not inline:
        ratios = [
            mine / theirs
            for (mine, _), (theirs, _) in zip(server.rounds, inline.rounds, strict=True)
        ]
        ratio = statistics.median(ratios)
        row.targets.append(
            Target(
                f"CPU/answer <= {CPU_RATIO}x inline ({ratio:.2f}x; rounds "
                + " ".join(f"{r:.2f}" for r in ratios)
                + ")",
                ratio <= CPU_RATIO if len(ratios) > 1 or ratio else None,
            )
        )
    return row


def measure(
    workdir: Path, *, duration: float, rounds: int, use_wrk: bool, smoke: bool
) -> list[Row]:
    """Both measurements; targets judged unless ``smoke``."""
    runner = Runner(workdir, duration=duration, rounds=rounds, use_wrk=use_wrk)
    rows = answered_rows(runner, smoke)
    cpu = cpu_rows(runner, smoke)
    if smoke:
        for row in [*rows, *cpu]:
            row.targets = [Target(t.text, None) for t in row.targets]
    return rows + cpu


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def throughput_table(rows: list[Row]) -> str:
    headers = [
        "scenario (2 sync workers)",
        "offered/s",
        "answered/s",
        "ack p50 ms",
        "ack p99 ms",
        "CPU us/answer",
        "503s",
        "threads",
        "peak RSS MiB",
        "target",
        "result",
    ]
    cells = []
    for row in rows:
        cells.append(
            [
                row.name,
                _fmt(row.offered, ".0f"),
                _fmt(row.answered, ".0f"),
                _fmt(row.p50_ms, ".1f"),
                _fmt(row.p99_ms, ".1f"),
                _fmt(row.cpu_us, ".0f"),
                str(row.errors),
                "-" if row.threads is None else str(row.threads),
                _fmt(row.rss_mib, ".1f"),
                "; ".join(t.text for t in row.targets),
                " ".join(t.verdict for t in row.targets),
            ]
        )
    notes = [f"  {row.name}: {row.note}" for row in rows if row.note]
    text = table(headers, cells, right={1, 2, 3, 4, 5, 6, 7, 8})
    return text + ("\n\nNotes:\n" + "\n".join(notes) if notes else "")
