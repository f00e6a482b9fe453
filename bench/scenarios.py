"""Scenarios 1-3: the connector under a real gunicorn, driven over 127.0.0.1.

The rows to be compared (the floor, the reference and the connector) each get
their own gunicorn (2 workers) against the same lean fake Graph API, all
started together. After a warm-up load (imports done, connection pools
filled), they are measured in turns, round after round, so that whatever
else the machine is doing weighs on all of them alike; each row's figures
are the median of its rounds. Worker CPU is sampled from ``/proc`` right
before and after each measured load: CPU per webhook is the workers' own
time divided by the webhooks they answered in that window.

Scenario 1's targets are ratios to pywa (https://github.com/david-lev/pywa),
the reference library, whose echo rows run in the same groups against the
same fake with the same signed payloads: our echo's CPU per webhook and its
memory over the floor's at most 0.75 times pywa's. Without pywa installed its
rows are skipped and those targets are not judged.
"""

from __future__ import annotations

import http.client
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import payloads
from .apps import connector_accepts, pywa_version
from .constants import PYWA_REQUIREMENT, WEBHOOK_PATH
from .load import LoadResult, run_load
from .results import LoadRow, StreamRow, Target
from .server import FakeGraphProcess, Gunicorn

#: Scenario 1: echo's worker CPU per webhook, as a multiple of pywa's echo row.
PYWA_CPU_RATIO = 0.75
#: Scenario 1: echo's peak worker RSS over the floor's, as a multiple of pywa's.
PYWA_RSS_RATIO = 0.75
#: Scenario 2: webhook p99 latency with a 2 s assistant, background dispatch.
SLOW_ACK_P99_MS = 25.0
#: Scenario 2: ack throughput as a fraction of the floor's.
SLOW_ACK_RATE_RATIO = 0.7
#: Scenario 3: SENTENCE mode, first message at the fake after its sentence ended.
FIRST_MESSAGE_MS = 20.0

GTHREADS = 4
#: Webhooks per second the load files are sized for (above two workers' best).
RATE_GUESS = 4000


@dataclass
class Settings:
    """How long and how hard to run."""

    duration: float
    warmup: float
    connections: int
    smoke: bool
    use_wrk: bool | None
    workdir: Path
    rounds: int = 3


def _app(kind: str, **options: Any) -> str:
    args = ", ".join([repr(kind), *(f"{k}={v!r}" for k, v in options.items())])
    return f"bench.apps:build({args})"


@dataclass
class Spec:
    """One row: what gunicorn serves and how."""

    name: str
    app: str
    worker_class: str = "sync"
    replies: bool = False
    #: Stop without waiting for pending work (a backlog of slow answers).
    quick_stop: bool = False

    @property
    def server(self) -> str:
        return _server(self.worker_class)


def _server(worker_class: str) -> str:
    return "2 sync" if worker_class == "sync" else f"2 gthread x{GTHREADS}"


@dataclass
class _Round:
    load: LoadResult
    cpu_us: float
    replies: int


@dataclass
class _Measured:
    spec: Spec
    gunicorn: Gunicorn
    rounds: list[_Round] = field(default_factory=list)
    restarted: bool = False


class LoadRunner:
    """Measures groups of rows against one fake Graph API."""

    def __init__(self, fake: FakeGraphProcess, settings: Settings) -> None:
        self.fake = fake
        self.settings = settings
        self.env = {"BENCH_GRAPH_URL": fake.base_url}
        self.round_seconds = settings.duration / settings.rounds
        # Distinct message ids in every file, so a connector that drops
        # redelivered messages still answers every webhook of the bench.
        self.warmup_bodies = settings.workdir / "warmup.txt"
        payloads.write_load_file(
            self.warmup_bodies, int(RATE_GUESS * settings.warmup) + 500, first=90_000_000
        )
        self.bodies = []
        for index in range(settings.rounds):
            path = settings.workdir / f"load-{index}.txt"
            count = int(RATE_GUESS * self.round_seconds) + 500
            payloads.write_load_file(path, count, first=index * 1_000_000)
            self.bodies.append(path)

    def _load(self, gunicorn: Gunicorn, bodies: Path, seconds: float) -> LoadResult:
        return run_load(
            gunicorn.url + WEBHOOK_PATH,
            bodies,
            duration=seconds,
            connections=self.settings.connections,
            use_wrk=self.settings.use_wrk,
        )

    def run_group(
        self, specs: list[Spec], before_close: Callable[[dict[str, int]], None] | None = None
    ) -> list[LoadRow]:
        """Measure ``specs`` in turns, ``settings.rounds`` times; one row each.

        ``before_close`` runs after the last round, the servers still up, with
        the ``CLOCK_MONOTONIC`` ns at which each row's first webhook was sent.
        """
        first_webhook: dict[str, int] = {}
        measured: list[_Measured] = []
        try:
            for spec in specs:
                threads = GTHREADS if spec.worker_class == "gthread" else 1
                gunicorn = Gunicorn(
                    spec.app, env=self.env, worker_class=spec.worker_class, threads=threads
                )
                measured.append(_Measured(spec, gunicorn))
                first_webhook[spec.name] = time.monotonic_ns()
                self._load(gunicorn, self.warmup_bodies, self.settings.warmup)
            for bodies in self.bodies:
                for item in measured:
                    self._measure_once(item, bodies)
            rows = [self._row(item) for item in measured]
            if before_close is not None:
                before_close(first_webhook)
            return rows
        finally:
            for item in measured:
                item.gunicorn.close(quick=item.spec.quick_stop)

    def _measure_once(self, item: _Measured, bodies: Path) -> None:
        _wait_for_quiet(self.fake)
        self.fake.reset()
        before = item.gunicorn.sample()
        load = self._load(item.gunicorn, bodies, self.round_seconds)
        after = item.gunicorn.sample()
        item.restarted |= before.pids != after.pids
        cpu_us = (after.cpu - before.cpu) / load.requests * 1e6 if load.requests else 0.0
        replies = 0
        if item.spec.replies:
            # Replies of webhooks still in flight when the load stopped arrive just after.
            _wait_for_quiet(self.fake)
            replies = int(self.fake.stats()["messages"])
        item.rounds.append(_Round(load, cpu_us, replies))

    @staticmethod
    def _row(item: _Measured) -> LoadRow:
        rounds = item.rounds
        loads = [r.load for r in rounds]
        requests = sum(load.requests for load in loads)
        seconds = sum(load.seconds for load in loads)
        row = LoadRow(
            name=item.spec.name,
            server=item.spec.server,
            rate=requests / seconds if seconds else None,
            p50_ms=statistics.median(load.p50_ms for load in loads),
            p99_ms=max(load.p99_ms for load in loads),
            cpu_us=statistics.median(r.cpu_us for r in rounds),
            rss_mib=item.gunicorn.peak_rss_kib() / 1024,
            requests=requests,
            errors=sum(load.errors for load in loads),
            replies=sum(r.replies for r in rounds) if item.spec.replies else None,
        )
        notes = []
        if row.errors:
            notes.append(f"{row.errors} error answers")
        if item.restarted:
            notes.append("a worker restarted during the run")
        row.note = "; ".join(notes)
        return row

    def late_replies(self, prefix: str, since: int, wait: float) -> tuple[int, str]:
        """Replies starting with ``prefix`` received so far, after waiting ``wait`` s more."""
        time.sleep(wait)
        total = self.fake.stats()["totals"].get(prefix)
        if total is None:
            return 0, f"no reply within {wait:.0f} s after the load"
        count, first, last = total
        return count, (
            f"{count} replies by {wait:.0f} s after the load, the first "
            f"{(first - since) / 1e9:.2f} s after the first webhook, the last "
            f"{(last - since) / 1e9:.1f} s after it (the assistant sleeps 2 s per message)"
        )


def _wait_for_quiet(fake: FakeGraphProcess, timeout: float = 3.0) -> None:
    """Wait until replies stop arriving (those of webhooks still in flight)."""
    deadline = time.monotonic() + timeout
    previous = -1
    while time.monotonic() < deadline:
        count = int(fake.stats()["messages"])
        if count == previous:
            return
        previous = count
        time.sleep(0.1)


# -- the rows ------------------------------------------------------------------------------


def pywa_line() -> str | None:
    """What the bench says when pywa is missing or not the pinned version, else ``None``."""
    version = pywa_version()
    pinned = PYWA_REQUIREMENT.split("==")[1]
    if version is None:
        return (
            "pywa is not installed: its reference rows are skipped and the echo rows' "
            "targets (ratios to pywa) are not judged. Install it with: "
            f'pip install -e ".[bench]" (or pip install {PYWA_REQUIREMENT})'
        )
    if version != pinned:
        return (
            f"pywa {version} is installed; the targets were set against pywa {pinned} "
            f"(pip install {PYWA_REQUIREMENT})."
        )
    return None


def load_rows(fake: FakeGraphProcess, settings: Settings) -> list[LoadRow]:
    runner = LoadRunner(fake, settings)
    inline = {"dispatch": "inline"} if connector_accepts("dispatch") else {}
    echo_app = _app("connector", assistant="echo", stream_mode="full", **inline)
    floor_app = _app("floor")
    pywa = pywa_version()

    floor = Spec("floor: bare Flask view, JSON parsed, 'OK'", floor_app)
    sync = [floor]
    if not settings.smoke:
        sync += [
            Spec(
                "reference: hand-written view, default requests.Session",
                _app("handwritten"),
                replies=True,
            ),
            Spec(
                "  same, one prepared request copied, Session.send (public floor)",
                _app("handwritten", transport="requests-prepared"),
                replies=True,
            ),
            Spec(
                "  same, Session.send on cel_whatsapp's HTTPClientAdapter",
                _app("handwritten", transport="requests-prepared-adapter"),
                replies=True,
            ),
            Spec(
                "  same, posting with a bare urllib3 pool",
                _app("handwritten", transport="urllib3"),
                replies=True,
            ),
            Spec(
                "  same, posting with stdlib http.client",
                _app("handwritten", transport="http.client"),
                replies=True,
            ),
            Spec(
                "connector, assistant answers nothing (no send)",
                _app("connector", assistant="silent", **inline),
            ),
        ]
    reference = _pywa_spec(pywa, "sync", f"pywa {pywa} echo, in the request (signature on)")
    echo = Spec("1. echo, inline (signature on, FULL, no read receipts)", echo_app, replies=True)
    rows = _echo_group(runner, [*sync, reference, echo], floor, reference, echo, settings.smoke)
    if settings.smoke:
        # The smoke stops after the sync group (floor, pywa, echo) to stay
        # well under 30 s.
        return rows

    floor = Spec("floor: bare Flask view", floor_app, worker_class="gthread")
    reference = _pywa_spec(pywa, "gthread", f"pywa {pywa} echo")
    echo = Spec("1. echo, inline", echo_app, worker_class="gthread", replies=True)
    threaded = [
        floor,
        Spec(
            "reference: hand-written view, bare urllib3 pool",
            _app("handwritten", transport="urllib3"),
            worker_class="gthread",
            replies=True,
        ),
        Spec(
            "  same, one prepared request copied, Session.send (public floor)",
            _app("handwritten", transport="requests-prepared"),
            worker_class="gthread",
            replies=True,
        ),
        Spec(
            "  same, posting with stdlib http.client",
            _app("handwritten", transport="http.client"),
            worker_class="gthread",
            replies=True,
        ),
        reference,
        echo,
    ]
    rows += _echo_group(runner, threaded, floor, reference, echo, settings.smoke)
    return [*rows, *_slow_ack(runner, floor_app)]


def _pywa_spec(version: str | None, worker_class: str, name: str) -> Spec | None:
    """pywa's echo row, or ``None`` when pywa is not installed."""
    if version is None:
        return None
    return Spec(name, _app("pywa"), worker_class=worker_class, replies=True)


def _echo_group(
    runner: LoadRunner,
    specs: list[Spec | None],
    floor: Spec,
    reference: Spec | None,
    echo: Spec,
    smoke: bool,
) -> list[LoadRow]:
    """Measure one server kind's rows in turns; judge the echo row against pywa's."""
    present = [spec for spec in specs if spec is not None]
    rows = runner.run_group(present)
    by_spec = {id(spec): row for spec, row in zip(present, rows, strict=True)}
    floor_row = by_spec[id(floor)]
    for row in rows:
        _ratio(row, floor_row)
    pywa_row = None if reference is None else by_spec[id(reference)]
    if pywa_row is not None and pywa_row.replies is not None:
        missing = pywa_row.requests - pywa_row.replies
        if missing > 0:
            pywa_row.note = "; ".join(
                n for n in (pywa_row.note, f"{missing} webhooks without a reply") if n
            )
    _judge_echo(by_spec[id(echo)], floor_row, pywa_row, smoke)
    if reference is None:
        rows.insert(
            rows.index(by_spec[id(echo)]),
            LoadRow(
                name="pywa echo (reference)",
                server=_server(floor.worker_class),
                note=f"skipped: pywa is not installed (pip install {PYWA_REQUIREMENT})",
            ),
        )
    return rows


def _ratio(row: LoadRow, floor: LoadRow) -> None:
    """CPU per webhook as a multiple of the floor's, on the same kind of server."""
    if row.cpu_us is not None and floor.cpu_us:
        row.ratio = row.cpu_us / floor.cpu_us


def _judge_echo(echo: LoadRow, floor: LoadRow, pywa: LoadRow | None, smoke: bool) -> None:
    """Scenario 1's targets: CPU and memory over the floor, as ratios to pywa's.

    The figures are shown whenever there are some, and judged only in a full
    run where pywa's row is clean: no error answers, no worker restarted, a
    reply for every webhook answered.
    """
    cpu_text = f"CPU <= {PYWA_CPU_RATIO}x pywa"
    rss_text = f"RSS over floor <= {PYWA_RSS_RATIO}x pywa's"
    if (
        pywa is None
        or not (echo.cpu_us and pywa.cpu_us)
        or not (echo.rss_mib and floor.rss_mib and pywa.rss_mib)
    ):
        echo.targets += [Target(cpu_text, None), Target(rss_text, None)]
    else:
        cpu_ratio = echo.cpu_us / pywa.cpu_us
        extra = echo.rss_mib - floor.rss_mib
        pywa_extra = pywa.rss_mib - floor.rss_mib
        judged = not smoke and not pywa.errors and not pywa.note
        if not smoke and not judged:
            note = "ratios to pywa not judged: see pywa's note"
            echo.note = "; ".join(n for n in (echo.note, note) if n)
        echo.targets += [
            Target(
                f"{cpu_text} ({cpu_ratio:.2f})", cpu_ratio <= PYWA_CPU_RATIO if judged else None
            ),
            Target(
                f"{rss_text} (+{extra:.1f} vs +{pywa_extra:.1f} MiB)",
                extra <= PYWA_RSS_RATIO * pywa_extra if judged else None,
            ),
        ]
    if not smoke and echo.replies is not None and echo.replies < echo.requests:
        echo.targets.append(Target(f"one reply per webhook ({echo.replies})", False))


def _slow_ack(runner: LoadRunner, floor_app: str) -> list[LoadRow]:
    """Scenario 2, measured in turns with a floor of its own."""
    name = "2. ack, assistant sleeping 2 s, background dispatch"
    if not connector_accepts("dispatch"):
        return [
            LoadRow(
                name=name,
                server="2 sync",
                note="skipped: this WhatsappConnector has no dispatch='background' yet",
            )
        ]
    slow = Spec(
        name,
        _app("connector", assistant="slow", stream_mode="full", dispatch="background"),
        quick_stop=True,
    )
    runner.fake.reset_totals()
    late: list[tuple[int, str]] = []
    floor, row = runner.run_group(
        [Spec("floor, measured in turns with row 2", floor_app), slow],
        before_close=lambda first: late.append(
            runner.late_replies("Thought hard", first[name], 6.0)
        ),
    )
    row.replies, when = late[0]
    row.note = "; ".join(n for n in (row.note, when) if n)
    _ratio(floor, floor)
    _ratio(row, floor)
    if row.p99_ms is not None and row.rate is not None and floor.rate:
        row.targets += [
            Target(f"p99 <= {SLOW_ACK_P99_MS:.0f} ms", row.p99_ms <= SLOW_ACK_P99_MS),
            Target(
                f"req/s >= {SLOW_ACK_RATE_RATIO}x floor ({row.rate / floor.rate:.2f})",
                row.rate >= SLOW_ACK_RATE_RATIO * floor.rate,
            ),
        ]
    return [floor, row]


# -- scenario 3: time to first message --------------------------------------------------

_ANSWER_OF = re.compile(r"Answer to (\S+) is")


def stream_rows(fake: FakeGraphProcess, settings: Settings) -> list[StreamRow]:
    env = {"BENCH_GRAPH_URL": fake.base_url}
    options = {"dispatch": "inline"} if connector_accepts("dispatch") else {}
    answers = 2 if settings.smoke else 4
    modes = ("sentence",) if settings.smoke else ("sentence", "full")
    rows = []
    for mode in modes:
        app = _app("connector", assistant="streaming", stream_mode=mode, **options)
        with Gunicorn(app, env=env) as gunicorn:
            _post_webhooks(gunicorn.url, 2, first=20_000_000)  # warm-up
            fake.wait_for(lambda stats: len(stats["sentences"]) >= 2, timeout=5)
            fake.reset()
            posted = _post_webhooks(gunicorn.url, answers, first=30_000_000)
            expected = answers * (3 if mode == "sentence" else 1)
            fake.wait_for(lambda stats, n=expected: len(stats["sentences"]) >= n, timeout=5)
            stats = fake.stats()
        rows.append(_stream_row(mode, stats, posted, settings.smoke))
    return rows


def _post_webhooks(url: str, count: int, *, first: int) -> dict[str, int]:
    """POST ``count`` streaming requests, two at a time; return text -> POST time (ns)."""
    posted: dict[str, int] = {}
    lock = threading.Lock()
    indices = list(range(first, first + count))

    def worker() -> None:
        while True:
            with lock:
                if not indices:
                    return
                index = indices.pop(0)
            text = f"q{index}"
            raw, headers = payloads.signed(payloads.text_body(index, text=text))
            conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
            try:
                with lock:
                    posted[text] = time.monotonic_ns()
                conn.request("POST", WEBHOOK_PATH, raw, headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"webhook answered {response.status}")
            finally:
                conn.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return posted


def _stream_row(mode: str, stats: dict[str, Any], posted: dict[str, int], smoke: bool) -> StreamRow:
    first_by_answer: dict[str, tuple[int, int]] = {}
    for arrival, end, body in stats["sentences"]:
        match = _ANSWER_OF.search(body)
        if match is None:
            continue
        first_by_answer[match.group(1)] = (arrival, end)
    delays = [(arrival - end) / 1e6 for arrival, end in first_by_answer.values()]
    from_webhook = [
        (arrival - posted[text]) / 1e6
        for text, (arrival, _) in first_by_answer.items()
        if text in posted
    ]
    row = StreamRow(
        mode=mode.upper(),
        answers=len(posted),
        after_sentence_ms=(statistics.median(delays), max(delays)) if delays else None,
        from_webhook_ms=statistics.median(from_webhook) if from_webhook else None,
        messages=len(stats["sentences"]),
    )
    if mode == "sentence":
        passed = None if smoke or not delays else max(delays) <= FIRST_MESSAGE_MS
        if not smoke and len(delays) < len(posted):
            passed = False
        row.targets.append(Target(f"max <= {FIRST_MESSAGE_MS:.0f} ms", passed))
    else:
        row.note = "reference: the whole answer, once"
    return row
